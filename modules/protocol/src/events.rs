//! Events: what the bus carries. Append only.

use bincode::{Decode, Encode};

/// Who may publish an event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Only hostd (chain, node, lifecycle, resources): a module publishing
    /// one would be forging host state.
    Host,
    /// Modules with `publish_events` (payments, mining, mesh, governance…).
    Module,
}

macro_rules! event_types {
    ($($variant:ident : $origin:ident),* $(,)?) => {
        /// Subscription keys. Append only.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
        pub enum EventType { $($variant),* }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(EventType::$variant),*];

            pub fn origin(self) -> Origin {
                match self { $(EventType::$variant => Origin::$origin),* }
            }

            pub fn as_str(self) -> &'static str {
                match self { $(EventType::$variant => stringify!($variant)),* }
            }
        }
    };
}

event_types! {
    NewBlock: Host,
    NewTransaction: Host,
    BlockDisconnected: Host,
    ChainReorg: Host,
    ModuleLoaded: Host,
    ModuleUnloaded: Host,
    ModuleCrashed: Host,
    ModuleDiscovered: Host,
    ConfigLoaded: Host,
    NodeStartupCompleted: Host,
    NodeShutdown: Host,
    NodeShutdownCompleted: Host,
    HealthCheck: Host,
    DiskSpaceLow: Host,
    ResourceLimitWarning: Host,
    DataMaintenance: Host,
    PaymentRequestCreated: Module,
    PaymentSettled: Module,
    PaymentFailed: Module,
    PaymentVerified: Module,
    ChannelOpened: Module,
    ChannelClosed: Module,
    BlockMined: Module,
    BlockTemplateUpdated: Module,
    MiningJobCreated: Module,
    ShareSubmitted: Module,
    MeshPacketReceived: Module,
    StratumV2MessageReceived: Module,
    GovernanceProposalCreated: Module,
    GovernanceProposalVoted: Module,
    // Free-form events between cooperating modules.
    Custom: Module,
    MempoolTransactionAdded: Host,
    MempoolTransactionRemoved: Host,
    FeeRateChanged: Host,
    PeerConnected: Host,
    PeerDisconnected: Host,
    BlockSyncProgress: Host,
    NodeUnreachable: Host,
    NodeReachable: Host,
    // Commons Mesh: a route found / none found in time (body: the mesh
    // API's RouteEvent).
    RouteDiscovered: Module,
    RouteFailed: Module,
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EventType {
    type Err = String;
    fn from_str(s: &str) -> Result<EventType, String> {
        EventType::ALL.iter().copied().find(|t| t.as_str() == s).ok_or_else(|| format!("unknown event type {s:?}"))
    }
}

/// Why a module stopped without being asked to.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum CrashReason {
    Exited { code: i32 },
    Signaled { signal: i32 },
    /// Killed by SIGSYS: a syscall outside the seccomp allowlist.
    SeccompViolation,
    /// Killed by the OOM killer inside its memory limit.
    OutOfMemory,
    /// hostd closed the connection: bad frame, flood, handshake failure.
    ProtocolViolation { detail: String },
    /// The module did not stop within its grace period.
    Unresponsive,
}

impl std::fmt::Display for CrashReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CrashReason::Exited { code } => write!(f, "exited with code {code}"),
            CrashReason::Signaled { signal } => write!(f, "killed by signal {signal}"),
            CrashReason::SeccompViolation => f.write_str("seccomp violation (SIGSYS)"),
            CrashReason::OutOfMemory => f.write_str("out of memory (cgroup OOM kill)"),
            CrashReason::ProtocolViolation { detail } => write!(f, "protocol violation: {detail}"),
            CrashReason::Unresponsive => f.write_str("did not stop within its grace period"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub enum EventPayload {
    None,
    Block { hash: [u8; 32], height: u64 },
    Transaction { txid: [u8; 32] },
    ModuleLoaded { module_name: String, version: String },
    ModuleUnloaded { module_name: String },
    ModuleCrashed { module_name: String, reason: CrashReason, restarts: u32 },
    ConfigLoaded { changed: Vec<String> },
    HealthCheck { module_name: String, healthy: bool, detail: String },
    ResourceLimitWarning { module_name: String, resource: String, used: u64, limit: u64 },
    DiskSpaceLow { path: String, available_bytes: u64, total_bytes: u64 },
    /// A module-published event's opaque body.
    Data(Vec<u8>),
    /// The node's active chain moved from `old_tip` to `new_tip`, abandoning
    /// `depth` blocks above `fork_point`. `fork_point` is `None` when the
    /// fork lies below the blocks hostd keeps (`[node] header_window`):
    /// then `depth` counts only the abandoned blocks hostd knew.
    ChainReorg { old_tip: [u8; 32], new_tip: [u8; 32], fork_point: Option<[u8; 32]>, fork_height: Option<u64>, depth: u64 },
    /// A transaction entered or left the node's mempool. `fee_rate_sat_per_kvb`
    /// is `None` when it left, or when hostd did not look it up (more new
    /// transactions in one poll than `[node] max_fee_lookups`).
    MempoolTransaction { txid: [u8; 32], fee_rate_sat_per_kvb: Option<u64>, mempool_size: u64 },
    /// The node's fee estimate for `[node] fee_target_blocks` moved
    /// (`None`: no estimate).
    FeeRateChanged { old_sat_per_kvb: Option<u64>, new_sat_per_kvb: Option<u64> },
    Peer { id: u64, address: String, inbound: bool },
    /// Initial block download: blocks validated of headers known.
    SyncProgress { blocks: u64, headers: u64, verification_progress: f64 },
    /// The node became unreachable (`reachable: false`, `detail` says why) or
    /// answers again, at `tip`/`height`.
    NodeLink { reachable: bool, tip: Option<[u8; 32]>, height: Option<u64>, detail: String },
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct Event {
    pub event_type: EventType,
    /// The publishing module, stamped by hostd; `None` for host events.
    pub publisher: Option<String>,
    pub payload: EventPayload,
}
