//! The sandbox's root: rec-private `/`, a tmpfs root assembled at
//! [`STAGING`], the data dir and read-only binds, the /dev nodes, procfs,
//! pivot_root, the old root detached, `/` read-only. Failures name the path.

use std::ffi::{CStr, CString};

use super::{check, StepResult};
use crate::handshake::{Failure, Step};
use crate::prepare::Prepared;
use crate::sys::{self, errno, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};

/// Where the rootfs is assembled before pivot_root (covered by a private
/// tmpfs inside our own mount namespace; the host's /tmp is untouched).
const STAGING: &CStr = c"/tmp";

fn at(step: Step, path: &CStr) -> Failure {
    Failure::with_detail(step, errno(), path.to_string_lossy())
}

fn check_at(step: Step, path: &CStr, rc: libc::c_long) -> StepResult {
    if rc < 0 {
        Err(at(step, path))
    } else {
        Ok(())
    }
}

fn open_path(path: &CStr) -> Result<i32, Failure> {
    // SAFETY: a NUL-terminated path.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        Err(at(Step::OpenBindSource, path))
    } else {
        Ok(fd)
    }
}

fn close(fd: i32) {
    // SAFETY: closing an fd we opened.
    unsafe { libc::close(fd) };
}

/// Create `path` (and parents) as directories, or as an empty file when
/// `file` is set (a bind target must match its source's type).
fn make_mount_point(path: &CStr, file: bool) -> StepResult {
    let bytes = path.to_bytes();
    // SAFETY (block): mkdir/open on NUL-terminated paths we built.
    unsafe {
        for (i, b) in bytes.iter().enumerate().skip(1) {
            if *b == b'/' {
                let parent = CString::new(&bytes[..i]).map_err(|_| Failure::new(Step::MakeMountPoint, libc::EINVAL))?;
                if libc::mkdir(parent.as_ptr(), 0o755) < 0 && errno() != libc::EEXIST {
                    return Err(at(Step::MakeMountPoint, &parent));
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
            return Err(at(Step::MakeMountPoint, path));
        }
    }
    Ok(())
}

/// Mount a fresh filesystem (`fstype` is also used as the source name).
fn mount_fs(step: Step, fstype: &CStr, target: &CStr, flags: libc::c_ulong, opts: &CStr) -> StepResult {
    // SAFETY: NUL-terminated strings that live across the call.
    let rc = unsafe { libc::mount(fstype.as_ptr(), target.as_ptr(), fstype.as_ptr(), flags, opts.as_ptr().cast()) };
    check_at(step, target, rc as _)
}

fn bind_plain(source_fd: i32, target: &CStr) -> libc::c_long {
    let src = CString::new(format!("/proc/self/fd/{source_fd}")).unwrap_or_default();
    // SAFETY: NUL-terminated strings that live across the call.
    unsafe { libc::mount(src.as_ptr(), target.as_ptr(), std::ptr::null(), libc::MS_BIND | libc::MS_REC, std::ptr::null()) as _ }
}

/// Bind the opened source at `target`, then add `attrs` (mount_setattr only
/// adds flags, so flags the host locked on the source never make it fail).
fn bind(source_fd: i32, target: &CStr, attrs: u64, step: Step) -> StepResult {
    check_at(step, target, bind_plain(source_fd, target))?;
    check_at(step, target, sys::mount_setattr(target, true, attrs))
}

pub(super) fn build(p: &Prepared) -> StepResult {
    let none = std::ptr::null::<libc::c_char>();
    // SAFETY: static NUL-terminated strings.
    check(Step::MountPrivate, unsafe {
        libc::mount(none, c"/".as_ptr(), none, libc::MS_REC | libc::MS_PRIVATE, std::ptr::null())
    } as _)?;
    // Open every source while the host tree is still visible at its paths.
    let data_fd = p.data.as_ref().map(|d| open_path(&d.source)).transpose()?;
    let ro_fds = p.ro_binds.iter().map(|b| open_path(&b.source)).collect::<Result<Vec<_>, _>>()?;
    let dev_fds = p.dev_nodes.iter().map(|(host, _)| open_path(host)).collect::<Result<Vec<_>, _>>()?;
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
        close(fd);
    }
    for (b, fd) in p.ro_binds.iter().zip(ro_fds) {
        make_mount_point(&b.staged_target, !b.is_dir)?;
        bind(fd, &b.staged_target, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, Step::BindReadOnly)?;
        close(fd);
    }
    // The nodes are bound into a plain directory of the root tmpfs, which
    // becomes read-only with the root: no own tmpfs, no per-node flags (a
    // character device cannot be executed, and set-id bits on it mean
    // nothing), which keeps /dev at one bind per node.
    for ((_, staged), fd) in p.dev_nodes.iter().zip(dev_fds) {
        make_mount_point(staged, true)?;
        check_at(Step::MountDev, staged, bind_plain(fd, staged))?;
        close(fd);
    }
    if p.policy.rootfs.proc {
        let proc_dir = c"/tmp/proc";
        make_mount_point(proc_dir, false)?;
        // hidepid=invisible and subset=pid: Linux 5.8 (proc(5)).
        mount_fs(Step::MountProc, c"proc", proc_dir, libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC, c"hidepid=invisible,subset=pid")?;
    }
    pivot_into_staging()?;
    if !p.policy.rootfs.writable_root {
        check(Step::RemountRootReadOnly, sys::mount_setattr(c"/", false, MOUNT_ATTR_RDONLY))?;
    }
    Ok(())
}

/// pivot_root(".", ".") stacks the old root on top of the new one; the
/// detach then drops it, leaving no path back to the host tree.
fn pivot_into_staging() -> StepResult {
    // SAFETY: static NUL-terminated strings.
    unsafe {
        check(Step::EnterStaging, libc::chdir(STAGING.as_ptr()) as _)?;
        check(Step::PivotRoot, sys::pivot_root_here())?;
        check(Step::DetachOldRoot, libc::umount2(c".".as_ptr(), libc::MNT_DETACH) as _)?;
        check(Step::EnterNewRoot, libc::chdir(c"/".as_ptr()) as _)
    }
}
