//! The child side of a launch: everything between clone and exec, one call
//! per step, in the order of the README's launch-order list. Runs in a fork
//! of the single-threaded launcher, so allocation is safe; it never returns —
//! it execs or `_exit`s after reporting the failed step ([`Report::Failed`])
//! on the report channel, which a successful exec closes.
//!
//! Ordering contract:
//! * ids are set before PR_SET_PDEATHSIG, because changing them clears it;
//! * bind sources are opened *after* CLONE_NEWNS (a mount from another mount
//!   namespace cannot be bind-mounted) and *before* the staging tmpfs covers
//!   anything (`rootfs.rs`);
//! * on cgroup v1 nothing of the module runs before the launcher has
//!   attached us; the cgroup namespace is unshared only then, so its root is
//!   our own cgroup;
//! * fds are arranged before rlimits (RLIMIT_NOFILE may be below EXEC_FD);
//! * capabilities are dropped before no_new_privs, Landlock and seccomp, and
//!   seccomp comes last because the allowlist kills `landlock_*` and `prctl`;
//! * the binary is exec'd from the fd that was hashed, never re-opened by path.

mod caps;
mod fds;
mod landlock;
mod rootfs;

use std::ffi::CString;
use std::os::fd::IntoRawFd;

use crate::fdpass;
use crate::handshake::{self, Failure, Go, Order, Report, Step};
use crate::prepare::Prepared;
use crate::seccomp::{self, EXEC_FD};
use crate::sys::{self, errno};

pub(crate) use fds::ChildFds;

type StepResult = Result<(), Failure>;

/// `rc < 0` → `step` failed with the current errno.
fn check(step: Step, rc: libc::c_long) -> StepResult {
    if rc < 0 {
        Err(Failure::new(step, errno()))
    } else {
        Ok(())
    }
}

/// Entry point of a cold launch after clone; never returns.
pub(crate) fn run(p: &Prepared, fds: &ChildFds, argv: &[CString]) -> std::convert::Infallible {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| released_then_confine(p, fds, argv)));
    report_and_exit(result, fds.report)
}

/// Entry point of a standby (see `standby.rs`) after clone; never returns.
pub(crate) fn run_standby(p: &Prepared, ctl: i32) -> std::convert::Infallible {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ordered_then_confine(p, ctl)));
    report_and_exit(result, ctl)
}

/// Tell the launcher which step failed (a successful exec closes the
/// channel instead), then leave without running the launcher's destructors.
fn report_and_exit(result: std::thread::Result<StepResult>, report: i32) -> std::convert::Infallible {
    let failure = match result {
        Ok(Err(f)) => f,
        Ok(Ok(())) => Failure::new(Step::Exec, libc::EIO),
        Err(_) => Failure::new(Step::Panic, libc::EIO),
    };
    // After arrange_fds the channel sits at REPORT_FD.
    let fd = if fd_is_open(fds::REPORT_FD) { fds::REPORT_FD } else { report };
    Report::Failed(failure).send(fd);
    // SAFETY: leaving without running the launcher's destructors or atexit handlers.
    unsafe { libc::_exit(127) }
}

fn fd_is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD only inspects the fd table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Cold launch: wait until the launcher has mapped our ids, then confine.
fn released_then_confine(p: &Prepared, fds: &ChildFds, argv: &[CString]) -> StepResult {
    for fd in &fds.launcher_only {
        // SAFETY: closing our copies of the launcher's ends.
        unsafe { libc::close(*fd) };
    }
    handshake::await_go(fds.go, Go::Release).map_err(|e| Failure::new(Step::AwaitRelease, e))?;
    confine_and_exec(p, fds, argv)
}

/// A standby: namespaces made, ids mapped and cgroup joined by the launcher
/// ahead of time. Hold nothing of the launcher but the control socket, say
/// we are parked, wait for the [`Order`] (argv, and the fds as SCM_RIGHTS),
/// then confine as a cold launch would. The socket doubles as the report
/// channel.
fn ordered_then_confine(p: &Prepared, ctl: i32) -> StepResult {
    // Other launches' pipes and standbys' sockets must not be held here, or
    // their hang-ups would never be seen. 0-2 are replaced before exec.
    if ctl > 3 {
        sys::close_range(3, ctl as u32 - 1);
    }
    sys::close_range(ctl as u32 + 1, u32::MAX);
    // The ids are still the launcher's, so this survives until the order;
    // after the hang-up check the launcher's death ends us.
    die_with_launcher(ctl, Step::StandbyDeathSignal, Step::StandbyLauncherGone)?;
    // Parked: the launcher counts us ready only from here on.
    fdpass::send_packet(ctl, &Report::Parked.encode(), &[])
        .map_err(|e| Failure::new(Step::StandbyReportParked, e.raw_os_error().unwrap_or(libc::EPIPE)))?;
    let mut buf = vec![0u8; handshake::ORDER_MAX];
    let (n, received) = match fdpass::recv_packet(ctl, &mut buf, handshake::ORDER_FDS) {
        Ok(Some(order)) => order,
        // The launcher dropped us (or died): nothing to run.
        // SAFETY: leaving without running the launcher's destructors.
        Ok(None) => unsafe { libc::_exit(0) },
        Err(e) => return Err(Failure::new(Step::StandbyReceiveOrder, e.raw_os_error().unwrap_or(libc::EPROTO))),
    };
    // Raw from here on: arrange_fds places and closes them like a cold
    // child's inherited fds.
    let received: Vec<i32> = received.into_iter().map(IntoRawFd::into_raw_fd).collect();
    let order = Order::decode(&buf[..n])
        .filter(|o| o.fd_count() == received.len())
        .ok_or_else(|| Failure::with_detail(Step::StandbyBadOrder, libc::EPROTO, format!("{n} bytes, {} fds", received.len())))?;
    let fds = ChildFds::from_order(ctl, &received, order.ipc);
    confine_and_exec(p, &fds, &order.argv)
}

/// From setsid to exec: the same for a cold launch and a standby.
fn confine_and_exec(p: &Prepared, fds: &ChildFds, argv: &[CString]) -> StepResult {
    let policy = &p.policy;
    new_session()?;
    become_sandbox_ids(p)?;
    die_with_launcher(fds.go, Step::DeathSignal, Step::LauncherGone)?;
    if policy.namespaces.uts {
        // SAFETY: a NUL-terminated hostname and its length.
        check(Step::Hostname, unsafe { libc::sethostname(p.hostname.as_ptr(), p.hostname.as_bytes().len()) } as _)?;
    }
    if policy.namespaces.mount {
        rootfs::build(p)?;
    }
    if fds.await_cgroup {
        // v1: the launcher attached us while we built the rootfs.
        handshake::await_go(fds.go, Go::CgroupAttached).map_err(|e| Failure::new(Step::AwaitCgroup, e))?;
    }
    if fds.go != fds.report {
        // SAFETY: the go pipe has served its purpose.
        unsafe { libc::close(fds.go) };
    }
    if p.unshare_cgroup_late {
        // SAFETY: no memory preconditions.
        check(Step::CgroupNamespace, unsafe { libc::unshare(libc::CLONE_NEWCGROUP) } as _)?;
    }
    fds::arrange(fds)?;
    set_rlimits(p)?;
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask((policy.umask & 0o777) as libc::mode_t) };
    if policy.capabilities.drop_all {
        caps::drop_all(p.cap_last_cap)?;
    }
    // SAFETY: no memory preconditions.
    check(Step::NoNewPrivs, unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } as _)?;
    if policy.landlock.is_some() && p.landlock_abi > 0 {
        landlock::apply(p)?;
    }
    if let Some(prog) = &p.seccomp {
        seccomp::install(prog).map_err(|e| Failure::new(Step::Seccomp, e))?;
    }
    exec(p, argv)
}

/// Our own session, default signal dispositions and an empty mask: ignored
/// signals stay ignored across exec, and the launcher's runtime ignores
/// SIGPIPE (Rust) or more, so without this e.g. RLIMIT_FSIZE would not end
/// the sandbox with SIGXFSZ.
fn new_session() -> StepResult {
    // SAFETY: plain process-attribute syscalls on our own process.
    unsafe {
        check(Step::Setsid, libc::setsid() as _)?;
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
    Ok(())
}

/// The sandbox's own uid and gid inside its user namespace.
fn become_sandbox_ids(p: &Prepared) -> StepResult {
    let ids = p.policy.identity;
    // SAFETY: no memory preconditions.
    unsafe {
        check(Step::SetGid, libc::setresgid(ids.inside_gid, ids.inside_gid, ids.inside_gid) as _)?;
        check(Step::SetUid, libc::setresuid(ids.inside_uid, ids.inside_uid, ids.inside_uid) as _)
    }
}

/// If the launcher dies, so do we (and with us, as pid-namespace init,
/// everything we started). The launcher holds the other end of `channel`
/// until our exec, so a hang-up here means it died before the death signal
/// was armed.
fn die_with_launcher(channel: i32, arm: Step, gone: Step) -> StepResult {
    // SAFETY: prctl and poll on a stack pollfd.
    unsafe {
        check(arm, libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) as _)?;
        let mut pfd = libc::pollfd { fd: channel, events: libc::POLLIN, revents: 0 };
        if libc::poll(&mut pfd, 1, 0) > 0 && pfd.revents & libc::POLLHUP != 0 {
            return Err(Failure::new(gone, libc::EPIPE));
        }
    }
    Ok(())
}

fn set_rlimits(p: &Prepared) -> StepResult {
    for (resource, value) in &p.rlimits {
        let lim = libc::rlimit { rlim_cur: *value, rlim_max: *value };
        // SAFETY: a stack rlimit.
        if unsafe { libc::setrlimit(*resource, &lim) } < 0 {
            return Err(Failure::with_detail(Step::Rlimits, errno(), format!("resource {resource} = {value}")));
        }
    }
    Ok(())
}

/// execveat(EXEC_FD): returns only on failure.
fn exec(p: &Prepared, argv: &[CString]) -> StepResult {
    let argv: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let envp: Vec<*const libc::c_char> = p.envp.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    sys::execveat_fd(EXEC_FD, &argv, &envp);
    Err(Failure::new(Step::Exec, errno()))
}
