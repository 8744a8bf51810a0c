//! File requests, resolved beneath the module's `files/` directory (the
//! sandbox's /data) through `crate::beneath`, on the blocking pool. Files
//! and directories hostd creates for a module belong to the module's uid.
//!
//! What is in `files/` is the module's to plant, so nothing found there is
//! trusted: opens never follow a final symlink and never block (a FIFO, or
//! a file under a lease, answers at once instead of holding a pool thread);
//! only regular files are read or written; a file with more than one link
//! is refused (a hard link could lead to a file of hostd's); a file owned
//! by anyone but the module or hostd is refused; and hostd changes owner
//! and mode only of what it created itself.

use super::err;
use crate::beneath;
use crate::daemon::Host;
use crate::permissions::Permission;
use hostd_protocol::{ErrorBody, ErrorCode, Response};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// Most bytes one FsRead returns.
const MAX_READ: u64 = 1 << 20;

/// One request's view of a module's `files/`.
pub struct Files {
    root: File,
    uid: Option<u32>,
    may_manage: bool,
}

/// Run `op` on `module`'s files, on the blocking pool.
pub async fn run<F>(host: &Arc<Host>, module: &str, op: F) -> Result<Response, ErrorBody>
where
    F: FnOnce(&Files) -> Result<Response, ErrorBody> + Send + 'static,
{
    let dir = host.config.module_data_dir(module).join("files");
    let uid = crate::daemon::lock(&host.ids).peek(module, &host.config).ok();
    let may_manage = host.with_module(module, |s| s.permissions.contains(&Permission::ManageFilesystem)).unwrap_or(false);
    tokio::task::spawn_blocking(move || {
        let root = File::open(&dir).map_err(|e| io("open data directory", &dir.display().to_string(), e))?;
        op(&Files { root, uid, may_manage })
    })
    .await
    .map_err(|e| err(ErrorCode::Internal, e.to_string()))?
}

fn io(what: &str, path: &str, e: std::io::Error) -> ErrorBody {
    let code = match e.raw_os_error() {
        Some(libc::ENOENT) => ErrorCode::NotFound,
        Some(libc::EXDEV | libc::ELOOP | libc::EINVAL | libc::ENXIO) => ErrorCode::InvalidArgument,
        // A lease held on the file: answered at once, never waited for.
        Some(libc::EWOULDBLOCK) => ErrorCode::Timeout,
        Some(libc::EEXIST) => ErrorCode::AlreadyExists,
        Some(libc::EACCES | libc::EPERM) => ErrorCode::PermissionDenied,
        Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG) => ErrorCode::QuotaExceeded,
        _ => ErrorCode::Internal,
    };
    let why = match e.raw_os_error() {
        Some(libc::EXDEV) => "resolves outside the module's data directory".to_string(),
        // O_NONBLOCK write-open of a FIFO without a reader.
        Some(libc::ENXIO) => "is not a regular file (a FIFO or device)".to_string(),
        _ => e.to_string(),
    };
    err(code, format!("{what} {path:?}: {why}"))
}

/// Checks on a file found (not created) in `files/`.
fn check_found(f: &File, path: &str, uid: Option<u32>, writing: bool) -> Result<std::fs::Metadata, ErrorBody> {
    use std::os::unix::fs::MetadataExt;
    let meta = f.metadata().map_err(|e| io("stat", path, e))?;
    if !meta.is_file() {
        return Err(err(ErrorCode::InvalidArgument, format!("{path:?} is not a regular file")));
    }
    if writing && meta.nlink() > 1 {
        return Err(err(ErrorCode::InvalidArgument, format!("{path:?} has {} hard links; hostd writes only files with one", meta.nlink())));
    }
    // SAFETY: geteuid has no preconditions.
    let hostd = unsafe { libc::geteuid() };
    if Some(meta.uid()) != uid && meta.uid() != hostd {
        return Err(err(ErrorCode::PermissionDenied, format!("{path:?} belongs to uid {}, neither the module nor hostd", meta.uid())));
    }
    Ok(meta)
}

/// Opens in `files/` never follow a final symlink and never block.
const FOUND: i32 = libc::O_NOFOLLOW | libc::O_NONBLOCK;

impl Files {
    /// What hostd creates for a module becomes the module's, group hostd
    /// (inherited from the setgid files/), group-writable so later requests
    /// from the module through hostd can still change it.
    fn give(&self, f: &File, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        if let Some(id) = self.uid {
            let _ = std::os::unix::fs::fchown(f, Some(id), None);
        }
        let _ = f.set_permissions(std::fs::Permissions::from_mode(mode));
    }

    pub fn read(&self, path: &str, offset: u64, len: u32) -> Result<Response, ErrorBody> {
        let f = beneath::open(&self.root, path, libc::O_RDONLY | FOUND, 0).map_err(|e| io("read", path, e))?;
        check_found(&f, path, self.uid, false)?;
        let mut buf = vec![0u8; u64::from(len).min(MAX_READ) as usize];
        let n = f.read_at(&mut buf, offset).map_err(|e| io("read", path, e))?;
        buf.truncate(n);
        Ok(Response::Bytes(Some(buf)))
    }

    pub fn write(&self, path: &str, data: &[u8], append: bool) -> Result<Response, ErrorBody> {
        // Create it if absent (then it is ours to give away), else open what
        // is there and check it before changing a byte.
        let f = match beneath::open(&self.root, path, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | FOUND, 0o640) {
            Ok(f) => {
                self.give(&f, 0o660);
                f
            }
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let f = beneath::open(&self.root, path, libc::O_WRONLY | FOUND, 0).map_err(|e| io("write", path, e))?;
                check_found(&f, path, self.uid, true)?;
                f
            }
            Err(e) => return Err(io("write", path, e)),
        };
        let at = if append {
            f.metadata().map(|m| m.len()).unwrap_or(0)
        } else {
            f.set_len(0).map_err(|e| io("truncate", path, e))?;
            0
        };
        f.write_all_at(data, at).and_then(|_| f.sync_data()).map_err(|e| io("write", path, e))?;
        Ok(Response::Ack)
    }

    pub fn delete(&self, path: &str) -> Result<Response, ErrorBody> {
        let (parent, name) = beneath::parent_and_name(&self.root, path).map_err(|e| io("delete", path, e))?;
        match beneath::unlink(&parent, name, false) {
            Ok(()) => Ok(Response::Ack),
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) && self.may_manage => {
                beneath::unlink(&parent, name, true).map(|_| Response::Ack).map_err(|e| io("delete", path, e))
            }
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
                Err(err(ErrorCode::PermissionDenied, format!("{path:?} is a directory; removing directories needs manage_filesystem")))
            }
            Err(e) => Err(io("delete", path, e)),
        }
    }

    pub fn mkdir(&self, path: &str) -> Result<Response, ErrorBody> {
        let (parent, name) = beneath::parent_and_name(&self.root, path).map_err(|e| io("mkdir", path, e))?;
        beneath::mkdir(&parent, name, 0o750).map_err(|e| io("mkdir", path, e))?;
        let made = beneath::open(&self.root, path, libc::O_RDONLY | libc::O_DIRECTORY | FOUND, 0).map_err(|e| io("mkdir", path, e))?;
        self.give(&made, 0o2770);
        Ok(Response::Ack)
    }
}
