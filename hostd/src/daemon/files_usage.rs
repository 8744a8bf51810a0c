//! What a module's `files/` really uses on disk: allocated blocks of
//! everything in it (so a sparse file counts what it occupies, and a
//! directory counts too), found by walking it through directory fds with
//! no symlink followed, so a module that swaps a directory for a symlink
//! mid-walk cannot point the walk elsewhere. The walk itself is bounded —
//! entries and depth — because the tree is the module's to shape: past a
//! bound the directory counts as over quota rather than being walked on.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};

/// Directories deeper than this are not walked (and count as over quota):
/// one fd is open per level.
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Allocated bytes (st_blocks × 512) of every entry.
    pub bytes: u64,
    pub entries: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("files/ holds more than {0} entries (daemon.max_files_entries)")]
    TooManyEntries(u64),
    #[error("files/ nests directories deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("cannot read files/: {0}")]
    Io(#[from] std::io::Error),
}

/// Walk `root` (an open directory).
pub fn measure(root: &File, max_entries: u64) -> Result<Usage, UsageError> {
    let mut usage = Usage { bytes: 0, entries: 0 };
    walk(root, 0, max_entries, &mut usage)?;
    Ok(usage)
}

fn walk(dir: &File, depth: usize, max_entries: u64, usage: &mut Usage) -> Result<(), UsageError> {
    if depth > MAX_DEPTH {
        return Err(UsageError::TooDeep);
    }
    for name in names(dir)? {
        usage.entries += 1;
        if usage.entries > max_entries {
            return Err(UsageError::TooManyEntries(max_entries));
        }
        let Some(st) = stat_at(dir, &name)? else { continue };
        usage.bytes += st.st_blocks as u64 * 512;
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            // Replaced by something else since the stat: skip it.
            let Some(sub) = open_dir_at(dir, &name)? else { continue };
            walk(&sub, depth + 1, max_entries, usage)?;
        }
    }
    Ok(())
}

/// The names in `dir`, without "." and "..".
fn names(dir: &File) -> std::io::Result<Vec<CString>> {
    // SAFETY: dup of an fd we own; fdopendir takes ownership of the copy and
    // closedir releases it.
    let fd = unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh directory fd.
    let dp = unsafe { libc::fdopendir(fd) };
    if dp.is_null() {
        let e = std::io::Error::last_os_error();
        // SAFETY: fdopendir failed, so fd is still ours to close.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    // The copy shares the original's offset: start from the beginning.
    // SAFETY: dp is a valid DIR*.
    unsafe { libc::rewinddir(dp) };
    let mut out = Vec::new();
    loop {
        // SAFETY: dp is a valid DIR*; the entry is copied before the next call.
        let ent = unsafe { libc::readdir64(dp) };
        if ent.is_null() {
            break;
        }
        // SAFETY: d_name is NUL-terminated within the entry.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            out.push(name.to_owned());
        }
    }
    // SAFETY: dp came from fdopendir and is closed once.
    unsafe { libc::closedir(dp) };
    Ok(out)
}

/// lstat of `name` in `dir`; `None` if it vanished meanwhile.
fn stat_at(dir: &File, name: &CStr) -> std::io::Result<Option<libc::stat64>> {
    // SAFETY: zeroed stat64 is a valid out-parameter.
    let mut st: libc::stat64 = unsafe { std::mem::zeroed() };
    // SAFETY: valid dirfd, NUL-terminated name, valid out-pointer.
    if unsafe { libc::fstatat64(dir.as_raw_fd(), name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
        let e = std::io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENOENT) { Ok(None) } else { Err(e) };
    }
    Ok(Some(st))
}

/// Open `name` in `dir` as a directory, never through a symlink; `None`
/// if it is gone or no longer a directory.
fn open_dir_at(dir: &File, name: &CStr) -> std::io::Result<Option<File>> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK;
    // SAFETY: valid dirfd and NUL-terminated name; the fd is owned by the File.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP) => Ok(None),
            _ => Err(e),
        };
    }
    // SAFETY: fresh fd from openat.
    Ok(Some(unsafe { File::from_raw_fd(fd) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> crate::scratch::Scratch {
        crate::scratch::Scratch::new(&format!("usage-{tag}"))
    }

    #[test]
    fn counts_allocated_bytes_and_follows_no_symlink() {
        let d = scratch("count");
        std::fs::create_dir_all(d.join("a/b")).expect("dirs");
        std::fs::write(d.join("a/b/f"), vec![1u8; 100_000]).expect("file");
        // A sparse file: large, but occupies (almost) nothing.
        let sparse = File::create(d.join("sparse")).expect("sparse");
        sparse.set_len(1 << 30).expect("set_len");
        // A symlink to a big directory outside: its target is not counted.
        std::os::unix::fs::symlink("/usr", d.join("link")).expect("symlink");
        let u = measure(&File::open(&d).expect("open"), 1000).expect("measures");
        assert_eq!(u.entries, 5);
        assert!(u.bytes >= 100_000 && u.bytes < 1 << 20, "{u:?}");
    }

    #[test]
    fn the_walk_is_bounded_by_entries_and_depth() {
        let d = scratch("bounds");
        for i in 0..20 {
            std::fs::write(d.join(format!("f{i}")), b"x").expect("file");
        }
        assert!(matches!(measure(&File::open(&d).expect("open"), 10), Err(UsageError::TooManyEntries(10))));
        let deep: std::path::PathBuf = (0..=MAX_DEPTH + 1).map(|_| "d").collect();
        std::fs::create_dir_all(d.join(&deep)).expect("deep");
        assert!(matches!(measure(&File::open(&d).expect("open"), 1000), Err(UsageError::TooDeep)));
    }
}
