//! The child side of a launch: everything between clone and exec, in the
//! order DESIGN.md gives. Runs in a fork of the single-threaded launcher, so
//! allocation is safe; it never returns — it execs or `_exit`s, reporting the
//! failing step and errno over the error pipe (closed by exec on success).
//!
//! Ordering contract:
//! * sources of bind mounts are opened *after* CLONE_NEWNS (a mount from
//!   another mount namespace cannot be bind-mounted) and *before* the staging
//!   tmpfs covers anything;
//! * fds are arranged before rlimits (RLIMIT_NOFILE may be below EXEC_FD);
//! * capabilities are dropped before no_new_privs, Landlock and seccomp, and
//!   seccomp comes last because the allowlist kills `landlock_*` and `prctl`;
//! * the binary is exec'd from the fd that was hashed, never re-opened by path.

use std::ffi::{CStr, CString};
use std::os::fd::{BorrowedFd, IntoRawFd};

use landlock::{
    Access, AccessFs, AccessNet, NetPort, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
    Scope, ABI,
};

use crate::caps;
use crate::fdpass;
use crate::launch::Prepared;
use crate::policy::FsAccess;
use crate::seccomp::{self, EXEC_FD};

/// The error pipe's fd number in the child until exec closes it.
pub(crate) const ERR_FD: i32 = 1022;
/// Where the rootfs is assembled before pivot_root (covered by a private tmpfs
/// inside our own mount namespace; the host's /tmp is untouched).
const STAGING: &CStr = c"/tmp";

/// Steps named in errors; the discriminant crosses the error pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Step {
    Release = 1,
    Setsid,
    SetIds,
    CgroupAttach,
    CgroupNamespace,
    Hostname,
    MountPrivate,
    OpenBindSource,
    MountRootTmpfs,
    MakeMountPoint,
    BindData,
    BindReadOnly,
    MountDev,
    MountProc,
    PivotRoot,
    RemountRootReadOnly,
    ArrangeFds,
    Rlimits,
    DropCapabilities,
    NoNewPrivs,
    Landlock,
    LandlockNotEnforced,
    Seccomp,
    Exec,
    Panic,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Release => "wait for the parent's release (parent gone)",
            Step::Setsid => "setsid",
            Step::SetIds => "setresuid/setresgid inside the user namespace",
            Step::CgroupAttach => "wait for the parent to attach the cgroup (parent gone)",
            Step::CgroupNamespace => "unshare(CLONE_NEWCGROUP)",
            Step::Hostname => "sethostname",
            Step::MountPrivate => "make / recursively private",
            Step::OpenBindSource => "open a bind-mount source",
            Step::MountRootTmpfs => "mount the root tmpfs",
            Step::MakeMountPoint => "create a mount point",
            Step::BindData => "bind-mount the data dir",
            Step::BindReadOnly => "read-only bind mount",
            Step::MountDev => "assemble /dev",
            Step::MountProc => "mount procfs",
            Step::PivotRoot => "pivot_root",
            Step::RemountRootReadOnly => "remount / read-only",
            Step::ArrangeFds => "arrange fds 0-3",
            Step::Rlimits => "setrlimit",
            Step::DropCapabilities => "drop capabilities and lock securebits",
            Step::NoNewPrivs => "prctl(PR_SET_NO_NEW_PRIVS)",
            Step::Landlock => "Landlock ruleset",
            Step::LandlockNotEnforced => "Landlock not fully enforced",
            Step::Seccomp => "install seccomp filter",
            Step::Exec => "execveat of the binary fd",
            Step::Panic => "internal panic in the child",
        }
    }

    pub fn from_u32(v: u32) -> Option<Step> {
        const ALL: [Step; 25] = [
            Step::Release,
            Step::Setsid,
            Step::SetIds,
            Step::CgroupAttach,
            Step::CgroupNamespace,
            Step::Hostname,
            Step::MountPrivate,
            Step::OpenBindSource,
            Step::MountRootTmpfs,
            Step::MakeMountPoint,
            Step::BindData,
            Step::BindReadOnly,
            Step::MountDev,
            Step::MountProc,
            Step::PivotRoot,
            Step::RemountRootReadOnly,
            Step::ArrangeFds,
            Step::Rlimits,
            Step::DropCapabilities,
            Step::NoNewPrivs,
            Step::Landlock,
            Step::LandlockNotEnforced,
            Step::Seccomp,
            Step::Exec,
            Step::Panic,
        ];
        ALL.into_iter().find(|s| *s as u32 == v)
    }
}

type StepResult = Result<(), (Step, i32)>;

/// The error a child's 8-byte failure report (step, errno) stands for.
pub(crate) fn setup_error(policy: &str, msg: [u8; 8]) -> crate::error::SandboxError {
    let step = u32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]);
    let errno = i32::from_ne_bytes([msg[4], msg[5], msg[6], msg[7]]);
    crate::error::SandboxError::ChildSetup {
        policy: policy.to_string(),
        step: Step::from_u32(step).map(Step::name).unwrap_or("unknown step"),
        errno: std::io::Error::from_raw_os_error(errno),
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

fn check(step: Step, rc: libc::c_long) -> StepResult {
    if rc < 0 {
        Err((step, errno()))
    } else {
        Ok(())
    }
}

/// Raw fds the child starts with (all CLOEXEC, owned by the parent's copies).
pub(crate) struct ChildFds {
    /// Its hang-up before our exec means the launcher died: the release
    /// pipe of a cold launch, a standby's control socket.
    pub release_r: i32,
    /// Where a failed step is reported (closed by exec on success); a
    /// standby's control socket again.
    pub err_w: i32,
    pub exec: i32,
    pub stdin: i32,
    pub stdout: i32,
    pub stderr: i32,
    pub ipc: Option<i32>,
    /// A second byte on the release pipe follows once the parent has put us
    /// into our (v1) cgroup; wait for it before anything of the module runs.
    pub await_cgroup: bool,
    /// Parent-side fds to close first.
    pub parent_only: Vec<i32>,
}

/// Entry point after clone; never returns.
pub(crate) fn run(p: &Prepared, fds: &ChildFds, argv: &[CString]) -> std::convert::Infallible {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| released_then_confine(p, fds, argv)));
    report_and_exit(result, fds.err_w)
}

/// Entry point of a standby (see `standby.rs`) after clone; never returns.
pub(crate) fn run_standby(p: &Prepared, ctl: i32) -> std::convert::Infallible {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ordered_then_confine(p, ctl)));
    report_and_exit(result, ctl)
}

/// Tell the parent which step failed (exec succeeding closes the channel
/// instead), then leave without running the parent's destructors.
fn report_and_exit(result: std::thread::Result<StepResult>, err_w: i32) -> std::convert::Infallible {
    let (step, err) = match result {
        Ok(Err(e)) => e,
        Ok(Ok(())) => (Step::Exec, libc::EIO),
        Err(_) => (Step::Panic, libc::EIO),
    };
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&(step as u32).to_ne_bytes());
    msg[4..].copy_from_slice(&err.to_ne_bytes());
    let err_fd = if fcntl_ok(ERR_FD) { ERR_FD } else { err_w };
    // SAFETY: writing 8 bytes from a stack buffer, then leaving without
    // running the parent's destructors or atexit handlers.
    unsafe {
        libc::write(err_fd, msg.as_ptr().cast(), msg.len());
        libc::_exit(127)
    }
}

fn fcntl_ok(fd: i32) -> bool {
    // SAFETY: F_GETFD only inspects the fd table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Cold launch: wait for the parent to map our ids (and, on v1, to start
/// attaching our cgroup), then confine.
fn released_then_confine(p: &Prepared, fds: &ChildFds, argv: &[CString]) -> StepResult {
    // SAFETY: plain syscalls on fds and a stack byte we own.
    unsafe {
        for fd in &fds.parent_only {
            libc::close(*fd);
        }
        let mut byte = 0u8;
        let n = libc::read(fds.release_r, (&mut byte as *mut u8).cast(), 1);
        if n != 1 {
            return Err((Step::Release, if n < 0 { errno() } else { libc::EPIPE }));
        }
    }
    confine_and_exec(p, fds, argv)
}

/// Largest standby order (the argv) we accept; a longer one launches cold.
pub(crate) const STANDBY_ORDER_MAX: usize = 64 * 1024;
/// A standby's one-byte message once it holds nothing but its control
/// socket (failures are 8 bytes: step, errno).
pub(crate) const STANDBY_PARKED: u8 = 0x50;
/// fds an order carries: binary, stdin, stdout, stderr and the IPC socket.
const STANDBY_ORDER_FDS: usize = 5;

/// A standby: namespaces made, ids mapped and cgroup joined by the parent
/// ahead of time. Hold nothing of the launcher but the control socket, wait
/// for the order (argv, and the fds as SCM_RIGHTS), then confine as a cold
/// launch would. The control socket doubles as the error channel.
fn ordered_then_confine(p: &Prepared, ctl: i32) -> StepResult {
    // SAFETY: plain syscalls on fds and buffers we own.
    unsafe {
        // Other launches' pipes and standbys' sockets must not be held here,
        // or their hang-ups would never be seen. 0-2 are replaced before exec.
        if ctl > 3 {
            libc::syscall(libc::SYS_close_range, 3, ctl - 1, 0);
        }
        libc::syscall(libc::SYS_close_range, ctl + 1, u32::MAX, 0);
        // The ids are still the launcher's, so this survives until the
        // order; after the hang-up check the launcher's death ends us.
        check(Step::Release, libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) as _)?;
        let mut pfd = libc::pollfd { fd: ctl, events: libc::POLLIN, revents: 0 };
        if libc::poll(&mut pfd, 1, 0) > 0 && pfd.revents & libc::POLLHUP != 0 {
            return Err((Step::Release, libc::EPIPE));
        }
        // Parked: the launcher counts us ready only from here on.
        if libc::send(ctl, [STANDBY_PARKED].as_ptr().cast(), 1, libc::MSG_NOSIGNAL) != 1 {
            return Err((Step::Release, errno()));
        }
        let mut buf = vec![0u8; STANDBY_ORDER_MAX];
        let (n, received) = match fdpass::recv_packet(ctl, &mut buf, STANDBY_ORDER_FDS) {
            Ok(Some(order)) => order,
            // The launcher dropped us (or died): nothing to run.
            Ok(None) => libc::_exit(0),
            Err(e) => return Err((Step::Release, e.raw_os_error().unwrap_or(libc::EPROTO))),
        };
        // Raw from here on: arrange_fds places and closes them like a cold
        // child's inherited fds.
        let fds: Vec<i32> = received.into_iter().map(IntoRawFd::into_raw_fd).collect();
        let has_ipc = n > 0 && buf[0] == 1;
        if n == 0 || fds.len() != 4 + usize::from(has_ipc) {
            return Err((Step::Release, libc::EPROTO));
        }
        // Each argument NUL-terminated (empty ones included).
        let body = &buf[1..n];
        let argv: Vec<CString> = match body.strip_suffix(&[0]) {
            Some(args) => args.split(|b| *b == 0).map(|a| CString::new(a).unwrap_or_default()).collect(),
            None => Vec::new(),
        };
        let order = ChildFds {
            release_r: ctl,
            err_w: ctl,
            exec: fds[0],
            stdin: fds[1],
            stdout: fds[2],
            stderr: fds[3],
            ipc: has_ipc.then(|| fds[4]),
            await_cgroup: false,
            parent_only: Vec::new(),
        };
        confine_and_exec(p, &order, &argv)
    }
}

/// From setsid to exec: the same for a cold launch and a standby.
fn confine_and_exec(p: &Prepared, fds: &ChildFds, argv: &[CString]) -> StepResult {
    let policy = &p.policy;
    let mut byte = 0u8;
    // SAFETY (whole function): plain syscalls on fds and buffers we own.
    unsafe {
        check(Step::Setsid, libc::setsid() as _)?;
        reset_signals();

        let ids = policy.identity;
        check(Step::SetIds, libc::setresgid(ids.inside_gid, ids.inside_gid, ids.inside_gid) as _)?;
        check(Step::SetIds, libc::setresuid(ids.inside_uid, ids.inside_uid, ids.inside_uid) as _)?;
        // If the launcher dies, so do we (and with us, as pid-namespace init,
        // everything we started). Set only now: changing uid/gid clears it.
        // The launcher holds the release pipe's write end until our exec, so
        // a hang-up here means it died before the death signal was armed.
        check(Step::Release, libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) as _)?;
        let mut pfd = libc::pollfd { fd: fds.release_r, events: libc::POLLIN, revents: 0 };
        if libc::poll(&mut pfd, 1, 0) > 0 && pfd.revents & libc::POLLHUP != 0 {
            return Err((Step::Release, libc::EPIPE));
        }
        if policy.namespaces.uts {
            check(Step::Hostname, libc::sethostname(p.hostname.as_ptr(), p.hostname.as_bytes().len()) as _)?;
        }
        if policy.namespaces.mount {
            build_rootfs(p)?;
        }
        if fds.await_cgroup {
            // v1: the parent attaches us while we built the rootfs; nothing
            // of the module runs before it says so.
            let n = libc::read(fds.release_r, (&mut byte as *mut u8).cast(), 1);
            if n != 1 {
                return Err((Step::CgroupAttach, if n < 0 { errno() } else { libc::EPIPE }));
            }
        }
        if fds.release_r != fds.err_w {
            libc::close(fds.release_r);
        }
        if p.unshare_cgroup_late {
            // Only now: the namespace's root is the cgroup we are in.
            check(Step::CgroupNamespace, libc::unshare(libc::CLONE_NEWCGROUP) as _)?;
        }
        arrange_fds(fds)?;
        set_rlimits(p)?;
        libc::umask((policy.umask & 0o777) as libc::mode_t);
        if policy.capabilities.drop_all {
            drop_capabilities(p.cap_last_cap)?;
        }
        check(Step::NoNewPrivs, libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) as _)?;
        if policy.landlock.is_some() && p.landlock_abi > 0 {
            apply_landlock(p)?;
        }
        if let Some(prog) = &p.seccomp {
            seccomp::install(prog).map_err(|e| (Step::Seccomp, e))?;
        }
        let argv: Vec<*const libc::c_char> =
            argv.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
        let envp: Vec<*const libc::c_char> =
            p.envp.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
        libc::syscall(libc::SYS_execveat, EXEC_FD, c"".as_ptr(), argv.as_ptr(), envp.as_ptr(), libc::AT_EMPTY_PATH);
        Err((Step::Exec, errno()))
    }
}

/// Ignored signals stay ignored across exec, and the launcher's runtime
/// ignores SIGPIPE (Rust) or more: give the sandbox default dispositions and
/// an empty mask, so e.g. RLIMIT_FSIZE really ends it with SIGXFSZ.
unsafe fn reset_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
}

unsafe fn open_path(path: &CStr, step: Step) -> Result<i32, (Step, i32)> {
    let fd = libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
    if fd < 0 {
        Err((step, errno()))
    } else {
        Ok(fd)
    }
}

fn proc_fd_path(fd: i32) -> CString {
    CString::new(format!("/proc/self/fd/{fd}")).unwrap_or_default()
}

unsafe fn mount_setattr(path: &CStr, recursive: bool, set: u64) -> libc::c_long {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr { attr_set: set, attr_clr: 0, propagation: 0, userns_fd: 0 };
    let flags = if recursive { 0x8000 /* AT_RECURSIVE */ } else { 0 };
    libc::syscall(libc::SYS_mount_setattr, libc::AT_FDCWD, path.as_ptr(), flags, &attr, std::mem::size_of::<MountAttr>())
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// Create `path` (and parents) as directories, or as an empty file when
/// `file` is set (a bind target must match its source's type).
unsafe fn make_mount_point(path: &CStr, file: bool) -> StepResult {
    let bytes = path.to_bytes();
    for (i, b) in bytes.iter().enumerate().skip(1) {
        if *b == b'/' {
            let parent = CString::new(&bytes[..i]).map_err(|_| (Step::MakeMountPoint, libc::EINVAL))?;
            if libc::mkdir(parent.as_ptr(), 0o755) < 0 && errno() != libc::EEXIST {
                return Err((Step::MakeMountPoint, errno()));
            }
        }
    }
    let rc = if file {
        let fd = libc::open(path.as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC, 0o644);
        if fd >= 0 {
            libc::close(fd);
            0
        } else {
            -1
        }
    } else {
        libc::mkdir(path.as_ptr(), 0o755)
    };
    if rc < 0 && errno() != libc::EEXIST {
        return Err((Step::MakeMountPoint, errno()));
    }
    Ok(())
}

/// Mount a fresh filesystem (`fstype` is also used as the source name).
unsafe fn mount_fs(step: Step, fstype: &CStr, target: &CStr, flags: libc::c_ulong, opts: &CStr) -> StepResult {
    check(step, libc::mount(fstype.as_ptr(), target.as_ptr(), fstype.as_ptr(), flags, opts.as_ptr().cast()) as _)
}

unsafe fn bind_plain(source_fd: i32, target: &CStr) -> libc::c_long {
    let src = proc_fd_path(source_fd);
    libc::mount(src.as_ptr(), target.as_ptr(), std::ptr::null(), libc::MS_BIND | libc::MS_REC, std::ptr::null()) as _
}

unsafe fn bind(source_fd: i32, target: &CStr, attrs: u64, step: Step) -> StepResult {
    check(step, bind_plain(source_fd, target))?;
    // mount_setattr only sets flags, so flags the host locked on the source
    // (which a user namespace may not clear) never make this fail.
    check(step, mount_setattr(target, true, attrs))
}

unsafe fn build_rootfs(p: &Prepared) -> StepResult {
    let none = std::ptr::null::<libc::c_char>();
    check(
        Step::MountPrivate,
        libc::mount(none, c"/".as_ptr(), none, libc::MS_REC | libc::MS_PRIVATE, std::ptr::null()) as _,
    )?;
    // Open every source while the host tree is still visible at its paths.
    let data_fd = match &p.data {
        Some(d) => Some(open_path(&d.source, Step::OpenBindSource)?),
        None => None,
    };
    let mut ro_fds = Vec::with_capacity(p.ro_binds.len());
    for b in &p.ro_binds {
        ro_fds.push(open_path(&b.source, Step::OpenBindSource)?);
    }
    let mut dev_fds = Vec::new();
    if p.policy.rootfs.dev {
        for (host, _) in &p.dev_nodes {
            dev_fds.push(open_path(host, Step::OpenBindSource)?);
        }
    }
    mount_fs(Step::MountRootTmpfs, c"tmpfs", STAGING, libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, &p.root_tmpfs_opts)?;
    if let (Some(d), Some(fd)) = (&p.data, data_fd) {
        make_mount_point(&d.staged_target, false)?;
        let mut attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
        if !d.allow_exec {
            attrs |= MOUNT_ATTR_NOEXEC;
        }
        if d.read_only {
            attrs |= MOUNT_ATTR_RDONLY;
        }
        bind(fd, &d.staged_target, attrs, Step::BindData)?;
        libc::close(fd);
    }
    for (b, fd) in p.ro_binds.iter().zip(ro_fds) {
        make_mount_point(&b.staged_target, !b.is_dir)?;
        bind(fd, &b.staged_target, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, Step::BindReadOnly)?;
        libc::close(fd);
    }
    if p.policy.rootfs.dev {
        // The nodes are bound into a plain directory of the root tmpfs, which
        // becomes read-only with the root: no own tmpfs, no per-node flags
        // (a character device cannot be executed, and set-id bits on it mean
        // nothing), which keeps /dev at one bind per node.
        for ((_, staged), fd) in p.dev_nodes.iter().zip(dev_fds) {
            make_mount_point(staged, true)?;
            check(Step::MountDev, bind_plain(fd, staged))?;
            libc::close(fd);
        }
    }
    if p.policy.rootfs.proc {
        let proc_dir = c"/tmp/proc";
        make_mount_point(proc_dir, false)?;
        mount_fs(
            Step::MountProc,
            c"proc",
            proc_dir,
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            c"hidepid=invisible,subset=pid",
        )?;
    }
    // pivot_root(".", ".") stacks the old root on top of the new one; the
    // detach then drops it, leaving no path back to the host tree.
    check(Step::PivotRoot, libc::chdir(STAGING.as_ptr()) as _)?;
    check(Step::PivotRoot, libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()))?;
    check(Step::PivotRoot, libc::umount2(c".".as_ptr(), libc::MNT_DETACH) as _)?;
    check(Step::PivotRoot, libc::chdir(c"/".as_ptr()) as _)?;
    if !p.policy.rootfs.writable_root {
        check(Step::RemountRootReadOnly, mount_setattr(c"/", false, MOUNT_ATTR_RDONLY))?;
    }
    Ok(())
}


/// Leave exactly {0,1,2,3} plus the exec fd and the error pipe (both CLOEXEC).
unsafe fn arrange_fds(fds: &ChildFds) -> StepResult {
    let dupfd = |fd: i32| -> Result<i32, (Step, i32)> {
        let r = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10);
        if r < 0 {
            Err((Step::ArrangeFds, errno()))
        } else {
            Ok(r)
        }
    };
    // EXEC_FD must be below RLIMIT_NOFILE for dup3 to place it.
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    if lim.rlim_cur <= EXEC_FD as u64 {
        lim.rlim_cur = (EXEC_FD as u64 + 1).min(lim.rlim_max);
        check(Step::ArrangeFds, libc::setrlimit(libc::RLIMIT_NOFILE, &lim) as _)?;
    }
    // First copy every source above the target range so no dup2 below can
    // clobber a source that has not been placed yet.
    let stdin = dupfd(fds.stdin)?;
    let stdout = dupfd(fds.stdout)?;
    let stderr = dupfd(fds.stderr)?;
    let ipc = match fds.ipc {
        Some(fd) => Some(dupfd(fd)?),
        None => None,
    };
    let mut err = dupfd(fds.err_w)?;
    let exec = dupfd(fds.exec)?;
    for (src, dst) in [(stdin, 0), (stdout, 1), (stderr, 2)] {
        check(Step::ArrangeFds, libc::dup2(src, dst) as _)?;
    }
    if let Some(ipc) = ipc {
        check(Step::ArrangeFds, libc::dup2(ipc, 3) as _)?;
    }
    if err == EXEC_FD {
        err = dupfd(err)?;
    }
    if exec != EXEC_FD {
        check(Step::ArrangeFds, libc::dup3(exec, EXEC_FD, libc::O_CLOEXEC) as _)?;
    }
    if err != ERR_FD {
        check(Step::ArrangeFds, libc::dup3(err, ERR_FD, libc::O_CLOEXEC) as _)?;
    }
    let first_free = if ipc.is_some() { 4 } else { 3 };
    check(Step::ArrangeFds, libc::syscall(libc::SYS_close_range, first_free, ERR_FD - 1, 0))?;
    check(Step::ArrangeFds, libc::syscall(libc::SYS_close_range, EXEC_FD + 1, u32::MAX, 0))?;
    Ok(())
}

unsafe fn set_rlimits(p: &Prepared) -> StepResult {
    for (resource, value) in &p.rlimits {
        let lim = libc::rlimit { rlim_cur: *value, rlim_max: *value };
        check(Step::Rlimits, libc::setrlimit(*resource, &lim) as _)?;
    }
    Ok(())
}

unsafe fn drop_capabilities(cap_last_cap: u32) -> StepResult {
    // Securebits first (needs CAP_SETPCAP): uid 0 inside never regains
    // capabilities on exec, and nobody can undo that.
    let bits = caps::SECBITS_LOCKED_DOWN | caps::SECBIT_KEEP_CAPS_LOCKED;
    check(Step::DropCapabilities, libc::prctl(libc::PR_SET_SECUREBITS, bits, 0, 0, 0) as _)?;
    for cap in 0..=cap_last_cap {
        check(Step::DropCapabilities, libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) as _)?;
    }
    check(
        Step::DropCapabilities,
        libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) as _,
    )?;
    check(Step::DropCapabilities, caps::capset(0, 0, 0))
}

fn fs_access(list: &[FsAccess], abi: ABI) -> landlock::BitFlags<AccessFs> {
    let mut out = landlock::BitFlags::<AccessFs>::empty();
    for a in list {
        out |= match a {
            FsAccess::Execute => AccessFs::Execute,
            FsAccess::ReadFile => AccessFs::ReadFile,
            FsAccess::ReadDir => AccessFs::ReadDir,
            FsAccess::WriteFile => AccessFs::WriteFile,
            FsAccess::Truncate => AccessFs::Truncate,
            FsAccess::RemoveFile => AccessFs::RemoveFile,
            FsAccess::RemoveDir => AccessFs::RemoveDir,
            FsAccess::MakeReg => AccessFs::MakeReg,
            FsAccess::MakeDir => AccessFs::MakeDir,
            FsAccess::MakeSym => AccessFs::MakeSym,
            FsAccess::Refer => AccessFs::Refer,
        };
    }
    // Rights the running ABI does not know cannot be requested.
    out & AccessFs::from_all(abi)
}

fn apply_landlock(p: &Prepared) -> StepResult {
    let Some(ll) = &p.policy.landlock else { return Ok(()) };
    let abi = ABI::from(p.landlock_abi as i32);
    let ll_err = |_e: landlock::RulesetError| (Step::Landlock, libc::EINVAL);
    let mut ruleset = Ruleset::default().handle_access(AccessFs::from_all(abi)).map_err(ll_err)?;
    if p.landlock_abi >= 4 {
        ruleset = ruleset.handle_access(AccessNet::from_all(abi)).map_err(ll_err)?;
    }
    if p.landlock_abi >= 6 {
        let mut scopes = landlock::BitFlags::<Scope>::empty();
        if ll.scope_abstract_unix {
            scopes |= Scope::AbstractUnixSocket;
        }
        if ll.scope_signal {
            scopes |= Scope::Signal;
        }
        if !scopes.is_empty() {
            ruleset = ruleset.scope(scopes).map_err(ll_err)?;
        }
    }
    let rules = p.policy.implicit_landlock_rules().into_iter().chain(ll.rules.iter().cloned());
    let paths: Vec<(std::path::PathBuf, landlock::BitFlags<AccessFs>)> =
        rules.map(|r| (r.path, fs_access(&r.access, abi))).filter(|(_, a)| !a.is_empty()).collect();
    let mut path_rules = Vec::with_capacity(paths.len());
    for (path, access) in paths {
        let fd = PathFd::new(path).map_err(|_| (Step::Landlock, libc::ENOENT))?;
        path_rules.push(PathBeneath::new(fd, access));
    }
    // The verified binary: executable and readable, by inode, wherever mounted.
    // SAFETY: EXEC_FD was placed by arrange_fds and stays open until exec.
    let exec_fd = unsafe { BorrowedFd::borrow_raw(EXEC_FD) };
    let mut created = ruleset
        .create()
        .map_err(ll_err)?
        .add_rule(PathBeneath::new(exec_fd, AccessFs::Execute | AccessFs::ReadFile))
        .map_err(ll_err)?
        .add_rules(path_rules.into_iter().map(Ok::<_, landlock::RulesetError>))
        .map_err(ll_err)?;
    if p.landlock_abi >= 4 {
        for port in &ll.tcp_bind {
            created = created.add_rule(NetPort::new(*port, AccessNet::BindTcp)).map_err(ll_err)?;
        }
        for port in &ll.tcp_connect {
            created = created.add_rule(NetPort::new(*port, AccessNet::ConnectTcp)).map_err(ll_err)?;
        }
    }
    let status = created.restrict_self().map_err(ll_err)?;
    if status.ruleset != RulesetStatus::FullyEnforced && !p.landlock_partial_ok {
        return Err((Step::LandlockNotEnforced, libc::EOPNOTSUPP));
    }
    Ok(())
}
