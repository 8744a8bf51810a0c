//! `hostd run`: the module host daemon.
//!
//! - [`run`]: start-up (root hand-over, launcher fork, privilege drop) and shutdown;
//! - [`layout`]: the data directory's layout and its hand-over to the hostd user;
//! - [`privileges`]: what the daemon keeps when it drops root;
//! - [`launcher`]: the single-threaded process that creates sandboxes;
//! - [`conn`]: one task per module connection (handshake, frames, limits), and
//!   [`conn_writer`], its writing side;
//! - [`hub`]: permission-checked request handlers, by request family;
//! - [`mesh`]: modules' network links, owned by hostd;
//! - [`bus`]: the event bus; [`event_queue`]: one module's undelivered events;
//! - [`storage`]: per-module RocksDB; [`files_usage`]: what `files/` uses on disk;
//! - [`lifecycle`]: load, unload, stop, reload; [`deps`]: dependency order;
//! - [`supervisor`]: one task per module: start, watch, restart ([`crash`]);
//! - [`monitor`]: resource and disk warnings;
//! - [`startup`]: dependencies up before dependents, and READY=1 with a STATUS line;
//! - [`control`]: the control socket; [`notify`]: sd_notify.

pub mod bus;
pub mod conn;
pub mod conn_handle;
pub mod conn_writer;
pub mod control;
pub mod deps;
pub mod event_queue;
pub mod files_usage;
pub mod hub;
pub mod crash;
pub mod launcher;
pub mod layout;
pub mod lifecycle;
pub mod limit;
pub mod mesh;
pub mod metrics_export;
pub mod metrics_http;
pub mod monitor;
pub mod node;
pub mod notify;
pub mod privileges;
pub mod prometheus;
pub mod request_stats;
pub mod run;
pub mod startup;
pub mod storage;
pub mod storage_disk;
pub mod supervisor;

use crate::config::HostConfig;
use crate::discovery::ModuleDir;
use crate::permissions::Permission;
use hostd_protocol::{CliSpec, HealthStatus};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Lines of module output and logs kept per module for `hostd logs`.
pub const LOG_RING: usize = 2000;
/// Permission denials of one module said per second (the rest are counted
/// in `hostd status`): enough to see what a module lacks, not a flood.
pub const DENIALS_LOGGED_PER_SEC: u32 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModState {
    Starting,
    Running,
    Stopping,
    /// Crashed; waiting out the backoff before the next start.
    Backoff,
    /// Crash loop or unstartable; stays down until `hostd load`.
    Failed,
    Stopped,
}

impl std::fmt::Display for ModState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        f.write_str(&s)
    }
}

/// What hostd knows about one module while it is loaded.
pub struct LoadedModule {
    pub module: ModuleDir,
    pub permissions: BTreeSet<Permission>,
    pub state: ModState,
    pub pid: Option<i32>,
    pub sandbox_key: Option<u64>,
    pub started_at: Option<Instant>,
    pub handshaken: bool,
    pub restarts: u32,
    pub last_exit: Option<String>,
    pub conn: Option<Arc<conn::ConnHandle>>,
    /// Its mesh links and listener while connected (protocol 2, `network_access`).
    pub mesh: Option<Arc<mesh::ModuleMesh>>,
    pub store: Option<Arc<storage::ModuleStore>>,
    pub api: Vec<String>,
    pub cli: Option<CliSpec>,
    pub rpc: BTreeMap<String, String>,
    pub health: Option<(HealthStatus, String)>,
    pub logs: VecDeque<String>,
    pub suppressed_lines: u64,
    /// Allocated bytes in `files/` at the monitor's last walk, or why it
    /// could not be measured.
    pub files_used: Option<Result<u64, String>>,
    /// Slots of the shared blocking pool (storage and file work) this
    /// module may hold at once; its other such requests wait their turn
    /// without holding a pool thread.
    pub pool: Arc<tokio::sync::Semaphore>,
    pub pool_slots: usize,
    /// Node requests of this module in flight at once (`[node]
    /// max_calls_per_module`): the node's few connections are shared.
    pub node_slots: Arc<tokio::sync::Semaphore>,
    pub control: Option<tokio::sync::mpsc::Sender<supervisor::StopRequest>>,
    /// Requests refused for a missing permission, and how many of them a
    /// second reach the log ring and hostd's log (the rest are counted).
    pub denials: u64,
    pub denial_log: limit::LineBudget,
    /// Requests and their latencies since the module was loaded.
    pub requests: Arc<request_stats::RequestStats>,
    /// The verified binary of the latest start, kept open: after a reload
    /// whose new version cannot come up, the previous version starts again
    /// from it even though its file on disk was replaced.
    pub binary: Option<Arc<std::os::fd::OwnedFd>>,
    /// Start from `binary` rather than from the file on disk (set by that
    /// rollback, until the next load or reload).
    pub pinned: bool,
}

impl LoadedModule {
    pub fn new(module: ModuleDir, pool_slots: usize, node_slots: usize) -> LoadedModule {
        LoadedModule {
            node_slots: Arc::new(tokio::sync::Semaphore::new(node_slots)),
            pool: Arc::new(tokio::sync::Semaphore::new(pool_slots)),
            pool_slots,
            permissions: module.manifest.permissions.clone(),
            module,
            state: ModState::Stopped,
            pid: None,
            sandbox_key: None,
            started_at: None,
            handshaken: false,
            restarts: 0,
            last_exit: None,
            conn: None,
            mesh: None,
            store: None,
            api: Vec::new(),
            cli: None,
            rpc: BTreeMap::new(),
            health: None,
            logs: VecDeque::new(),
            suppressed_lines: 0,
            files_used: None,
            control: None,
            denials: 0,
            denial_log: limit::LineBudget::new(DENIALS_LOGGED_PER_SEC),
            requests: Arc::default(),
            binary: None,
            pinned: false,
        }
    }

    /// A request refused for a missing permission: counted, and said in
    /// the module's log ring and hostd's log at a bounded rate.
    pub fn record_denial(&mut self, message: &str) {
        self.denials += 1;
        let admit = self.denial_log.admit();
        if admit.closed_window_suppressed > 0 {
            self.note(format!("{} more permission denials in the last second (not shown)", admit.closed_window_suppressed));
        }
        if admit.keep {
            tracing::warn!(module = %self.name(), "permission denied: {message}");
            self.note(format!("permission denied: {message}"));
        }
    }

    pub fn name(&self) -> &str {
        &self.module.manifest.manifest.name
    }

    /// What hostd says of this module: kept in its log ring (`hostd logs`)
    /// beside the module's own lines, marked as hostd's.
    pub fn note(&mut self, line: impl std::fmt::Display) {
        self.push_log(format!("[hostd] {line}"));
    }

    /// The sandbox is gone (stopped or crashed).
    pub fn process_gone(&mut self) {
        self.pid = None;
        self.sandbox_key = None;
        self.started_at = None;
        self.handshaken = false;
    }

    pub fn push_log(&mut self, line: String) {
        if self.logs.len() == LOG_RING {
            self.logs.pop_front();
        }
        self.logs.push_back(line);
    }
}

/// Lock a mutex; a panic elsewhere while holding it leaves our maps
/// consistent (single inserts and removes), so poisoning is ignored.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reported metrics: (module, name) → (value, labels).
pub type Metrics = BTreeMap<(String, String), (f64, Vec<(String, String)>)>;

/// Everything the daemon's tasks share.
pub struct Host {
    pub config: HostConfig,
    pub bus: bus::Bus,
    pub storage: storage::StorageEnv,
    pub launcher: launcher::Launcher,
    pub node: node::Node,
    pub mesh: Arc<mesh::Mesh>,
    pub loaded: Mutex<BTreeMap<String, LoadedModule>>,
    /// (module, metric name) → (value, labels).
    pub metrics: Mutex<Metrics>,
    pub ids: Mutex<crate::discovery::IdMap>,
    pub started: Instant,
}

impl Host {
    pub fn loaded(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, LoadedModule>> {
        lock(&self.loaded)
    }

    /// Run `f` on the module's slot, if it is loaded.
    pub fn with_module<R>(&self, module: &str, f: impl FnOnce(&mut LoadedModule) -> R) -> Option<R> {
        self.loaded().get_mut(module).map(f)
    }

    pub fn log_line(&self, module: &str, line: String) {
        self.with_module(module, |s| s.push_log(line));
    }
}
