//! What a module's database really occupies on disk, and getting space
//! back. Logical bytes (keys + values) are what a module is told it
//! stores, but the files hold more: the write-ahead log keeps every write
//! until its memtable is flushed, and SST files keep overwritten values and
//! tombstones until compaction. So a write that would grow a module's data
//! is refused when the database's data files (SST, WAL, blob) are already
//! past the quota, after one attempt to reclaim (flush every tree, compact,
//! so obsolete WAL files and dead versions go). A module can therefore be
//! over its quota on disk by at most its last write plus the database's
//! metadata (MANIFEST, OPTIONS and the info LOG, each capped by the
//! options in `storage.rs`, and per-tree overhead charged at open).

use std::path::Path;
use std::time::{Duration, Instant};

/// Bytes of the database's data files in `dir`: SSTs, WALs and blobs.
pub fn data_file_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".sst") || name.ends_with(".log") || name.ends_with(".blob")
        })
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Whether a reclaim may run now, at most once per `every` (and, if so,
/// that it runs now).
pub fn reclaim_due(last: &mut Option<Instant>, every: Duration) -> bool {
    if last.is_some_and(|t| t.elapsed() < every) {
        return false;
    }
    *last = Some(Instant::now());
    true
}
