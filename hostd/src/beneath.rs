//! Path resolution confined to a directory (openat2 RESOLVE_BENEATH):
//! `..`, absolute paths and symlinks leading outside fail with EXDEV
//! instead of escaping. Used for module binaries and module file requests.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_BENEATH: u64 = 0x08;

/// openat2(2) (Linux 5.6) of `rel` beneath `dir` with RESOLVE_BENEATH |
/// RESOLVE_NO_MAGICLINKS.
pub fn open(dir: &File, rel: &str, flags: i32, mode: u32) -> std::io::Result<File> {
    let crel = CString::new(rel).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))?;
    let how = OpenHow { flags: (flags | libc::O_CLOEXEC) as u64, mode: u64::from(mode), resolve: RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
    // SAFETY: openat2 with a valid dirfd, a NUL-terminated path and a
    // correctly sized open_how; the returned fd is owned by the File.
    let fd = unsafe { libc::syscall(libc::SYS_openat2, dir.as_raw_fd(), crel.as_ptr(), &how, std::mem::size_of::<OpenHow>()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fresh fd from openat2.
    Ok(unsafe { File::from_raw_fd(fd as i32) })
}

/// The parent directory of `rel` (opened beneath `dir`) and its last
/// component, which must be a plain name.
pub fn parent_and_name<'a>(dir: &File, rel: &'a str) -> std::io::Result<(File, &'a str)> {
    let rel = rel.trim_end_matches('/');
    let (parent, name) = match rel.rsplit_once('/') {
        Some((p, n)) => (if p.is_empty() { "." } else { p }, n),
        None => (".", rel),
    };
    if name.is_empty() || name == "." || name == ".." {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "path must end in a file name"));
    }
    Ok((open(dir, parent, libc::O_PATH | libc::O_DIRECTORY, 0)?, name))
}

/// Remove `name` from `parent`: a file, or with `dir` an empty directory.
pub fn unlink(parent: &File, name: &str, dir: bool) -> std::io::Result<()> {
    let cname = cstr(name)?;
    let flags = if dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: unlinkat on a directory fd we own and a NUL-terminated name.
    if unsafe { libc::unlinkat(parent.as_raw_fd(), cname.as_ptr(), flags) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Create directory `name` in `parent`.
pub fn mkdir(parent: &File, name: &str, mode: libc::mode_t) -> std::io::Result<()> {
    let cname = cstr(name)?;
    // SAFETY: mkdirat on a directory fd we own and a NUL-terminated name.
    if unsafe { libc::mkdirat(parent.as_raw_fd(), cname.as_ptr(), mode) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

pub fn cstr(s: &str) -> std::io::Result<CString> {
    CString::new(s).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))
}
