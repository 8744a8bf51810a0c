//! Raw system calls the libc crate does not wrap (or wraps without the
//! flags we need), and every raw constant the launch uses, each with the
//! Linux version that introduced it and its man page. Plain syscalls with
//! no allocation: safe between clone and exec.

use std::ffi::CStr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// `clone3(2)`, Linux 5.3: the only clone that returns a pidfd and (5.7)
/// can place the child in a cgroup at birth.
#[repr(C)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `CLONE_INTO_CGROUP`, Linux 5.7 (clone3(2)): the child is born in the
/// cgroup whose directory fd is `CloneArgs::cgroup`; cgroup v2 only.
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `AT_RECURSIVE` for mount_setattr(2), Linux 5.12.
pub const AT_RECURSIVE: libc::c_uint = 0x8000;
/// mount_setattr(2) attributes, Linux 5.12 (the values of fsmount(2), 5.2).
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// capget(2)/capset(2) header version 3 (64-bit sets), Linux 2.6.26.
pub const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// The errno of the last failed call (EIO if there is none to read).
pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

/// clone3 with `flags` (namespaces, CLONE_PIDFD) and, when `cgroup_fd` is
/// given, CLONE_INTO_CGROUP. No CLONE_VM: the child gets a copy of our
/// memory like fork(2). Returns 0 in the child, (pid, pidfd) in the parent.
pub fn clone3(flags: u64, cgroup_fd: Option<RawFd>) -> Result<Option<(i32, OwnedFd)>, std::io::Error> {
    let mut pidfd: i32 = -1;
    let mut flags = flags | libc::CLONE_PIDFD as u64;
    if cgroup_fd.is_some() {
        flags |= CLONE_INTO_CGROUP;
    }
    let args = CloneArgs {
        flags,
        pidfd: &mut pidfd as *mut i32 as u64,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup_fd.map_or(0, |fd| fd as u64),
    };
    // SAFETY: clone3 without CLONE_VM behaves like fork; `args` lives across
    // the call and its size is passed along.
    let pid = unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>()) };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        return Ok(None);
    }
    // SAFETY: clone3 wrote a fresh pidfd that nothing else owns.
    Ok(Some((pid as i32, unsafe { OwnedFd::from_raw_fd(pidfd) })))
}

/// pidfd_send_signal(2), Linux 5.1: signal exactly the process the pidfd
/// names, never a recycled pid.
pub fn pidfd_send_signal(pidfd: RawFd, signal: i32) -> libc::c_long {
    // SAFETY: a signal to our own pidfd, no siginfo.
    unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd, signal, std::ptr::null::<u8>(), 0) }
}

/// close_range(2), Linux 5.9: close every fd in `first..=last`.
pub fn close_range(first: u32, last: u32) -> libc::c_long {
    // SAFETY: closing fds has no memory preconditions.
    unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) }
}

/// mount_setattr(2), Linux 5.12: set attributes on a mount (and, with
/// `recursive`, everything below it). It only *adds* flags, so flags the
/// host locked on a bind source never make it fail in a user namespace.
pub fn mount_setattr(path: &CStr, recursive: bool, set: u64) -> libc::c_long {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr { attr_set: set, attr_clr: 0, propagation: 0, userns_fd: 0 };
    let flags = if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: `path` is NUL-terminated and `attr` lives across the call.
    unsafe {
        libc::syscall(libc::SYS_mount_setattr, libc::AT_FDCWD, path.as_ptr(), flags, &attr, std::mem::size_of::<MountAttr>())
    }
}

/// pivot_root(2), Linux 2.3.41; `pivot_root(".", ".")` stacks the old root
/// on the new one so that a detach removes it (see pivot_root(2) NOTES).
pub fn pivot_root_here() -> libc::c_long {
    // SAFETY: both arguments are static NUL-terminated strings.
    unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) }
}

/// execveat(2) with AT_EMPTY_PATH, Linux 3.19: run the file the fd refers
/// to, never a path re-resolved after the hash. Returns only on failure.
pub fn execveat_fd(fd: RawFd, argv: &[*const libc::c_char], envp: &[*const libc::c_char]) -> libc::c_long {
    // SAFETY: argv and envp are NULL-terminated arrays of NUL-terminated
    // strings the caller keeps alive.
    unsafe { libc::syscall(libc::SYS_execveat, fd, c"".as_ptr(), argv.as_ptr(), envp.as_ptr(), libc::AT_EMPTY_PATH) }
}

/// A pipe with both ends close-on-exec.
pub fn pipe() -> Result<(OwnedFd, OwnedFd), std::io::Error> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fresh fds from pipe2.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Threads in this process (field 20 of /proc/self/stat, proc(5)).
pub fn threads_in_self() -> u32 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.to_string()))
        .and_then(|rest| rest.split_whitespace().nth(17).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}
