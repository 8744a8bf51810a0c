//! Standbys: sandboxes made ahead of time for a long-lived launcher.
//!
//! A standby is the first half of a launch done before anyone asks for it:
//! cloned into fresh user, mount, pid, network, ipc and uts namespaces, its
//! uid and gid mapped, placed in its own cgroup with the policy's limits. It
//! then holds nothing of the launcher but one control socket and waits. The
//! launch that takes it sends the argv and the fds (binary, stdio, IPC) over
//! that socket; from there the standby does exactly what a cold child does
//! after its release (ids, hostname, rootfs, fds, rlimits, capabilities,
//! no_new_privs, Landlock, seccomp, exec), so both paths share one code path
//! in `child/` and one escape suite.
//!
//! What this moves off a launch's critical path is the kernel's most costly
//! part of it: creating the namespaces (a network namespace alone is ~0.4 ms
//! here) and, on v1 hosts, the cgroup migration.
//!
//! Trust rules:
//! * a standby is used only by a launch whose policy is *equal* to the one it
//!   was made for (namespaces, ids, limits, rootfs, everything): the child
//!   reads the policy from its own copy of the launcher's memory, taken when
//!   it was cloned, so nothing about its confinement is sent later;
//! * each standby serves one launch; every sandbox still gets fresh
//!   namespaces and a fresh cgroup, never one another sandbox has used;
//! * a standby dies with its launcher (PR_SET_PDEATHSIG, and the hang-up of
//!   its control socket), and dropping [`Standbys`] kills them all.
//!
//! When to make one: a launch of a policy that was launched before (a
//! restart, a reload, a repeated job) asks for one; [`Standbys::replenish`]
//! makes it when the launcher is idle, so making it (about 1 ms of launcher
//! time here, most of it the network namespace and the cgroup migration)
//! never delays a launch. A daemon starting fifty different modules makes none.

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, OwnedFd};

use crate::cgroup::{CgroupRoot, Placement};
use crate::child;
use crate::error::SandboxError;
use crate::fdpass::{send_packet, seqpacket_pair};
use crate::handshake::{self, Heard, Order, Report};
use crate::launch::{self, Command, Starting};
use crate::policy::Policy;
use crate::prepare::Prepared;
use crate::process::Child;

/// Policies remembered as launched, to tell a relaunch from a first launch.
const RECENT_LAUNCHES: usize = 16;

/// A launcher's standbys (see the module docs). Single-threaded, like
/// every launch.
#[derive(Debug)]
pub struct Standbys {
    max: usize,
    ready: RefCell<Vec<Standby>>,
    recent: RefCell<Vec<Policy>>,
    /// Relaunched policies without a ready standby, for [`Standbys::replenish`].
    wanted: RefCell<Vec<Prepared>>,
    used: Cell<u64>,
}

#[derive(Debug)]
struct Standby {
    policy: Policy,
    /// The process itself; dropping it kills it and tears its cgroup down.
    child: Child,
    ctl: OwnedFd,
}

impl Standbys {
    /// Keep at most `max` standbys ready (each is one idle process with its
    /// namespaces and an empty cgroup); 0 turns them off.
    pub fn new(max: usize) -> Standbys {
        Standbys {
            max,
            ready: RefCell::new(Vec::new()),
            recent: RefCell::new(Vec::new()),
            wanted: RefCell::new(Vec::new()),
            used: Cell::new(0),
        }
    }

    /// The ready standbys' pids.
    pub fn pids(&self) -> Vec<i32> {
        self.ready.borrow().iter().map(|s| s.child.pid()).collect()
    }

    /// How many launches went into a standby.
    pub fn used(&self) -> u64 {
        self.used.get()
    }

    /// How many are ready.
    pub fn ready(&self) -> usize {
        self.ready.borrow().len()
    }

    /// Make a standby for `prepared` now, unless one is ready.
    pub fn prepare(&self, prepared: &Prepared, cgroups: Option<&CgroupRoot>) -> Result<(), SandboxError> {
        if self.max == 0 || self.ready.borrow().iter().any(|s| s.policy == prepared.policy) {
            return Ok(());
        }
        let standby = Standby::make(prepared, cgroups)?;
        let mut ready = self.ready.borrow_mut();
        if ready.len() >= self.max {
            // Oldest first: the most recently launched policies stay ready.
            ready.remove(0);
        }
        ready.push(standby);
        Ok(())
    }

    /// Whether a relaunched policy waits for a standby: call
    /// [`Standbys::replenish`] when idle.
    pub fn wanted(&self) -> bool {
        !self.wanted.borrow().is_empty()
    }

    /// Make the standbys relaunches asked for. Takes about 1 ms each; call it
    /// when no launch is waiting.
    pub fn replenish(&self, cgroups: Option<&CgroupRoot>) {
        let wanted = std::mem::take(&mut *self.wanted.borrow_mut());
        for prepared in wanted {
            if let Err(e) = self.prepare(&prepared, cgroups) {
                tracing::warn!(policy = %prepared.policy.name, error = %e, "could not make a standby; relaunches start cold");
            }
        }
    }

    /// Forget sandbox `name` (its module was unloaded): kill its standbys
    /// and stop counting its launches.
    pub fn forget(&self, name: &str) {
        self.ready.borrow_mut().retain(|s| s.policy.name != name);
        self.wanted.borrow_mut().retain(|p| p.policy.name != name);
        self.recent.borrow_mut().retain(|p| p.name != name);
    }

    /// Launch `cmd` under `prepared`: into a standby made for this policy if
    /// one is ready, else as a cold [`launch::spawn`]. A policy launched
    /// before asks for its next standby ([`Standbys::replenish`]).
    pub fn spawn(&self, prepared: &Prepared, cgroups: Option<&CgroupRoot>, cmd: Command) -> Result<Child, SandboxError> {
        let taken = {
            let mut ready = self.ready.borrow_mut();
            ready.iter().position(|s| s.policy == prepared.policy).map(|i| ready.remove(i))
        };
        let starting = match taken {
            Some(standby) => match standby.start(cmd) {
                Ok(starting) => {
                    self.used.set(self.used.get() + 1);
                    starting
                }
                Err(failed) => {
                    let (cmd, e) = *failed;
                    tracing::warn!(policy = %prepared.policy.name, error = %e, "standby unusable; launching cold");
                    launch::begin(prepared, cgroups, cmd)?
                }
            },
            None => launch::begin(prepared, cgroups, cmd)?,
        };
        if self.max > 0 && self.note_launch(&prepared.policy) {
            let mut wanted = self.wanted.borrow_mut();
            if !wanted.iter().any(|w| w.policy == prepared.policy) {
                if wanted.len() >= self.max {
                    wanted.remove(0);
                }
                wanted.push(prepared.clone());
            }
        }
        if let Some(root) = cgroups {
            root.remove_emptied();
        }
        starting.finish()
    }

    /// Remember `policy` as launched; true if it had been launched before.
    fn note_launch(&self, policy: &Policy) -> bool {
        let mut recent = self.recent.borrow_mut();
        if let Some(i) = recent.iter().position(|p| p.name == policy.name && p == policy) {
            let p = recent.remove(i);
            recent.push(p);
            return true;
        }
        if recent.len() >= RECENT_LAUNCHES {
            recent.remove(0);
        }
        recent.push(policy.clone());
        false
    }
}

impl Standby {
    fn make(prepared: &Prepared, cgroups: Option<&CgroupRoot>) -> Result<Standby, SandboxError> {
        let policy = &prepared.policy;
        let launch_err = |step| SandboxError::launch(&policy.name, step);
        launch::check_launcher(policy)?;
        let mut placement = Placement::plan(prepared, cgroups)?;
        let (ctl, ctl_child) = seqpacket_pair().map_err(launch_err("standby socketpair"))?;
        let child_end = ctl_child.as_raw_fd();
        let (pid, pidfd) = launch::clone_sandbox(prepared, placement.clone_into_fd(), || child::run_standby(prepared, child_end))
            .map_err(SandboxError::clone(&policy.name, "clone3 (standby)"))?;
        drop(ctl_child);
        // On failure `child` is dropped, which kills and reaps the standby.
        let mut child = Child::new(pid, pidfd, None);
        placement.born(&mut child);
        launch::write_id_maps(pid, policy)?;
        // The standby still has the launcher's ids, so even a non-root
        // launcher may move it (v1's rule for unprivileged writers).
        placement.attach(&mut child, policy)?;
        match handshake::read_report(ctl.as_raw_fd()) {
            Heard::Report(Report::Parked) => Ok(Standby { policy: policy.clone(), child, ctl }),
            Heard::Report(Report::Failed(f)) => Err(SandboxError::child_setup(&policy.name, f)),
            Heard::Closed => Err(launch_err("standby start (it exited before parking)")(launch::proto_err())),
            Heard::Garbled(e) => Err(launch_err("standby start (read its report)")(e)),
        }
    }

    /// Send the order. On failure (the standby died, or the argv is too
    /// long for one order) the command comes back for a cold launch.
    fn start(self, mut cmd: Command) -> Result<Starting, Box<(Command, SandboxError)>> {
        let name = self.policy.name.clone();
        let launch_err = |step, errno| SandboxError::launch(&name, step)(errno);
        let order = Order { ipc: cmd.ipc.is_some(), argv: cmd.argv.clone() };
        let bytes = match order.encode() {
            Ok(b) => b,
            Err(e) => return Err(Box::new((cmd, launch_err("standby order", e)))),
        };
        let stdio = match launch::stdio_fds(&mut cmd, &name) {
            Ok(s) => s,
            Err(e) => return Err(Box::new((cmd, e))),
        };
        let mut fds = vec![cmd.exec_fd.as_raw_fd()];
        fds.extend(stdio.iter().map(|f| f.as_raw_fd()));
        fds.extend(cmd.ipc.as_ref().map(|f| f.as_raw_fd()));
        if let Err(e) = send_packet(self.ctl.as_raw_fd(), &bytes, &fds) {
            // The cold launch gets the same stdio this one would have had.
            let [stdin, stdout, stderr] = stdio;
            (cmd.stdin, cmd.stdout, cmd.stderr) = (Some(stdin), Some(stdout), Some(stderr));
            return Err(Box::new((cmd, launch_err("send standby order", e))));
        }
        Ok(Starting { child: self.child, report: self.ctl, go: None, policy: name })
    }
}
