//! Storage requests: the module's own RocksDB trees, on the blocking pool.

use super::err;
use crate::daemon::storage::{ModuleStore, StorageError};
use crate::daemon::Host;
use hostd_protocol::{ErrorBody, ErrorCode, Response};
use std::sync::Arc;

/// Bytes of keys and values one prefix scan (or file read) may gather:
/// what fits a response frame, less room for the message around them.
pub fn scan_budget(max_frame: u32) -> usize {
    (max_frame as usize).saturating_sub(1024)
}

/// The module's answer for a storage error. A database error names host
/// paths: that goes to hostd's log, and the module learns only that it
/// failed.
fn storage_error(e: StorageError) -> ErrorBody {
    let code = match &e {
        StorageError::BadTreeName(_) | StorageError::DropDefault => ErrorCode::InvalidArgument,
        StorageError::NoSuchTree(_) => ErrorCode::NotFound,
        StorageError::QuotaExceeded { .. } | StorageError::OverQuotaOnDisk { .. } | StorageError::TooManyTrees { .. } => {
            ErrorCode::QuotaExceeded
        }
        StorageError::Db { .. } => ErrorCode::Internal,
    };
    if code == ErrorCode::Internal {
        tracing::error!("{e}");
        return err(code, "the storage engine failed; hostd's log has the details");
    }
    err(code, e.to_string())
}

/// Run `op` on `module`'s open store, on the blocking pool.
pub async fn run<F>(host: &Arc<Host>, module: &str, op: F) -> Result<Response, ErrorBody>
where
    F: FnOnce(&ModuleStore) -> Result<Response, StorageError> + Send + 'static,
{
    let store = host
        .with_module(module, |s| s.store.clone())
        .flatten()
        .ok_or_else(|| err(ErrorCode::Internal, format!("storage of module {module} is not open")))?;
    super::on_pool(host, module, move || op(&store).map_err(storage_error)).await?
}
