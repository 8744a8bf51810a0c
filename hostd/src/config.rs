//! Host config (`/etc/hostd/hostd.toml` in packages; `hostd.toml` next to the
//! demo). Every key has a default, so an empty file is a valid, strict
//! config. Errors name the file, the line and the key.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::manifest::{syntax_error, ManifestError};
pub use crate::mesh_config::MeshSettings;
pub use crate::node_config::{NodeBackendKind, NodeSettings};
use sandbox::policy::Feature;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct HostConfig {
    pub paths: Paths,
    pub identity: IdRange,
    pub limits: Limits,
    /// Per-module limits set by the operator; they replace the defaults for
    /// that module (a module's own `[resources]` may still tighten them).
    pub module_limits: BTreeMap<String, Limits>,
    pub trust: SignaturePolicy,
    pub sandbox: SandboxSettings,
    /// `[modules.<name>]`: values that override the module's `config.toml`
    /// (host values win, as the seeds say).
    pub modules: BTreeMap<String, toml::Table>,
    pub daemon: DaemonSettings,
    pub metrics: MetricsSettings,
    pub node: NodeSettings,
    pub mesh: MeshSettings,
}

/// `[metrics]`: an optional HTTP listener serving what `hostd metrics`
/// prints (Prometheus text format) at `/metrics`. Off by default; loopback
/// addresses only (a scraper on another host goes through a proxy the
/// operator chooses).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// e.g. "127.0.0.1:9464".
    pub listen: Option<String>,
}

/// `[daemon]`: how `hostd run` serves modules.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonSettings {
    /// The unprivileged user `hostd run` drops to after start-up (see
    /// privdrop.rs for the capabilities it keeps).
    pub user: String,
    /// Control socket; default `<run_dir>/control.sock`.
    pub control_socket: Option<PathBuf>,
    /// Group allowed on the control socket besides root (mode 0660).
    pub control_group: Option<String>,
    /// Largest IPC frame either side may send.
    pub max_frame_bytes: u32,
    /// Requests one module may have in flight.
    pub max_in_flight: u32,
    pub storage_quota_bytes: u64,
    /// Allocated space a module's `files/` may use, checked before every
    /// FsWrite; and the entries hostd walks to measure it (past that, the
    /// directory counts as full).
    pub files_quota_bytes: u64,
    pub max_files_entries: u64,
    /// Shared by every module's database.
    pub storage_block_cache_bytes: u64,
    pub storage_write_buffer_bytes: u64,
    /// Time between Shutdown/SIGTERM and killing the sandbox's cgroup.
    pub grace_ms: u32,
    pub handshake_timeout_ms: u32,
    /// Limit on a module-to-module call or CLI invocation, from the call to
    /// its answer (queueing included).
    pub call_timeout_ms: u32,
    /// Calls (module API, CLI, RPC) queued for one module and not yet
    /// answered; more answer Busy to their callers.
    pub max_pending_invocations: u32,
    /// Storage and file requests of one module running at once on hostd's
    /// shared blocking pool; more wait their turn (without a pool thread).
    pub max_blocking_per_module: u32,
    /// What one module may register with hostd, each refused with
    /// QuotaExceeded beyond its bound (counts in `hostd status`).
    pub max_rpc_endpoints: u32,
    pub max_api_methods: u32,
    pub max_cli_commands: u32,
    /// Longest description, about text or help string a module registers.
    pub max_description_bytes: u32,
    pub max_metrics: u32,
    /// Labels per metric, and bytes per label name or value.
    pub max_metric_labels: u32,
    pub max_label_bytes: u32,
    /// Storage trees (column families) per module, `default` included.
    pub max_storage_trees: u32,
    /// Quota charged for each tree beyond `default`: its OPTIONS section,
    /// MANIFEST records and memtable, which its data does not show.
    pub storage_tree_charge_bytes: u64,
    /// How often, at most, a module's database over its quota on disk is
    /// flushed and compacted to get space back before growth is refused.
    pub storage_reclaim_interval_ms: u32,
    /// How long unload/reload waits for a module's storage requests still
    /// running before it gives up with an error (the module stays loaded).
    pub storage_close_wait_ms: u32,
    /// Entries one prefix scan answers at most (bytes: one frame).
    pub max_scan_entries: u32,
    /// Largest `config.toml` read from a module's directory.
    pub max_module_config_bytes: u64,
    /// Undelivered events per module, end to end (the seeds' 100), of
    /// which events modules cause (publications, health reports) may fill
    /// `module_event_share`; the writer puts at most `events_per_write`
    /// more in the socket once the module has read the last ones.
    pub event_queue_len: u32,
    pub module_event_share: u32,
    pub events_per_write: u32,
    /// Timers and scheduled tasks one module may have at once, and the
    /// shortest interval (a module cannot turn timers into a busy loop).
    pub max_timers: u32,
    pub min_timer_ms: u32,
    /// At start-up, how long hostd waits for its modules to be up (or to
    /// have definitively failed) before it says READY=1 anyway, naming the
    /// ones still starting.
    pub ready_timeout_ms: u32,
    /// A module that never subscribes to events is announced (ModuleLoaded)
    /// this long after its handshake; one that subscribes is announced at
    /// its first subscription.
    pub announce_after_ms: u32,
    pub restart: RestartPolicy,
    /// Module stdout/stderr lines per second into hostd's log (the rest is counted).
    pub output_lines_per_sec: u32,
    /// Modules discovered but not started at `hostd run`.
    pub disabled: Vec<String>,
    /// Publish DiskSpaceLow below this share of free space in the data dir.
    pub disk_low_percent: u8,
    /// Publish ResourceLimitWarning above this share of a cgroup limit.
    pub resource_warn_percent: u8,
    /// Sandboxes the launcher makes ahead of time for modules it relaunches
    /// (restart, reload): each is an idle process with fresh namespaces and
    /// an empty cgroup. 0 turns them off.
    pub standbys: usize,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            user: "hostd".into(),
            control_socket: None,
            control_group: None,
            max_frame_bytes: hostd_protocol::DEFAULT_MAX_FRAME,
            max_in_flight: 1024,
            storage_quota_bytes: 256 << 20,
            files_quota_bytes: 256 << 20,
            max_files_entries: 10_000,
            storage_block_cache_bytes: 64 << 20,
            storage_write_buffer_bytes: 64 << 20,
            grace_ms: 5000,
            handshake_timeout_ms: 10_000,
            call_timeout_ms: 10_000,
            max_pending_invocations: 64,
            max_blocking_per_module: 4,
            max_rpc_endpoints: 64,
            max_api_methods: 256,
            max_cli_commands: 64,
            max_description_bytes: 1024,
            max_metrics: 1000,
            max_metric_labels: 16,
            max_label_bytes: 128,
            max_storage_trees: 64,
            storage_tree_charge_bytes: 64 << 10,
            storage_reclaim_interval_ms: 5000,
            storage_close_wait_ms: 10_000,
            max_scan_entries: 10_000,
            max_module_config_bytes: 1 << 20,
            event_queue_len: 100,
            module_event_share: 75,
            events_per_write: 16,
            max_timers: 64,
            min_timer_ms: 10,
            ready_timeout_ms: 60_000,
            announce_after_ms: 2000,
            restart: RestartPolicy::default(),
            output_lines_per_sec: 200,
            disabled: Vec::new(),
            disk_low_percent: 5,
            resource_warn_percent: 90,
            standbys: 4,
        }
    }
}

/// Crash supervision: restart with exponential backoff; give up after
/// `max_restarts` crashes within `window_secs` (a crash loop).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RestartPolicy {
    pub enabled: bool,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub max_restarts: u32,
    pub window_secs: u64,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy { enabled: true, backoff_initial_ms: 500, backoff_max_ms: 30_000, max_restarts: 5, window_secs: 300 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Paths {
    pub modules_dir: PathBuf,
    pub data_dir: PathBuf,
    pub run_dir: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            modules_dir: "/var/lib/hostd/modules".into(),
            data_dir: "/var/lib/hostd/data".into(),
            run_dir: "/run/hostd".into(),
        }
    }
}

/// Host uids/gids handed to modules, one per module, never 0 and never
/// hostd's own.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct IdRange {
    pub first: u32,
    pub count: u32,
}

impl Default for IdRange {
    fn default() -> Self {
        IdRange { first: 620_000, count: 10_000 }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub memory_max_bytes: u64,
    /// 100 = one full CPU.
    pub cpu_percent: u32,
    pub pids_max: u64,
    pub nofile: u64,
    pub fsize_bytes: u64,
    /// Size of the module's empty read-only root tmpfs.
    pub tmpfs_bytes: u64,
    /// Frames (requests and log records) per second the module may send,
    /// sustained, and in one burst. Past them hostd reads its socket only
    /// at that pace: the module's sends wait; nothing is refused.
    pub requests_per_sec: u32,
    pub request_burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_max_bytes: 256 << 20,
            cpu_percent: 100,
            pids_max: 64,
            nofile: 256,
            fsize_bytes: 1 << 30,
            tmpfs_bytes: 1 << 20,
            requests_per_sec: 2_000,
            request_burst: 4_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SignaturePolicy {
    /// Load modules without any signature at all (default: no).
    pub allow_unsigned: bool,
    /// Signatures required from distinct anchors even if a manifest asks
    /// for fewer.
    pub min_signatures: usize,
    pub anchors: Vec<TrustAnchor>,
}

impl Default for SignaturePolicy {
    fn default() -> Self {
        SignaturePolicy { allow_unsigned: false, min_signatures: 1, anchors: Vec::new() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TrustAnchor {
    pub name: String,
    /// 33-byte compressed secp256k1 key, hex.
    pub public_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxSettings {
    /// Landlock ABI below which a module is not started.
    pub min_landlock_abi: u32,
    /// Kernel features modules may run without (loud: `policy show` and the
    /// logs flag every one). Empty by default.
    pub allow_downgrade: Vec<Feature>,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        SandboxSettings { min_landlock_abi: sandbox::policy::LANDLOCK_ABI_SCOPE, allow_downgrade: Vec::new() }
    }
}

impl HostConfig {
    pub fn load(file: &Path) -> Result<HostConfig, ManifestError> {
        let text = std::fs::read_to_string(file).map_err(|source| ManifestError::Read { file: file.into(), source })?;
        HostConfig::parse(&text, file)
    }

    pub fn parse(text: &str, file: &Path) -> Result<HostConfig, ManifestError> {
        let mut c: HostConfig = toml::from_str(text).map_err(|e| syntax_error(file, text, &e))?;
        let invalid = |key: &str, message: String| ManifestError::Invalid { file: file.into(), key: key.into(), message }.at_line_of(text);
        // Relative paths are relative to the config file's directory, and
        // made absolute now (`--config hostd.toml` has an empty parent):
        // the launcher compares them with the kernel's absolute names.
        let base = file.parent().unwrap_or(Path::new("."));
        for p in [&mut c.paths.modules_dir, &mut c.paths.data_dir, &mut c.paths.run_dir] {
            if p.is_relative() {
                *p = std::path::absolute(base.join(&*p)).unwrap_or_else(|_| base.join(&*p));
            }
        }
        if c.identity.first == 0 || c.identity.count == 0 || c.identity.first.checked_add(c.identity.count).is_none() {
            return Err(invalid("identity", "first must be > 0 and first + count must fit in 32 bits".into()));
        }
        for (i, a) in c.trust.anchors.iter().enumerate() {
            crate::trust::parse_public_key(&a.public_key).map_err(|m| invalid(&format!("trust.anchors[{i}] ({})", a.name), m))?;
            if c.trust.anchors[..i].iter().any(|b| b.name == a.name || b.public_key == a.public_key) {
                return Err(invalid(&format!("trust.anchors[{i}]"), format!("anchor {:?} or its key is listed twice", a.name)));
            }
        }
        for name in c.module_limits.keys().chain(c.modules.keys()) {
            crate::manifest::check_name(name).map_err(|m| invalid(&format!("modules.{name}"), m))?;
        }
        let d = &c.daemon;
        if d.max_frame_bytes < 1024 || d.max_frame_bytes > hostd_protocol::HARD_MAX_FRAME {
            return Err(invalid("daemon.max_frame_bytes", format!("must be between 1024 and {}", hostd_protocol::HARD_MAX_FRAME)));
        }
        if d.max_in_flight == 0 || d.max_pending_invocations == 0 || d.max_blocking_per_module == 0 {
            return Err(invalid("daemon", "max_in_flight, max_pending_invocations and max_blocking_per_module must be > 0".into()));
        }
        if d.event_queue_len == 0 || d.events_per_write == 0 || d.module_event_share > d.event_queue_len {
            return Err(invalid("daemon", "event_queue_len and events_per_write must be > 0, module_event_share <= event_queue_len".into()));
        }
        if d.max_scan_entries == 0 || d.max_timers == 0 || d.min_timer_ms == 0 {
            return Err(invalid("daemon", "max_scan_entries, max_timers and min_timer_ms must be > 0".into()));
        }
        if let Some(listen) = &c.metrics.listen {
            let addr: std::net::SocketAddr = listen.parse().map_err(|e| invalid("metrics.listen", format!("{listen:?}: {e} (e.g. \"127.0.0.1:9464\")")))?;
            if !addr.ip().is_loopback() {
                return Err(invalid("metrics.listen", format!("{addr} is not a loopback address; hostd serves metrics on loopback only")));
            }
        }
        c.node.check().map_err(|(key, m)| invalid(key, m))?;
        c.mesh.check(d.max_frame_bytes).map_err(|(key, m)| invalid(key, m))?;
        for name in &d.disabled {
            crate::manifest::check_name(name).map_err(|m| invalid("daemon.disabled", m))?;
        }
        for (key, l) in std::iter::once(("limits".to_string(), &c.limits)).chain(c.module_limits.iter().map(|(n, l)| (format!("module_limits.{n}"), l))) {
            if l.cpu_percent == 0 || l.pids_max == 0 || l.nofile < 4 || l.memory_max_bytes < (4 << 20) {
                return Err(invalid(&key, "cpu_percent and pids_max must be > 0, nofile >= 4, memory_max_bytes >= 4 MiB".into()));
            }
            if l.requests_per_sec == 0 || l.request_burst == 0 {
                return Err(invalid(&key, "requests_per_sec and request_burst must be > 0".into()));
            }
        }
        Ok(c)
    }

    pub fn limits_for(&self, module: &str) -> Limits {
        self.module_limits.get(module).copied().unwrap_or(self.limits)
    }

    pub fn module_dir(&self, module: &str) -> PathBuf {
        self.paths.modules_dir.join(module)
    }

    /// `data/modules/<name>/`; the module's own files are in `files/` below
    /// it (its RocksDB, owned by hostd, will sit next to it in `db/`).
    pub fn control_socket(&self) -> PathBuf {
        self.daemon.control_socket.clone().unwrap_or_else(|| self.paths.run_dir.join("control.sock"))
    }

    pub fn module_data_dir(&self, module: &str) -> PathBuf {
        self.paths.data_dir.join("modules").join(module)
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
