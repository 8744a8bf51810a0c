//! Every message between the launcher and a sandbox child before its exec,
//! typed, with its encoding in one place.
//!
//! Channels (all created close-on-exec, so a successful exec closes them):
//! * **go** (launcher → cold child, a pipe): [`Go::Release`] once the uid/gid
//!   maps are written; on cgroup v1 hosts a second [`Go::CgroupAttached`]
//!   once the child is in its cgroup. Its hang-up means the launcher died.
//! * **report** (child → launcher, a pipe or a standby's SEQPACKET socket):
//!   [`Report::Failed`] for the step that failed, [`Report::Parked`] when a
//!   standby is ready; end of file without a report means the exec succeeded.
//! * **order** (launcher → standby, the same socket): an [`Order`] (argv and
//!   whether fd 3 is given) with the fds as SCM_RIGHTS.
//!
//! Reports are at most [`REPORT_MAX`] bytes, below PIPE_BUF (pipe(7)), so a
//! report is written and read whole.

use std::ffi::CString;
use std::os::fd::RawFd;

use crate::sys::errno;

/// What the launcher tells a cold child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Go {
    /// The uid/gid maps are written: set up the sandbox.
    Release = 1,
    /// (cgroup v1) The child is in its cgroup: the module may run.
    CgroupAttached = 2,
}

/// Launcher side: release the child into its setup.
pub(crate) fn release_child(go_w: RawFd) -> std::io::Result<()> {
    send_go(go_w, Go::Release)
}

/// Launcher side (v1): the child has been attached to its cgroup.
pub(crate) fn cgroup_attached(go_w: RawFd) -> std::io::Result<()> {
    send_go(go_w, Go::CgroupAttached)
}

fn send_go(go_w: RawFd, go: Go) -> std::io::Result<()> {
    // SAFETY: one byte from a stack value to our own pipe.
    if unsafe { libc::write(go_w, [go as u8].as_ptr().cast(), 1) } != 1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Child side: block until the launcher says `expected`. Err(errno):
/// EPIPE if the launcher is gone, EPROTO if it said something else.
pub(crate) fn await_go(go_r: RawFd, expected: Go) -> Result<(), i32> {
    let mut byte = 0u8;
    loop {
        // SAFETY: reading one byte into a stack value.
        let n = unsafe { libc::read(go_r, (&mut byte as *mut u8).cast(), 1) };
        if n < 0 && errno() == libc::EINTR {
            continue;
        }
        return match n {
            1 if byte == expected as u8 => Ok(()),
            1 => Err(libc::EPROTO),
            0 => Err(libc::EPIPE),
            _ => Err(errno()),
        };
    }
}

/// Each step of the child's confinement, in launch order; every place
/// that can fail has its own. The discriminant crosses the report channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Step {
    AwaitRelease = 1,
    StandbyDeathSignal,
    StandbyLauncherGone,
    StandbyReportParked,
    StandbyReceiveOrder,
    StandbyBadOrder,
    Setsid,
    SetGid,
    SetUid,
    DeathSignal,
    LauncherGone,
    Hostname,
    MountPrivate,
    OpenBindSource,
    MountRootTmpfs,
    MakeMountPoint,
    BindData,
    BindReadOnly,
    MountDev,
    MountProc,
    EnterStaging,
    PivotRoot,
    DetachOldRoot,
    EnterNewRoot,
    RemountRootReadOnly,
    AwaitCgroup,
    CgroupNamespace,
    ArrangeFds,
    Rlimits,
    Securebits,
    CapabilityBoundingSet,
    AmbientCapabilities,
    Capset,
    NoNewPrivs,
    LandlockRuleset,
    LandlockRulePath,
    LandlockRule,
    LandlockRestrict,
    LandlockNotEnforced,
    Seccomp,
    Exec,
    Panic,
}

impl Step {
    const ALL: [Step; 42] = [
        Step::AwaitRelease,
        Step::StandbyDeathSignal,
        Step::StandbyLauncherGone,
        Step::StandbyReportParked,
        Step::StandbyReceiveOrder,
        Step::StandbyBadOrder,
        Step::Setsid,
        Step::SetGid,
        Step::SetUid,
        Step::DeathSignal,
        Step::LauncherGone,
        Step::Hostname,
        Step::MountPrivate,
        Step::OpenBindSource,
        Step::MountRootTmpfs,
        Step::MakeMountPoint,
        Step::BindData,
        Step::BindReadOnly,
        Step::MountDev,
        Step::MountProc,
        Step::EnterStaging,
        Step::PivotRoot,
        Step::DetachOldRoot,
        Step::EnterNewRoot,
        Step::RemountRootReadOnly,
        Step::AwaitCgroup,
        Step::CgroupNamespace,
        Step::ArrangeFds,
        Step::Rlimits,
        Step::Securebits,
        Step::CapabilityBoundingSet,
        Step::AmbientCapabilities,
        Step::Capset,
        Step::NoNewPrivs,
        Step::LandlockRuleset,
        Step::LandlockRulePath,
        Step::LandlockRule,
        Step::LandlockRestrict,
        Step::LandlockNotEnforced,
        Step::Seccomp,
        Step::Exec,
        Step::Panic,
    ];

    /// What the step does, for error messages.
    pub fn name(self) -> &'static str {
        match self {
            Step::AwaitRelease => "wait for the launcher's release (the launcher closed the pipe: it died or gave up)",
            Step::StandbyDeathSignal => "standby: prctl(PR_SET_PDEATHSIG)",
            Step::StandbyLauncherGone => "standby: the launcher died before the standby parked",
            Step::StandbyReportParked => "standby: report parked to the launcher",
            Step::StandbyReceiveOrder => "standby: receive the launch order",
            Step::StandbyBadOrder => "standby: the launch order is malformed",
            Step::Setsid => "setsid",
            Step::SetGid => "setresgid inside the user namespace",
            Step::SetUid => "setresuid inside the user namespace",
            Step::DeathSignal => "prctl(PR_SET_PDEATHSIG)",
            Step::LauncherGone => "the launcher died before the death signal was armed",
            Step::Hostname => "sethostname",
            Step::MountPrivate => "make / recursively private",
            Step::OpenBindSource => "open a bind-mount source",
            Step::MountRootTmpfs => "mount the root tmpfs",
            Step::MakeMountPoint => "create a mount point",
            Step::BindData => "bind-mount the data dir",
            Step::BindReadOnly => "read-only bind mount",
            Step::MountDev => "bind a /dev node",
            Step::MountProc => "mount procfs",
            Step::EnterStaging => "chdir into the new root",
            Step::PivotRoot => "pivot_root",
            Step::DetachOldRoot => "detach the old root",
            Step::EnterNewRoot => "chdir to / of the new root",
            Step::RemountRootReadOnly => "make / read-only",
            Step::AwaitCgroup => "wait for the launcher to attach the cgroup (the launcher closed the pipe)",
            Step::CgroupNamespace => "unshare(CLONE_NEWCGROUP)",
            Step::ArrangeFds => "arrange fds 0-3",
            Step::Rlimits => "setrlimit",
            Step::Securebits => "lock securebits (PR_SET_SECUREBITS)",
            Step::CapabilityBoundingSet => "drop the capability bounding set (PR_CAPBSET_DROP)",
            Step::AmbientCapabilities => "clear ambient capabilities",
            Step::Capset => "empty the capability sets (capset)",
            Step::NoNewPrivs => "prctl(PR_SET_NO_NEW_PRIVS)",
            Step::LandlockRuleset => "create the Landlock ruleset",
            Step::LandlockRulePath => "open a Landlock rule's path",
            Step::LandlockRule => "add a Landlock rule",
            Step::LandlockRestrict => "enforce the Landlock ruleset",
            Step::LandlockNotEnforced => "Landlock not fully enforced",
            Step::Seccomp => "install the seccomp filter",
            Step::Exec => "execveat of the binary fd",
            Step::Panic => "internal panic in the child",
        }
    }

    fn from_u32(v: u32) -> Option<Step> {
        Step::ALL.into_iter().find(|s| *s as u32 == v)
    }
}

/// Why a step failed: the errno and, where one applies, the path or rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub step: Step,
    pub errno: i32,
    pub detail: String,
}

impl Failure {
    pub fn new(step: Step, errno: i32) -> Failure {
        Failure { step, errno, detail: String::new() }
    }

    pub fn with_detail(step: Step, errno: i32, detail: impl Into<String>) -> Failure {
        Failure { step, errno, detail: detail.into() }
    }
}

/// What a child reports before its exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Failed(Failure),
    /// A standby holds nothing but its control socket and waits for an order.
    Parked,
}

/// Largest report on the wire (below PIPE_BUF, so it is atomic).
pub(crate) const REPORT_MAX: usize = 512;
const TAG_FAILED: u8 = 0x46;
const TAG_PARKED: u8 = 0x50;
/// tag, step, errno, detail length.
const FAILED_HEADER: usize = 1 + 4 + 4 + 2;

impl Report {
    /// The wire form; a detail too long for [`REPORT_MAX`] is cut.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Report::Parked => vec![TAG_PARKED],
            Report::Failed(f) => {
                let mut detail = f.detail.as_bytes();
                detail = &detail[..detail.len().min(REPORT_MAX - FAILED_HEADER)];
                let mut out = Vec::with_capacity(FAILED_HEADER + detail.len());
                out.push(TAG_FAILED);
                out.extend_from_slice(&(f.step as u32).to_le_bytes());
                out.extend_from_slice(&f.errno.to_le_bytes());
                out.extend_from_slice(&(detail.len() as u16).to_le_bytes());
                out.extend_from_slice(detail);
                out
            }
        }
    }

    /// Parse one report; `None` for anything that is not one.
    pub fn decode(bytes: &[u8]) -> Option<Report> {
        match *bytes.first()? {
            TAG_PARKED if bytes.len() == 1 => Some(Report::Parked),
            TAG_FAILED if bytes.len() >= FAILED_HEADER => {
                let u32_at = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
                let step = Step::from_u32(u32_at(1))?;
                let errno = u32_at(5) as i32;
                let len = u16::from_le_bytes([bytes[9], bytes[10]]) as usize;
                let detail = bytes.get(FAILED_HEADER..FAILED_HEADER + len)?;
                (bytes.len() == FAILED_HEADER + len)
                    .then(|| Report::Failed(Failure { step, errno, detail: String::from_utf8_lossy(detail).into_owned() }))
            }
            _ => None,
        }
    }

    /// Child side: write this report (a failed write has nowhere to go).
    pub(crate) fn send(&self, fd: RawFd) {
        let bytes = self.encode();
        // SAFETY: writing a buffer we own to the report channel.
        unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    }
}

/// What the launcher heard on a report channel.
#[derive(Debug)]
pub(crate) enum Heard {
    Report(Report),
    /// End of file: the child exec'd (close-on-exec) or died without a word.
    Closed,
    /// A read error, or bytes that are not a report.
    Garbled(std::io::Error),
}

/// Launcher side: block for the next report.
pub(crate) fn read_report(fd: RawFd) -> Heard {
    let mut buf = [0u8; REPORT_MAX];
    loop {
        // SAFETY: reading into a stack buffer of the given length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Heard::Garbled(e);
        }
        if n == 0 {
            return Heard::Closed;
        }
        return match Report::decode(&buf[..n as usize]) {
            Some(r) => Heard::Report(r),
            None => Heard::Garbled(std::io::Error::from_raw_os_error(libc::EPROTO)),
        };
    }
}

/// A standby's launch order. The fds (binary, stdin, stdout, stderr, and
/// the IPC socket when `ipc`) travel beside it as SCM_RIGHTS, in that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub ipc: bool,
    pub argv: Vec<CString>,
}

/// Largest order accepted; a longer argv launches cold instead.
pub(crate) const ORDER_MAX: usize = 64 * 1024;
/// fds an order carries at most.
pub(crate) const ORDER_FDS: usize = 5;

impl Order {
    /// fds that must arrive with this order.
    pub fn fd_count(&self) -> usize {
        4 + usize::from(self.ipc)
    }

    /// One byte for `ipc`, then each argument NUL-terminated. Err(E2BIG)
    /// when longer than [`ORDER_MAX`].
    pub fn encode(&self) -> Result<Vec<u8>, std::io::Error> {
        let mut out = vec![u8::from(self.ipc)];
        for a in &self.argv {
            out.extend_from_slice(a.as_bytes_with_nul());
        }
        if out.len() > ORDER_MAX {
            return Err(std::io::Error::from_raw_os_error(libc::E2BIG));
        }
        Ok(out)
    }

    pub fn decode(bytes: &[u8]) -> Option<Order> {
        let (flag, body) = bytes.split_first()?;
        let ipc = match flag {
            0 => false,
            1 => true,
            _ => return None,
        };
        let argv = match body {
            [] => Vec::new(),
            _ => body.strip_suffix(&[0])?.split(|b| *b == 0).map(|a| CString::new(a).ok()).collect::<Option<_>>()?,
        };
        Some(Order { ipc, argv })
    }
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;
