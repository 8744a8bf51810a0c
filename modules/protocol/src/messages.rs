//! Message types. Every enum here is append-only (see the crate docs).

use crate::events::{Event, EventType};
use crate::kind::RequestKind;
use bincode::{Decode, Encode};

pub type Hash32 = [u8; 32];

/// Module → host.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub enum ModuleMessage {
    /// First frame on a connection; nothing else is accepted before it.
    Hello(Hello),
    Request { id: u64, request: Request },
    Log(LogRecord),
    /// The answer to a [`HostMessage::Invoke`] with the same id.
    InvocationResult { id: u64, result: Result<Vec<u8>, ErrorBody> },
}

/// Host → module.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub enum HostMessage {
    Welcome(Welcome),
    /// The handshake failed; the host closes the connection after this.
    Refused(ErrorBody),
    Response { id: u64, result: Result<Response, ErrorBody> },
    Event(Event),
    /// A call the module must answer with [`ModuleMessage::InvocationResult`].
    Invoke { id: u64, invocation: Invocation },
    /// A timer or scheduled task of this module is due.
    TimerFired { timer_id: u64, task: Option<String> },
    /// Stop within `grace_ms`; after that the host kills the sandbox.
    Shutdown { grace_ms: u32 },
    /// Protocol 2: a mesh link of this module is up (outbound after
    /// `MeshConnect`, inbound on its listener). Sent only to the owner.
    LinkUp(LinkInfo),
    /// Protocol 2: a link is gone; no frame of it follows.
    LinkDown { link: u64, reason: String },
    /// Protocol 2: one frame the link's peer sent, in the order sent.
    MeshFrame { link: u64, data: Vec<u8> },
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct Hello {
    /// Must equal the name hostd gave this socket, or the handshake fails.
    pub name: String,
    pub version: String,
    pub protocol_min: u32,
    pub protocol_max: u32,
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct Welcome {
    pub protocol: u32,
    pub module: String,
    pub host_version: String,
    /// Permission names granted by the manifest, for the module's information.
    pub granted: Vec<String>,
    /// Largest frame either side may send on this connection.
    pub max_frame: u32,
    /// Requests the host accepts in flight from this module at once.
    pub max_in_flight: u32,
    /// The module's configuration as TOML: its `config.toml` with the
    /// operator's `[modules.<name>]` on top (operator values win).
    pub config_toml: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Encode, Decode)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct LogRecord {
    pub level: LogLevel,
    pub target: String,
    pub message: String,
    pub fields: Vec<(String, String)>,
}

/// Why a request failed. Append only; the connection stays up after any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub enum ErrorCode {
    /// The manifest does not grant the permission this request needs.
    PermissionDenied,
    /// The standalone host has no Bitcoin node behind it (`[node] backend =
    /// "standalone"`, the default).
    NoNodeAttached,
    NotFound,
    InvalidArgument,
    /// The module's storage quota would be exceeded; nothing was written.
    QuotaExceeded,
    /// Kept for the wire (codes are positional). hostd no longer answers it:
    /// past its rate a module's frames are read at the rate instead.
    RateLimited,
    /// More requests in flight than the host allows this module.
    TooManyInFlight,
    /// The called module is not running or not connected.
    ModuleUnavailable,
    Timeout,
    Internal,
    Unsupported,
    /// Allowed in general but not this instance (e.g. publishing a host-only event type).
    Forbidden,
    AlreadyExists,
    /// No common protocol version.
    VersionMismatch,
    /// The handshake name is not the name this socket belongs to.
    IdentityMismatch,
    /// The module has as many calls pending as hostd queues for it; try again later.
    Busy,
    /// hostd has a node configured but cannot reach it (down, refusing
    /// hostd's credentials, or not answering in time); retry later.
    NodeUnreachable,
    /// The node answered with an error (the message carries its code and
    /// text), e.g. a transaction or block it rejected.
    NodeRpcError,
    /// Lightning and payment requests: this hostd has no Lightning backend.
    NoLightningBackend,
    /// Protocol 2: the mesh link closed before the frame was written.
    LinkClosed,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
        ErrorBody { code, message: message.into() }
    }
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum HealthStatus {
    Healthy,
    Degraded,
    Unhealthy,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct CliArg {
    pub name: String,
    pub help: String,
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct CliCommand {
    pub name: String,
    pub about: String,
    pub args: Vec<CliArg>,
}

/// The commands a module offers under `hostd module <name> …`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode)]
pub struct CliSpec {
    pub about: String,
    pub commands: Vec<CliCommand>,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum BatchOp {
    Put { key: Vec<u8>, value: Vec<u8> },
    Delete { key: Vec<u8> },
}

/// Every request a module can make (all [`RequestKind`]s except the
/// handshake and logs, which are messages of their own). Append only.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub enum Request {
    ReportHealth { status: HealthStatus, detail: String },
    RegisterCliSpec { spec: CliSpec },
    GetBlock { hash: Hash32 },
    GetBlockHeader { hash: Hash32 },
    GetTransaction { txid: Hash32 },
    HasTransaction { txid: Hash32 },
    GetUtxo { txid: Hash32, vout: u32 },
    GetChainTip,
    GetBlockHeight,
    GetChainInfo,
    SubscribeEvents { types: Vec<EventType> },
    UnsubscribeEvents { types: Vec<EventType> },
    SendTransaction { raw: Vec<u8> },
    GetMempoolTransactions,
    GetMempoolTransaction { txid: Hash32 },
    GetMempoolSize,
    GetFeeEstimate { target_blocks: u32 },
    GetNetworkStats,
    GetNetworkPeers,
    SendMeshPacket { peer: Vec<u8>, payload: Vec<u8> },
    GetLightningNodeUrl,
    GetLightningInfo,
    GetPaymentState { payment_id: String },
    StorageGet { tree: String, key: Vec<u8> },
    StorageIterPrefix { tree: String, prefix: Vec<u8>, limit: u32 },
    StoragePut { tree: String, key: Vec<u8>, value: Vec<u8> },
    StorageDelete { tree: String, key: Vec<u8> },
    StorageBatch { tree: String, ops: Vec<BatchOp> },
    StorageOpenTree { tree: String },
    StorageDropTree { tree: String },
    StorageQuota,
    FsRead { path: String, offset: u64, len: u32 },
    FsWrite { path: String, data: Vec<u8>, append: bool },
    FsDelete { path: String },
    FsMkdir { path: String },
    RegisterRpcEndpoint { method: String, description: String },
    UnregisterRpcEndpoint { method: String },
    TimerCreate { interval_ms: u64, repeat: bool },
    TimerCancel { timer_id: u64 },
    ScheduleTask { delay_ms: u64, task: String },
    ReportMetric { name: String, value: f64, labels: Vec<(String, String)> },
    GetMetrics { module: Option<String> },
    DiscoverModules,
    GetModuleInfo { name: String },
    PublishEvent { event_type: EventType, data: Vec<u8> },
    CallModule { module: String, method: String, params: Vec<u8> },
    RegisterModuleApi { methods: Vec<String> },
    UnregisterModuleApi,
    SubmitBlock { raw: Vec<u8> },
    QueueInboundBlock { raw: Vec<u8> },
    /// Protocol 2: open a link to `addr` ("ip:port"); answered with
    /// [`Response::Link`] once the peer's hostd has answered the preamble.
    MeshConnect { addr: String },
    /// Protocol 2: close one of this module's links.
    MeshClose { link: u64 },
    /// Protocol 2: this module's links.
    MeshLinks,
    /// Protocol 2: send one frame on a link. Answered (Ack) once hostd has
    /// handed the frame to the link's socket: at most the link's
    /// `send_window` bytes may be unanswered, beyond that Busy.
    MeshSend { link: u64, data: Vec<u8> },
}

impl Request {
    pub fn kind(&self) -> RequestKind {
        use Request as Q;
        use RequestKind as K;
        match self {
            Q::ReportHealth { .. } => K::ReportHealth,
            Q::RegisterCliSpec { .. } => K::RegisterCliSpec,
            Q::GetBlock { .. } => K::GetBlock,
            Q::GetBlockHeader { .. } => K::GetBlockHeader,
            Q::GetTransaction { .. } => K::GetTransaction,
            Q::HasTransaction { .. } => K::HasTransaction,
            Q::GetUtxo { .. } => K::GetUtxo,
            Q::GetChainTip => K::GetChainTip,
            Q::GetBlockHeight => K::GetBlockHeight,
            Q::GetChainInfo => K::GetChainInfo,
            Q::SubscribeEvents { .. } => K::SubscribeEvents,
            Q::UnsubscribeEvents { .. } => K::UnsubscribeEvents,
            Q::SendTransaction { .. } => K::SendTransaction,
            Q::GetMempoolTransactions => K::GetMempoolTransactions,
            Q::GetMempoolTransaction { .. } => K::GetMempoolTransaction,
            Q::GetMempoolSize => K::GetMempoolSize,
            Q::GetFeeEstimate { .. } => K::GetFeeEstimate,
            Q::GetNetworkStats => K::GetNetworkStats,
            Q::GetNetworkPeers => K::GetNetworkPeers,
            Q::SendMeshPacket { .. } => K::SendMeshPacket,
            Q::GetLightningNodeUrl => K::GetLightningNodeUrl,
            Q::GetLightningInfo => K::GetLightningInfo,
            Q::GetPaymentState { .. } => K::GetPaymentState,
            Q::StorageGet { .. } => K::StorageGet,
            Q::StorageIterPrefix { .. } => K::StorageIterPrefix,
            Q::StoragePut { .. } => K::StoragePut,
            Q::StorageDelete { .. } => K::StorageDelete,
            Q::StorageBatch { .. } => K::StorageBatch,
            Q::StorageOpenTree { .. } => K::StorageOpenTree,
            Q::StorageDropTree { .. } => K::StorageDropTree,
            Q::StorageQuota => K::StorageQuota,
            Q::FsRead { .. } => K::FsRead,
            Q::FsWrite { .. } => K::FsWrite,
            Q::FsDelete { .. } => K::FsDelete,
            Q::FsMkdir { .. } => K::FsMkdir,
            Q::RegisterRpcEndpoint { .. } => K::RegisterRpcEndpoint,
            Q::UnregisterRpcEndpoint { .. } => K::UnregisterRpcEndpoint,
            Q::TimerCreate { .. } => K::TimerCreate,
            Q::TimerCancel { .. } => K::TimerCancel,
            Q::ScheduleTask { .. } => K::ScheduleTask,
            Q::ReportMetric { .. } => K::ReportMetric,
            Q::GetMetrics { .. } => K::GetMetrics,
            Q::DiscoverModules => K::DiscoverModules,
            Q::GetModuleInfo { .. } => K::GetModuleInfo,
            Q::PublishEvent { .. } => K::PublishEvent,
            Q::CallModule { .. } => K::CallModule,
            Q::RegisterModuleApi { .. } => K::RegisterModuleApi,
            Q::UnregisterModuleApi => K::UnregisterModuleApi,
            Q::SubmitBlock { .. } => K::SubmitBlock,
            Q::QueueInboundBlock { .. } => K::QueueInboundBlock,
            Q::MeshConnect { .. } => K::MeshConnect,
            Q::MeshClose { .. } => K::MeshClose,
            Q::MeshLinks => K::MeshLinks,
            Q::MeshSend { .. } => K::MeshSend,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Utxo {
    pub value_sat: u64,
    pub script_pubkey: Vec<u8>,
    pub height: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ChainInfo {
    pub network: String,
    pub tip: Hash32,
    pub height: u64,
    pub initial_block_download: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct NetworkStats {
    pub peers: u32,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct PeerInfo {
    pub id: u64,
    pub address: String,
    pub inbound: bool,
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct ModuleInfo {
    pub name: String,
    pub version: String,
    pub state: String,
    pub permissions: Vec<String>,
    /// Methods the module registered for `CallModule`.
    pub api: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct MetricSample {
    pub module: String,
    pub name: String,
    pub value: f64,
    pub labels: Vec<(String, String)>,
}

/// Successful results. Each request has one expected variant; the SDK
/// treats any other as a protocol error. Append only.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub enum Response {
    Ack,
    /// Raw bytes that may be absent (storage get, block, transaction).
    Bytes(Option<Vec<u8>>),
    Bool(bool),
    Count(u64),
    ChainTip { hash: Hash32, height: u64 },
    ChainInfo(ChainInfo),
    Utxo(Option<Utxo>),
    Txids(Vec<Hash32>),
    FeeRate { sat_per_kvb: u64 },
    NetworkStats(NetworkStats),
    Peers(Vec<PeerInfo>),
    Text(String),
    Entries(Vec<(Vec<u8>, Vec<u8>)>),
    Quota { used_bytes: u64, limit_bytes: u64 },
    TimerId(u64),
    Modules(Vec<ModuleInfo>),
    Module(ModuleInfo),
    Metrics(Vec<MetricSample>),
    /// Result of `CallModule`: the callee's answer.
    CallResult(Vec<u8>),
    /// Result of `MeshConnect`.
    Link(LinkInfo),
    /// Result of `MeshLinks`.
    Links(Vec<LinkInfo>),
}

/// What one `MeshSend` frame counts against a link's `send_window` beyond
/// its bytes (so empty frames are not free).
pub const MESH_SEND_OVERHEAD: u32 = 64;

/// One mesh link as its owning module sees it.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct LinkInfo {
    /// Unique within this hostd's run; never reused.
    pub id: u64,
    /// The peer's address ("ip:port").
    pub peer: String,
    /// hostd's end of the link ("ip:port").
    pub local: String,
    /// Accepted on the module's listener (true) or opened by `MeshConnect`.
    pub inbound: bool,
    /// Largest frame this link carries, either way.
    pub max_frame: u32,
    /// Bytes of `MeshSend` this link holds unanswered at most; a send past
    /// them is answered Busy. The SDK waits for room instead.
    pub send_window: u32,
}

/// Host → module calls. Append only.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Invocation {
    /// `hostd module <name> <command> args…`; the result is the UTF-8 output.
    Cli { command: String, args: Vec<String> },
    /// Another module's `CallModule` of a method this module registered.
    Api { caller: String, method: String, params: Vec<u8> },
    /// A call of an RPC endpoint the module registered (params as JSON text).
    Rpc { method: String, params: String },
}
