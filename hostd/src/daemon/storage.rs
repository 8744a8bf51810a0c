//! Per-module storage: one RocksDB per module at `data/modules/<name>/db/`,
//! opened by hostd and never mounted into the sandbox. Named trees are
//! column families. Every acknowledged write was synced to the WAL first,
//! so it survives `kill -9` of hostd. All databases share one block cache
//! and one write-buffer budget, so memory does not grow per module.
//!
//! The quota counts keys and values, plus a charge per tree beyond
//! `default`, and is also held against the data files on disk (see
//! `storage_disk.rs`).

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBWithThreadMode, Direction, IteratorMode, MultiThreaded, Options,
    WriteBatch, WriteBufferManager, WriteOptions,
};
use super::storage_disk;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

type Db = DBWithThreadMode<MultiThreaded>;


/// One stored entry: key, value.
pub type KeyValue = (Vec<u8>, Vec<u8>);
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("tree name {0:?} is invalid: use 1-64 of a-z 0-9 _ - . and do not start with \"__\"")]
    BadTreeName(String),
    #[error("tree {0:?} does not exist; create it with StorageOpenTree (needs manage_storage)")]
    NoSuchTree(String),
    #[error("storage quota exceeded: {used} of {limit} bytes used, this write needs {needed} more; nothing was written")]
    QuotaExceeded { used: u64, needed: u64, limit: u64 },
    #[error(
        "storage quota exceeded on disk: the database's files hold {on_disk} of {limit} bytes (old versions and the \
         write-ahead log not reclaimed yet); delete data, or retry in a few seconds; nothing was written"
    )]
    OverQuotaOnDisk { on_disk: u64, limit: u64 },
    #[error("the default tree cannot be dropped")]
    DropDefault,
    #[error("at most {max} storage trees per module (the default tree included); drop one first")]
    TooManyTrees { max: usize },
    #[error("storage of module {module} at {path}: {source}")]
    Db { module: String, path: PathBuf, source: rocksdb::Error },
}

/// Memory shared by every module's database.
pub struct StorageEnv {
    cache: Cache,
    write_buffers: WriteBufferManager,
}

impl StorageEnv {
    pub fn new(block_cache_bytes: usize, write_buffer_bytes: usize) -> StorageEnv {
        let cache = Cache::new_lru_cache(block_cache_bytes);
        // Memtable memory is charged to the block cache, so the two budgets
        // together bound what all modules' databases hold in memory.
        let write_buffers = WriteBufferManager::new_write_buffer_manager_with_cache(write_buffer_bytes, false, cache.clone());
        StorageEnv { cache, write_buffers }
    }

    fn options(&self) -> Options {
        let mut o = Options::default();
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        o.set_write_buffer_manager(&self.write_buffers);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&self.cache);
        o.set_block_based_table_factory(&table);
        // Modest per-database footprint: many modules share one host.
        o.set_max_open_files(64);
        o.set_max_background_jobs(2);
        // The database's metadata stays small whatever the module does:
        // info log and manifest are rotated.
        o.set_keep_log_file_num(2);
        o.set_max_log_file_size(1 << 20);
        o.set_max_manifest_file_size(4 << 20);
        o.set_write_buffer_size(4 << 20);
        o
    }

    /// Open (creating if needed) the module's database within `limits`.
    pub fn open(&self, module: &str, dir: &Path, limits: StoreLimits) -> Result<ModuleStore, StorageError> {
        let opts = self.options();
        let db_err = |source| StorageError::Db { module: module.into(), path: dir.to_path_buf(), source };
        let mut existing = if dir.join("CURRENT").exists() { Db::list_cf(&opts, dir).map_err(db_err)? } else { Vec::new() };
        // "default" always exists in RocksDB but has a handle only if opened by name.
        if !existing.iter().any(|n| n == "default") {
            existing.push("default".into());
        }
        let trees = existing.len();
        let cfs = existing.iter().map(|n| ColumnFamilyDescriptor::new(n, self.options()));
        let db = Db::open_cf_descriptors(&opts, dir, cfs).map_err(db_err)?;
        let store = ModuleStore {
            module: module.into(),
            path: dir.to_path_buf(),
            opts,
            quota: limits.quota_bytes,
            used: Mutex::new(0),
            trees: std::sync::atomic::AtomicUsize::new(trees),
            max_trees: limits.max_trees,
            tree_charge: limits.tree_charge,
            reclaim_every: limits.reclaim_every,
            last_reclaim: Mutex::new(None),
            db,
        };
        let used = store.scan_used()?;
        *store.used_lock() = used;
        Ok(store)
    }
}

/// What one module's database may hold: `[daemon] storage_quota_bytes`,
/// `max_storage_trees`, `storage_tree_charge_bytes`,
/// `storage_reclaim_interval_ms`.
#[derive(Debug, Clone, Copy)]
pub struct StoreLimits {
    pub quota_bytes: u64,
    pub max_trees: usize,
    pub tree_charge: u64,
    pub reclaim_every: Duration,
}

impl StoreLimits {
    pub fn of(d: &crate::config::DaemonSettings) -> StoreLimits {
        StoreLimits {
            quota_bytes: d.storage_quota_bytes,
            max_trees: d.max_storage_trees as usize,
            tree_charge: d.storage_tree_charge_bytes,
            reclaim_every: Duration::from_millis(u64::from(d.storage_reclaim_interval_ms)),
        }
    }

    /// The defaults, with this quota and tree bound.
    pub fn new(quota_bytes: u64, max_trees: usize) -> StoreLimits {
        StoreLimits { quota_bytes, max_trees, ..StoreLimits::of(&crate::config::DaemonSettings::default()) }
    }
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct StoreUsage {
    pub used_bytes: u64,
    pub on_disk_bytes: u64,
    pub quota_bytes: u64,
}

/// One module's database.
pub struct ModuleStore {
    module: String,
    path: PathBuf,
    opts: Options,
    quota: u64,
    /// Logical bytes (keys + values) stored; the lock also serialises writes
    /// so the quota check and the write cannot interleave.
    used: Mutex<u64>,
    /// Trees that exist (changed only under `used`'s lock).
    trees: std::sync::atomic::AtomicUsize,
    max_trees: usize,
    tree_charge: u64,
    reclaim_every: Duration,
    last_reclaim: Mutex<Option<Instant>>,
    db: Db,
}

pub fn check_tree_name(tree: &str) -> Result<(), StorageError> {
    let ok = !tree.is_empty()
        && tree.len() <= 64
        && !tree.starts_with("__")
        && tree.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StorageError::BadTreeName(tree.into()))
    }
}

fn entry_size(key: &[u8], value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

impl ModuleStore {
    fn db_err(&self, source: rocksdb::Error) -> StorageError {
        StorageError::Db { module: self.module.clone(), path: self.path.clone(), source }
    }

    fn used_lock(&self) -> std::sync::MutexGuard<'_, u64> {
        super::lock(&self.used)
    }

    fn scan_used(&self) -> Result<u64, StorageError> {
        let mut total = 0u64;
        let names = Db::list_cf(&self.opts, &self.path).map_err(|e| self.db_err(e))?;
        for name in names {
            let Some(cf) = self.db.cf_handle(&name) else { continue };
            total += self.tree_bytes(&cf)?;
            if name != "default" {
                total += self.tree_charge;
            }
        }
        Ok(total)
    }

    fn tree_bytes(&self, cf: &std::sync::Arc<rocksdb::BoundColumnFamily<'_>>) -> Result<u64, StorageError> {
        let mut total = 0u64;
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item.map_err(|e| self.db_err(e))?;
            total += entry_size(&k, &v);
        }
        Ok(total)
    }

    fn tree(&self, tree: &str) -> Result<std::sync::Arc<rocksdb::BoundColumnFamily<'_>>, StorageError> {
        check_tree_name(tree)?;
        self.db.cf_handle(tree).ok_or_else(|| StorageError::NoSuchTree(tree.into()))
    }

    fn sync_opts() -> WriteOptions {
        let mut w = WriteOptions::default();
        // Acknowledged means on disk: the module may rely on it after a crash of hostd.
        w.set_sync(true);
        w
    }

    /// Bytes charged (logical data and tree charges) and the quota.
    pub fn quota(&self) -> (u64, u64) {
        (*self.used_lock(), self.quota)
    }

    /// What the database's data files hold on disk now.
    pub fn on_disk(&self) -> u64 {
        storage_disk::data_file_bytes(&self.path)
    }

    /// What `hostd status` and `hostd metrics` show: charged bytes, data
    /// files on disk, quota. Takes the write lock and reads the directory:
    /// call it without holding the modules lock.
    pub fn usage(&self) -> StoreUsage {
        let (used_bytes, quota_bytes) = self.quota();
        StoreUsage { used_bytes, on_disk_bytes: self.on_disk(), quota_bytes }
    }

    /// What a module is told it uses: the larger of its charged bytes and
    /// its data files on disk.
    pub fn used_for_module(&self) -> u64 {
        self.quota().0.max(self.on_disk())
    }

    /// Refuse growth while the data files are past the quota, after one
    /// (rate-limited) attempt to reclaim space.
    fn check_on_disk(&self) -> Result<(), StorageError> {
        let on_disk = self.on_disk();
        if on_disk <= self.quota {
            return Ok(());
        }
        if storage_disk::reclaim_due(&mut super::lock(&self.last_reclaim), self.reclaim_every) {
            self.reclaim()?;
        }
        match self.on_disk() {
            on_disk if on_disk > self.quota => Err(StorageError::OverQuotaOnDisk { on_disk, limit: self.quota }),
            _ => Ok(()),
        }
    }

    /// Flush every tree (so obsolete WAL files go) and compact it (so
    /// overwritten values and tombstones go).
    fn reclaim(&self) -> Result<(), StorageError> {
        let names = Db::list_cf(&self.opts, &self.path).map_err(|e| self.db_err(e))?;
        for name in names {
            let Some(cf) = self.db.cf_handle(&name) else { continue };
            self.db.flush_cf(&cf).map_err(|e| self.db_err(e))?;
            self.db.compact_range_cf(&cf, None::<&[u8]>, None::<&[u8]>);
        }
        tracing::info!(module = %self.module, on_disk = self.on_disk(), "storage reclaimed: flushed and compacted");
        Ok(())
    }

    pub fn get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let cf = self.tree(tree)?;
        self.db.get_cf(&cf, key).map_err(|e| self.db_err(e))
    }

    /// Up to `limit` entries whose keys start with `prefix`, in key order,
    /// and no more than `max_bytes` of keys and values (at least one entry):
    /// a scan stops where its answer would no longer fit a frame, instead of
    /// building thousands of large entries first. A module continues from
    /// the last key it got.
    pub fn iter_prefix(&self, tree: &str, prefix: &[u8], limit: usize, max_bytes: usize) -> Result<Vec<KeyValue>, StorageError> {
        let cf = self.tree(tree)?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for item in self.db.iterator_cf(&cf, IteratorMode::From(prefix, Direction::Forward)) {
            let (k, v) = item.map_err(|e| self.db_err(e))?;
            if !k.starts_with(prefix) || out.len() >= limit {
                break;
            }
            // Each entry also costs its two length prefixes on the wire.
            let size = k.len() + v.len() + 2 * 10;
            if !out.is_empty() && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            out.push((k.into_vec(), v.into_vec()));
        }
        Ok(out)
    }

    pub fn put(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.batch(tree, &[hostd_protocol::BatchOp::Put { key: key.to_vec(), value: value.to_vec() }])
    }

    pub fn delete(&self, tree: &str, key: &[u8]) -> Result<(), StorageError> {
        self.batch(tree, &[hostd_protocol::BatchOp::Delete { key: key.to_vec() }])
    }

    /// Apply all ops atomically, or none if the quota would be exceeded.
    pub fn batch(&self, tree: &str, ops: &[hostd_protocol::BatchOp]) -> Result<(), StorageError> {
        use hostd_protocol::BatchOp;
        let cf = self.tree(tree)?;
        let mut used = self.used_lock();
        // Size change of the whole batch, with later ops on a key replacing earlier ones.
        let mut current: std::collections::HashMap<&[u8], Option<u64>> = std::collections::HashMap::new();
        let mut batch = WriteBatch::default();
        let (mut grow, mut shrink) = (0u64, 0u64);
        for op in ops {
            let key: &[u8] = match op {
                BatchOp::Put { key, .. } | BatchOp::Delete { key } => key,
            };
            let before = match current.get(key) {
                Some(s) => *s,
                None => self.db.get_pinned_cf(&cf, key).map_err(|e| self.db_err(e))?.map(|v| entry_size(key, &v)),
            };
            let after = match op {
                BatchOp::Put { key, value } => {
                    batch.put_cf(&cf, key, value);
                    Some(entry_size(key, value))
                }
                BatchOp::Delete { key } => {
                    batch.delete_cf(&cf, key);
                    None
                }
            };
            grow += after.unwrap_or(0);
            shrink += before.unwrap_or(0);
            current.insert(key, after);
        }
        let new_used = (*used + grow).saturating_sub(shrink);
        if grow > shrink {
            if new_used > self.quota {
                return Err(StorageError::QuotaExceeded { used: *used, needed: grow - shrink, limit: self.quota });
            }
            self.check_on_disk()?;
        }
        self.db.write_opt(batch, &Self::sync_opts()).map_err(|e| self.db_err(e))?;
        *used = new_used;
        Ok(())
    }

    pub fn open_tree(&self, tree: &str) -> Result<(), StorageError> {
        check_tree_name(tree)?;
        let mut used = self.used_lock();
        if self.db.cf_handle(tree).is_some() {
            return Ok(());
        }
        use std::sync::atomic::Ordering;
        if self.trees.load(Ordering::Relaxed) >= self.max_trees {
            return Err(StorageError::TooManyTrees { max: self.max_trees });
        }
        if *used + self.tree_charge > self.quota {
            return Err(StorageError::QuotaExceeded { used: *used, needed: self.tree_charge, limit: self.quota });
        }
        self.db.create_cf(tree, &self.opts).map_err(|e| self.db_err(e))?;
        self.trees.fetch_add(1, Ordering::Relaxed);
        *used += self.tree_charge;
        Ok(())
    }

    /// Trees that exist, `default` included.
    pub fn tree_count(&self) -> usize {
        self.trees.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn drop_tree(&self, tree: &str) -> Result<(), StorageError> {
        check_tree_name(tree)?;
        if tree == "default" {
            return Err(StorageError::DropDefault);
        }
        let mut used = self.used_lock();
        let size = self.tree_bytes(&self.tree(tree)?)?;
        self.db.drop_cf(tree).map_err(|e| self.db_err(e))?;
        self.trees.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        *used = used.saturating_sub(size + self.tree_charge);
        Ok(())
    }
}

#[cfg(test)]
#[path = "storage_tests.rs"]
mod tests;
