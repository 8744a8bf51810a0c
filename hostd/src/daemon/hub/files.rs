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
//!
//! Writes are bounded twice: no file hostd writes grows past the module's
//! file-size limit (`limits.fsize_bytes`, the sandbox's RLIMIT_FSIZE, which
//! does not bind hostd), and `files/` as a whole stays within
//! `daemon.files_quota_bytes` of allocated space, measured before each
//! write; a refused write changes nothing.

use super::err;
use crate::beneath;
use crate::daemon::files_usage::{self, UsageError};
use crate::daemon::Host;
use crate::permissions::Permission;
use hostd_protocol::{ErrorBody, ErrorCode, Response};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// One request's view of a module's `files/`.
pub struct Files {
    root: File,
    uid: Option<u32>,
    may_manage: bool,
    bounds: WriteBounds,
    host: Arc<Host>,
}

/// What one module may write (and read) through hostd.
#[derive(Debug, Clone, Copy)]
pub struct WriteBounds {
    pub quota_bytes: u64,
    pub max_entries: u64,
    pub max_file_bytes: u64,
    /// Most bytes one FsRead answers: what fits one response frame.
    pub max_read_bytes: u64,
}

impl WriteBounds {
    pub fn of(host: &Host, module: &str) -> WriteBounds {
        let d = &host.config.daemon;
        let limits = host.config.limits_for(module);
        let max_file_bytes = host
            .with_module(module, |s| crate::policygen::effective_limits(limits, &s.module.manifest).fsize_bytes)
            .unwrap_or(limits.fsize_bytes);
        let max_read_bytes = super::storage::scan_budget(d.max_frame_bytes) as u64;
        WriteBounds { quota_bytes: d.files_quota_bytes, max_entries: d.max_files_entries, max_file_bytes, max_read_bytes }
    }
}

/// Run `op` on `module`'s files, on the blocking pool.
pub async fn run<F>(host: &Arc<Host>, module: &str, op: F) -> Result<Response, ErrorBody>
where
    F: FnOnce(&Files) -> Result<Response, ErrorBody> + Send + 'static,
{
    let dir = host.config.module_data_dir(module).join("files");
    let uid = crate::daemon::lock(&host.ids).peek(module, &host.config).ok();
    let may_manage = host.with_module(module, |s| s.permissions.contains(&Permission::ManageFilesystem)).unwrap_or(false);
    let bounds = WriteBounds::of(host, module);
    let host_ref = host.clone();
    super::on_pool(host, module, move || {
        let root = File::open(&dir).map_err(|_| err(ErrorCode::Internal, "the module's data directory cannot be opened"))?;
        op(&Files { root, uid, may_manage, bounds, host: host_ref })
    })
    .await?
}

fn over_quota(e: &UsageError) -> ErrorBody {
    match e {
        UsageError::Io(_) => err(ErrorCode::Internal, "files/ cannot be measured; nothing was written"),
        bound => err(ErrorCode::QuotaExceeded, format!("{bound}; nothing was written")),
    }
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
    /// What hostd creates for a module becomes the module's, group hostd,
    /// group-writable so later requests from the module through hostd can
    /// still change it. hostd may not chown: the launcher does it, after
    /// its own checks (`launcher/rules.rs`).
    fn give(&self, f: &File, path: &str) -> Result<(), ErrorBody> {
        let Some(uid) = self.uid else { return Ok(()) };
        self.host.launcher.give_blocking(f, uid).map_err(|e| {
            tracing::error!("giving {path:?} to uid {uid}: {e}");
            err(ErrorCode::Internal, format!("{path:?} could not be given to the module; nothing was written"))
        })
    }

    /// Remove what this request created and could not finish.
    fn undo_create(&self, path: &str, dir: bool) {
        let _ = beneath::parent_and_name(&self.root, path).and_then(|(parent, name)| beneath::unlink(&parent, name, dir));
    }

    pub fn read(&self, path: &str, offset: u64, len: u32) -> Result<Response, ErrorBody> {
        let f = beneath::open(&self.root, path, libc::O_RDONLY | FOUND, 0).map_err(|e| io("read", path, e))?;
        check_found(&f, path, self.uid, false)?;
        let mut buf = vec![0u8; u64::from(len).min(self.bounds.max_read_bytes) as usize];
        let n = f.read_at(&mut buf, offset).map_err(|e| io("read", path, e))?;
        buf.truncate(n);
        Ok(Response::Bytes(Some(buf)))
    }

    pub fn write(&self, path: &str, data: &[u8], append: bool) -> Result<Response, ErrorBody> {
        let used = files_usage::measure(&self.root, self.bounds.max_entries).map_err(|e| over_quota(&e))?;
        // Create it if absent (then it is ours to give away), else open what
        // is there and check it before changing a byte.
        let (f, created) = match beneath::open(&self.root, path, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | FOUND, 0o640) {
            Ok(f) => (f, true),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let f = beneath::open(&self.root, path, libc::O_WRONLY | FOUND, 0).map_err(|e| io("write", path, e))?;
                check_found(&f, path, self.uid, true)?;
                (f, false)
            }
            Err(e) => return Err(io("write", path, e)),
        };
        if let Err(refused) = self.check_write(&f, path, data.len() as u64, append, used.bytes) {
            if created {
                self.undo_create(path, false);
            }
            return Err(refused);
        }
        if created {
            if let Err(e) = self.give(&f, path) {
                self.undo_create(path, false);
                return Err(e);
            }
        }
        let at = if append {
            f.metadata().map(|m| m.len()).unwrap_or(0)
        } else {
            f.set_len(0).map_err(|e| io("truncate", path, e))?;
            0
        };
        f.write_all_at(data, at).and_then(|_| f.sync_data()).map_err(|e| io("write", path, e))?;
        Ok(Response::Ack)
    }

    /// Whether writing `len` bytes to `f` keeps the file within the
    /// module's file-size limit and `files/` within its quota.
    fn check_write(&self, f: &File, path: &str, len: u64, append: bool, used: u64) -> Result<(), ErrorBody> {
        use std::os::unix::fs::MetadataExt;
        let meta = f.metadata().map_err(|e| io("stat", path, e))?;
        let (old_len, old_bytes) = (meta.len(), meta.blocks() * 512);
        let new_len = if append { old_len.saturating_add(len) } else { len };
        if new_len > self.bounds.max_file_bytes {
            return Err(err(
                ErrorCode::QuotaExceeded,
                format!("{path:?} would be {new_len} bytes, over the module's file-size limit of {} bytes; nothing was written", self.bounds.max_file_bytes),
            ));
        }
        // Allocation grows by whole 4 KiB blocks.
        let grows = len.div_ceil(4096) * 4096;
        let after = if append { used + grows } else { used.saturating_sub(old_bytes) + grows };
        if after > self.bounds.quota_bytes {
            return Err(err(
                ErrorCode::QuotaExceeded,
                format!(
                    "files/ would use {after} of its {} bytes (daemon.files_quota_bytes), {used} in use now; nothing was written",
                    self.bounds.quota_bytes
                ),
            ));
        }
        Ok(())
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
        if let Err(e) = self.give(&made, path) {
            self.undo_create(path, true);
            return Err(e);
        }
        Ok(Response::Ack)
    }
}
