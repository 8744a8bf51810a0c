//! The launcher's side of a launch, in order (the child's side is
//! `child/`): check the launcher, plan the cgroup, clone3 into fresh
//! namespaces, write the id maps, release the child, on v1 attach its
//! cgroup, then wait until it exec'd or reported the step that failed.
//! Standbys (`standby.rs`) run the same steps ahead of time.
//!
//! Must run in a single-threaded process (the launcher hostd forks before
//! its async runtime, or `hostd-sandbox run`): the child allocates between
//! clone and exec, which is only safe when no other thread can hold the
//! allocator's lock.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::cgroup::{CgroupRoot, Placement};
use crate::child::{self, ChildFds};
use crate::error::SandboxError;
use crate::handshake::{self, Heard, Report};
use crate::policy::Policy;
use crate::prepare::{cstr, Prepared};
use crate::process::Child;
use crate::sys;

/// What to run: the binary as an already-open fd (the one that was hashed).
#[derive(Debug)]
pub struct Command {
    pub exec_fd: OwnedFd,
    pub argv: Vec<CString>,
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// Becomes fd 3 in the sandbox.
    pub ipc: Option<OwnedFd>,
}

impl Command {
    /// Open `path` O_RDONLY|O_CLOEXEC; the fd is what will be exec'd.
    pub fn from_path(path: &Path, args: &[String]) -> Result<Command, SandboxError> {
        let file = std::fs::File::open(path).map_err(|e| SandboxError::io(path, "open binary", e))?;
        let mut argv = vec![cstr(path.as_os_str().as_bytes(), "argv[0]")?];
        for a in args {
            argv.push(cstr(a, "argv")?);
        }
        Ok(Command { exec_fd: file.into(), argv, stdin: None, stdout: None, stderr: None, ipc: None })
    }
}

/// Launch `cmd` under `prepared`. `cgroups` is required when the policy
/// enables cgroup limits and the kernel has them.
pub fn spawn(prepared: &Prepared, cgroups: Option<&CgroupRoot>, cmd: Command) -> Result<Child, SandboxError> {
    let starting = begin(prepared, cgroups, cmd)?;
    // The child is on its own now (rootfs, Landlock, seccomp, exec): use the
    // wait to remove torn-down sandboxes' cgroups, off the critical path.
    if let Some(root) = cgroups {
        root.remove_emptied();
    }
    starting.finish()
}

/// A launched child that is still setting itself up; [`Starting::finish`]
/// waits until it has exec'd the binary or reported the step that failed.
pub(crate) struct Starting {
    pub(crate) child: Child,
    /// The report channel (see `handshake.rs`).
    pub(crate) report: OwnedFd,
    /// Held until the exec: the child treats its hang-up as our death.
    pub(crate) go: Option<OwnedFd>,
    pub(crate) policy: String,
}

/// Clone a fresh child for `cmd` and release it into its setup.
pub(crate) fn begin(prepared: &Prepared, cgroups: Option<&CgroupRoot>, mut cmd: Command) -> Result<Starting, SandboxError> {
    let policy = &prepared.policy;
    let launch_err = |step| SandboxError::launch(&policy.name, step);
    let privileged = check_launcher(policy)?;
    let mut placement = Placement::plan(prepared, cgroups)?;
    let [stdin, stdout, stderr] = stdio_fds(&mut cmd, &policy.name)?;
    let (go_r, go_w) = sys::pipe().map_err(launch_err("go pipe"))?;
    let (report_r, report_w) = sys::pipe().map_err(launch_err("report pipe"))?;
    let child_fds = ChildFds {
        go: go_r.as_raw_fd(),
        report: report_w.as_raw_fd(),
        exec: cmd.exec_fd.as_raw_fd(),
        stdin: stdin.as_raw_fd(),
        stdout: stdout.as_raw_fd(),
        stderr: stderr.as_raw_fd(),
        ipc: cmd.ipc.as_ref().map(|f| f.as_raw_fd()),
        await_cgroup: placement.after_clone(),
        launcher_only: vec![go_w.as_raw_fd(), report_r.as_raw_fd()],
    };
    let (pid, pidfd) = clone_sandbox(prepared, placement.clone_into_fd(), || child::run(prepared, &child_fds, &cmd.argv))
        .map_err(SandboxError::clone(&policy.name, "clone3"))?;
    drop((go_r, report_w));
    // From here on, dropping `child` kills and reaps it.
    let mut child = Child::new(pid, pidfd, None);
    placement.born(&mut child);
    write_id_maps(pid, policy)?;
    if privileged {
        // Overlapped: the child builds its rootfs while we attach it (v1).
        handshake::release_child(go_w.as_raw_fd()).map_err(launch_err("release the child"))?;
        placement.attach(&mut child, policy)?;
    } else {
        // v1 lets a non-root writer move only a task with its own uid:
        // attach before the child switches to the sandbox's ids.
        placement.attach(&mut child, policy)?;
        handshake::release_child(go_w.as_raw_fd()).map_err(launch_err("release the child"))?;
    }
    if placement.after_clone() {
        handshake::cgroup_attached(go_w.as_raw_fd()).map_err(launch_err("tell the child its cgroup is attached"))?;
    }
    Ok(Starting { child, report: report_r, go: Some(go_w), policy: policy.name.clone() })
}

impl Starting {
    pub(crate) fn finish(mut self) -> Result<Child, SandboxError> {
        let heard = handshake::read_report(self.report.as_raw_fd());
        drop(self.go.take());
        match heard {
            Heard::Closed => Ok(self.child),
            Heard::Report(Report::Failed(f)) => {
                let _ = self.child.wait();
                Err(SandboxError::child_setup(&self.policy, f))
            }
            Heard::Report(Report::Parked) => {
                Err(SandboxError::Launch { policy: self.policy, step: "wait for the child's exec (it reported parked)", errno: proto_err() })
            }
            Heard::Garbled(errno) => Err(SandboxError::Launch { policy: self.policy, step: "read the child's report", errno }),
        }
    }
}

pub(crate) fn proto_err() -> std::io::Error {
    std::io::Error::from_raw_os_error(libc::EPROTO)
}

/// CAP_SETUID and CAP_SETGID in our effective set.
fn has_id_capabilities() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:").and_then(|v| u64::from_str_radix(v.trim(), 16).ok()))
        .unwrap_or(0);
    let needed = (1u64 << crate::caps::CAP_SETUID) | (1u64 << crate::caps::CAP_SETGID);
    eff & needed == needed
}

/// What every clone of a sandbox needs from its caller: one thread, and root
/// or (hostd's launcher after it dropped root) CAP_SETUID and CAP_SETGID to
/// map the sandbox to its own host uid. Returns whether we are root.
pub(crate) fn check_launcher(policy: &Policy) -> Result<bool, SandboxError> {
    let threads = sys::threads_in_self();
    if threads != 1 {
        return Err(SandboxError::NotSingleThreaded { threads });
    }
    // SAFETY: geteuid has no preconditions.
    let privileged = unsafe { libc::geteuid() } == 0;
    if !privileged && !has_id_capabilities() {
        return Err(SandboxError::NotRoot { uid: policy.identity.host_uid });
    }
    Ok(privileged)
}

/// The namespace flags of `prepared` for clone3 (user namespaces: Linux
/// 3.8 unprivileged; cgroup namespaces: 4.6).
fn namespace_flags(prepared: &Prepared) -> u64 {
    let ns = prepared.policy.namespaces;
    let mut flags = libc::CLONE_NEWUSER as u64;
    for (on, f) in [
        (ns.mount, libc::CLONE_NEWNS),
        (ns.pid, libc::CLONE_NEWPID),
        (ns.net, libc::CLONE_NEWNET),
        (ns.ipc, libc::CLONE_NEWIPC),
        (ns.uts, libc::CLONE_NEWUTS),
        (ns.cgroup && !prepared.unshare_cgroup_late, libc::CLONE_NEWCGROUP),
    ] {
        if on {
            flags |= f as u64;
        }
    }
    flags
}

/// clone3 into `prepared`'s namespaces (and the cgroup of `cgroup_fd`, on
/// v2). The child runs `child_main`, which never returns; the parent gets
/// the pid and a pidfd.
pub(crate) fn clone_sandbox(
    prepared: &Prepared,
    cgroup_fd: Option<RawFd>,
    child_main: impl FnOnce() -> std::convert::Infallible,
) -> Result<(i32, OwnedFd), std::io::Error> {
    let parent = sys::clone3(namespace_flags(prepared), cgroup_fd)?;
    if parent.is_none() {
        // Returns an uninhabited type: the child never gets past this.
        child_main();
    }
    parent.ok_or_else(|| std::io::Error::from_raw_os_error(libc::ECHILD))
}

/// Map the sandbox's single uid and gid to its host ids
/// (user_namespaces(7); `setgroups` must be denied before gid_map, Linux 3.19).
pub(crate) fn write_id_maps(pid: i32, policy: &Policy) -> Result<(), SandboxError> {
    let ids = policy.identity;
    for (file, content) in [
        ("setgroups", "deny".to_string()),
        ("uid_map", format!("{} {} 1\n", ids.inside_uid, ids.host_uid)),
        ("gid_map", format!("{} {} 1\n", ids.inside_gid, ids.host_gid)),
    ] {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, content).map_err(|e| SandboxError::io(path, "write the sandbox's id map", e))?;
    }
    Ok(())
}

/// The sandbox's fds 0, 1 and 2: the command's, else /dev/null for stdin and
/// copies of our own stdout and stderr.
pub(crate) fn stdio_fds(cmd: &mut Command, policy: &str) -> Result<[OwnedFd; 3], SandboxError> {
    let devnull = || -> Result<OwnedFd, SandboxError> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map(OwnedFd::from)
            .map_err(|e| SandboxError::io("/dev/null", "open", e))
    };
    let dup_std = |fd: RawFd| -> Result<OwnedFd, SandboxError> {
        // SAFETY: duplicating our own stdio fd.
        let r = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        if r < 0 {
            return Err(SandboxError::launch(policy, "dup stdio")(std::io::Error::last_os_error()));
        }
        // SAFETY: fresh fd.
        Ok(unsafe { OwnedFd::from_raw_fd(r) })
    };
    let stdin = match cmd.stdin.take() {
        Some(fd) => fd,
        None => devnull()?,
    };
    let stdout = match cmd.stdout.take() {
        Some(fd) => fd,
        None => dup_std(1)?,
    };
    let stderr = match cmd.stderr.take() {
        Some(fd) => fd,
        None => dup_std(2)?,
    };
    Ok([stdin, stdout, stderr])
}
