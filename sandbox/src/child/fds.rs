//! The child's fds: what it starts with, and the step that leaves exactly
//! {0, 1, 2, 3} plus the binary at [`EXEC_FD`] and the report channel at
//! [`REPORT_FD`] (both close-on-exec).

use super::{check, StepResult};
use crate::handshake::{Failure, Step};
use crate::seccomp::EXEC_FD;
use crate::sys::{self, errno};

/// The report channel's fd number in the child until exec closes it.
pub(crate) const REPORT_FD: i32 = 1022;

/// Raw fds the child starts with (all close-on-exec; the launcher owns them).
pub(crate) struct ChildFds {
    /// Where the launcher's [`crate::handshake::Go`] messages arrive; its
    /// hang-up before our exec means the launcher died. A cold launch's
    /// pipe, or a standby's control socket.
    pub go: i32,
    /// Where a failed step is reported (a standby's control socket again).
    pub report: i32,
    pub exec: i32,
    pub stdin: i32,
    pub stdout: i32,
    pub stderr: i32,
    pub ipc: Option<i32>,
    /// cgroup v1: a [`crate::handshake::Go::CgroupAttached`] follows once the
    /// launcher has put us into our cgroup.
    pub await_cgroup: bool,
    /// The launcher's own ends, to close first.
    pub launcher_only: Vec<i32>,
}

impl ChildFds {
    /// A standby's fds: the control socket, and what came with its order
    /// (binary, stdin, stdout, stderr, IPC when `ipc`).
    pub fn from_order(ctl: i32, received: &[i32], ipc: bool) -> ChildFds {
        ChildFds {
            go: ctl,
            report: ctl,
            exec: received[0],
            stdin: received[1],
            stdout: received[2],
            stderr: received[3],
            ipc: ipc.then(|| received[4]),
            await_cgroup: false,
            launcher_only: Vec::new(),
        }
    }
}

fn dup_high(fd: i32) -> Result<i32, Failure> {
    // SAFETY: duplicating an fd we hold.
    let r = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
    if r < 0 {
        Err(Failure::new(Step::ArrangeFds, errno()))
    } else {
        Ok(r)
    }
}

/// Leave exactly {0,1,2,3} plus the exec fd and the report channel.
pub(crate) fn arrange(fds: &ChildFds) -> StepResult {
    // SAFETY (whole function): fd-table syscalls on fds we hold.
    unsafe {
        // EXEC_FD must be below RLIMIT_NOFILE for dup3 to place it.
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        if lim.rlim_cur <= EXEC_FD as u64 {
            lim.rlim_cur = (EXEC_FD as u64 + 1).min(lim.rlim_max);
            check(Step::ArrangeFds, libc::setrlimit(libc::RLIMIT_NOFILE, &lim) as _)?;
        }
        // First copy every source above the target range so no dup2 below
        // can clobber a source that has not been placed yet.
        let stdin = dup_high(fds.stdin)?;
        let stdout = dup_high(fds.stdout)?;
        let stderr = dup_high(fds.stderr)?;
        let ipc = match fds.ipc {
            Some(fd) => Some(dup_high(fd)?),
            None => None,
        };
        let mut report = dup_high(fds.report)?;
        let exec = dup_high(fds.exec)?;
        for (src, dst) in [(stdin, 0), (stdout, 1), (stderr, 2)] {
            check(Step::ArrangeFds, libc::dup2(src, dst) as _)?;
        }
        if let Some(ipc) = ipc {
            check(Step::ArrangeFds, libc::dup2(ipc, 3) as _)?;
        }
        if report == EXEC_FD {
            report = dup_high(report)?;
        }
        if exec != EXEC_FD {
            check(Step::ArrangeFds, libc::dup3(exec, EXEC_FD, libc::O_CLOEXEC) as _)?;
        }
        if report != REPORT_FD {
            check(Step::ArrangeFds, libc::dup3(report, REPORT_FD, libc::O_CLOEXEC) as _)?;
        }
        let first_free = if ipc.is_some() { 4 } else { 3 };
        check(Step::ArrangeFds, sys::close_range(first_free, REPORT_FD as u32 - 1))?;
        check(Step::ArrangeFds, sys::close_range(EXEC_FD as u32 + 1, u32::MAX))
    }
}
