//! A running sandbox: its pid, pidfd and cgroup; waiting for it, classifying
//! how it ended, killing it, and tearing it down on drop.

use serde::Serialize;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::cgroup::{Cgroup, Usage};
use crate::error::SandboxError;
use crate::sys;

/// How a sandboxed process ended.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Exited { code: i32 },
    Signaled { signal: i32 },
    /// Killed by SIGSYS: the seccomp filter's default action.
    SeccompViolation,
    /// Killed by the kernel OOM killer inside the sandbox's memory limit.
    OomKilled,
    /// Killed by us (`Child::kill`, teardown).
    KilledByHost,
}

impl Outcome {
    /// Shell-style status: the exit code, or 128 + signal.
    pub fn exit_status(&self) -> i32 {
        match *self {
            Outcome::Exited { code } => code,
            Outcome::Signaled { signal } => 128 + signal,
            Outcome::SeccompViolation => 128 + libc::SIGSYS,
            Outcome::OomKilled | Outcome::KilledByHost => 128 + libc::SIGKILL,
        }
    }
}

/// A running sandbox. Dropping it kills and reaps everything inside.
#[derive(Debug)]
pub struct Child {
    pid: i32,
    pidfd: OwnedFd,
    /// Created fresh for this child, so any OOM kill it counts is this child's.
    cgroup: Option<Cgroup>,
    killed_by_host: bool,
    outcome: Option<Outcome>,
}

impl Child {
    pub(crate) fn new(pid: i32, pidfd: OwnedFd, cgroup: Option<Cgroup>) -> Child {
        Child { pid, pidfd, cgroup, killed_by_host: false, outcome: None }
    }

    /// The cgroup this child was moved into after its clone (cgroup v1).
    pub(crate) fn set_cgroup(&mut self, cgroup: Cgroup) {
        self.cgroup = Some(cgroup);
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn pidfd(&self) -> RawFd {
        self.pidfd.as_raw_fd()
    }

    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup.as_ref()
    }

    pub fn usage(&self) -> Usage {
        self.cgroup.as_ref().map(|c| c.usage()).unwrap_or_default()
    }

    /// SIGKILL the sandbox through its pidfd and everything in its cgroup.
    pub fn kill(&mut self) {
        if self.outcome.is_some() {
            return;
        }
        self.killed_by_host = true;
        sys::pidfd_send_signal(self.pidfd.as_raw_fd(), libc::SIGKILL);
        if let Some(cg) = &self.cgroup {
            cg.kill_all();
        }
    }

    /// Block until the sandbox's init exits; classify how.
    pub fn wait(&mut self) -> Result<Outcome, SandboxError> {
        if let Some(o) = self.outcome {
            return Ok(o);
        }
        self.wait_flags(libc::WEXITED).map(|o| o.unwrap_or(Outcome::KilledByHost))
    }

    /// Non-blocking wait.
    pub fn try_wait(&mut self) -> Result<Option<Outcome>, SandboxError> {
        if let Some(o) = self.outcome {
            return Ok(Some(o));
        }
        self.wait_flags(libc::WEXITED | libc::WNOHANG)
    }

    fn wait_flags(&mut self, flags: i32) -> Result<Option<Outcome>, SandboxError> {
        // SAFETY: zeroed siginfo is a valid out-parameter for waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: waitid(P_PIDFD), Linux 5.4, on our own child's pidfd.
            let rc = unsafe { libc::waitid(libc::P_PIDFD, self.pidfd.as_raw_fd() as libc::id_t, &mut info, flags) };
            if rc == 0 {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(SandboxError::Wait { pid: self.pid, errno: e });
        }
        // SAFETY: waitid filled a SIGCHLD siginfo.
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        if pid == 0 {
            return Ok(None);
        }
        let outcome = match info.si_code {
            libc::CLD_EXITED => Outcome::Exited { code: status },
            _ if status == libc::SIGSYS => Outcome::SeccompViolation,
            _ if status == libc::SIGKILL => {
                let ooms = self.cgroup.as_ref().and_then(|c| c.usage().oom_kills).unwrap_or(0);
                if ooms > 0 {
                    Outcome::OomKilled
                } else if self.killed_by_host {
                    Outcome::KilledByHost
                } else {
                    Outcome::Signaled { signal: status }
                }
            }
            _ => Outcome::Signaled { signal: status },
        };
        self.outcome = Some(outcome);
        // The init is gone, so the pid namespace is being torn down; make
        // sure nothing outlives it in the cgroup either.
        if let Some(cg) = &self.cgroup {
            cg.kill_all();
        }
        Ok(Some(outcome))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.outcome.is_none() {
            self.kill();
            let _ = self.wait();
        }
        // Cgroup's own Drop kills leftovers and removes the directories.
    }
}
