//! Typed requests: one async method per request kind.

use crate::conn::SdkError;
use hostd_protocol::{
    BatchOp, ChainInfo, CliSpec, ErrorBody, EventType, Hash32, HealthStatus, LogLevel, LogRecord, MetricSample,
    ModuleInfo, ModuleMessage, NetworkStats, PeerInfo, Request, Response, Utxo, Welcome,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

type Reply = Result<Response, ErrorBody>;

#[derive(Debug)]
pub(crate) struct Shared {
    welcome: Welcome,
    out: mpsc::Sender<ModuleMessage>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    next_id: AtomicU64,
    closed: AtomicBool,
    dropped_events: AtomicU64,
    dropped_logs: AtomicU64,
    dropped_ticks: AtomicU64,
    pub(crate) windows: crate::mesh::Windows,
}

impl Shared {
    pub(crate) fn new(welcome: Welcome, out: mpsc::Sender<ModuleMessage>) -> Shared {
        Shared {
            windows: crate::mesh::Windows::new(welcome.max_in_flight),
            welcome,
            out,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            dropped_events: AtomicU64::new(0),
            dropped_logs: AtomicU64::new(0),
            dropped_ticks: AtomicU64::new(0),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Reply>>> {
        // A panic while holding this lock leaves the map consistent (single
        // inserts and removes), so a poisoned lock is still usable.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn complete(&self, id: u64, reply: Reply) {
        self.windows.release(id);
        if let Some(tx) = self.pending().remove(&id) {
            let _ = tx.send(reply);
        }
    }

    /// Fail every waiting request with `Closed`.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.pending().clear();
        self.windows.clear();
    }

    pub(crate) fn count_dropped_event(&self) {
        self.dropped_events.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_dropped_tick(&self) {
        self.dropped_ticks.fetch_add(1, Ordering::Relaxed);
    }
}

/// A handle for making requests; cheap to clone and use from many tasks.
#[derive(Debug, Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

/// The answer a submitted request's receiver yields.
pub(crate) async fn answer(rx: oneshot::Receiver<Reply>) -> Result<Response, SdkError> {
    match rx.await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(SdkError::Host(e)),
        Err(_) => Err(SdkError::Closed),
    }
}

macro_rules! expect {
    ($self:ident, $req:expr, $pat:pat => $out:expr) => {{
        let req = $req;
        let name = req.kind().as_str();
        match $self.request(req).await? {
            $pat => Ok($out),
            other => Err(SdkError::UnexpectedResponse { request: name, got: format!("{other:?}") }),
        }
    }};
}

impl Client {
    pub(crate) fn from_shared(shared: Arc<Shared>) -> Client {
        Client { shared }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// What the host said in the handshake (protocol, granted permissions, limits).
    pub fn welcome(&self) -> &Welcome {
        &self.shared.welcome
    }

    /// This module's configuration: its `config.toml` with the operator's
    /// `[modules.<name>]` on top, as hostd merged it at this start.
    pub fn config(&self) -> Result<toml::Table, SdkError> {
        self.shared.welcome.config_toml.parse::<toml::Table>().map_err(|e| SdkError::BadConfig(e.to_string()))
    }

    /// Events the host pushed that the module's inbox had no room for.
    pub fn dropped_events(&self) -> u64 {
        self.shared.dropped_events.load(Ordering::Relaxed)
    }

    /// Log records dropped because the queue to the host was full (the
    /// host reads a module's frames at its rate limit).
    pub fn dropped_logs(&self) -> u64 {
        self.shared.dropped_logs.load(Ordering::Relaxed)
    }

    /// Timer ticks dropped because the inbox was full.
    pub fn dropped_ticks(&self) -> u64 {
        self.shared.dropped_ticks.load(Ordering::Relaxed)
    }

    pub(crate) fn send_message(&self, msg: ModuleMessage) {
        match self.shared.out.try_send(msg) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(msg)) => {
                let out = self.shared.out.clone();
                tokio::spawn(async move {
                    let _ = out.send(msg).await;
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Send any request and wait for its response.
    pub async fn request(&self, request: Request) -> Result<Response, SdkError> {
        let rx = self.submit(request, |_| {}).await?;
        answer(rx).await
    }

    /// Queue `request` for sending (calls from one task leave in call
    /// order) and return the receiver of its answer; `on_id` runs with the
    /// request's id before it can be answered.
    pub(crate) async fn submit(&self, request: Request, on_id: impl FnOnce(u64)) -> Result<oneshot::Receiver<Reply>, SdkError> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(SdkError::Closed);
        }
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.shared.pending().insert(id, tx);
        on_id(id);
        if self.shared.out.send(ModuleMessage::Request { id, request }).await.is_err() {
            self.shared.complete(id, Err(ErrorBody::new(hostd_protocol::ErrorCode::Internal, "closed")));
            return Err(SdkError::Closed);
        }
        Ok(rx)
    }

    // ---- logging: fire and forget; dropped (and counted) when the queue is full.

    /// Needs no capability.
    pub fn log(&self, level: LogLevel, target: &str, message: &str, fields: &[(&str, &str)]) {
        let rec = LogRecord {
            level,
            target: target.to_string(),
            message: message.to_string(),
            fields: fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        if self.shared.out.try_send(ModuleMessage::Log(rec)).is_err() {
            self.shared.dropped_logs.fetch_add(1, Ordering::Relaxed);
        }
    }
    pub fn info(&self, message: &str) {
        self.log(LogLevel::Info, "module", message, &[]);
    }
    pub fn warn(&self, message: &str) {
        self.log(LogLevel::Warn, "module", message, &[]);
    }
    pub fn error(&self, message: &str) {
        self.log(LogLevel::Error, "module", message, &[]);
    }

    // ---- health and CLI

    /// Report this module's health (needs `report_metrics`); hostd
    /// publishes it as a HealthCheck event.
    ///
    /// Capability: `report_metrics`.
    pub async fn report_health(&self, status: HealthStatus, detail: &str) -> Result<(), SdkError> {
        expect!(self, Request::ReportHealth { status, detail: detail.into() }, Response::Ack => ())
    }
    /// Needs no capability.
    pub async fn register_cli_spec(&self, spec: CliSpec) -> Result<(), SdkError> {
        expect!(self, Request::RegisterCliSpec { spec }, Response::Ack => ())
    }

    // ---- chain

    /// Capability: `read_blockchain`.
    pub async fn get_block(&self, hash: Hash32) -> Result<Option<Vec<u8>>, SdkError> {
        expect!(self, Request::GetBlock { hash }, Response::Bytes(b) => b)
    }
    /// Capability: `read_blockchain`.
    pub async fn get_block_header(&self, hash: Hash32) -> Result<Option<Vec<u8>>, SdkError> {
        expect!(self, Request::GetBlockHeader { hash }, Response::Bytes(b) => b)
    }
    /// Capability: `read_blockchain`.
    pub async fn get_transaction(&self, txid: Hash32) -> Result<Option<Vec<u8>>, SdkError> {
        expect!(self, Request::GetTransaction { txid }, Response::Bytes(b) => b)
    }
    /// Capability: `read_blockchain`.
    pub async fn has_transaction(&self, txid: Hash32) -> Result<bool, SdkError> {
        expect!(self, Request::HasTransaction { txid }, Response::Bool(b) => b)
    }
    /// Capability: `read_utxo`.
    pub async fn get_utxo(&self, txid: Hash32, vout: u32) -> Result<Option<Utxo>, SdkError> {
        expect!(self, Request::GetUtxo { txid, vout }, Response::Utxo(u) => u)
    }
    /// Capability: `read_chain_state`.
    pub async fn get_chain_tip(&self) -> Result<(Hash32, u64), SdkError> {
        expect!(self, Request::GetChainTip, Response::ChainTip { hash, height } => (hash, height))
    }
    /// Capability: `read_chain_state`.
    pub async fn get_block_height(&self) -> Result<u64, SdkError> {
        expect!(self, Request::GetBlockHeight, Response::Count(n) => n)
    }
    /// Capability: `read_chain_state`.
    pub async fn get_chain_info(&self) -> Result<ChainInfo, SdkError> {
        expect!(self, Request::GetChainInfo, Response::ChainInfo(i) => i)
    }

    // ---- events

    /// Capability: `subscribe_events`.
    pub async fn subscribe_events(&self, types: Vec<EventType>) -> Result<(), SdkError> {
        expect!(self, Request::SubscribeEvents { types }, Response::Ack => ())
    }
    /// Capability: `subscribe_events`.
    pub async fn unsubscribe_events(&self, types: Vec<EventType>) -> Result<(), SdkError> {
        expect!(self, Request::UnsubscribeEvents { types }, Response::Ack => ())
    }
    /// Capability: `publish_events`.
    pub async fn publish_event(&self, event_type: EventType, data: Vec<u8>) -> Result<(), SdkError> {
        expect!(self, Request::PublishEvent { event_type, data }, Response::Ack => ())
    }

    // ---- mempool and network

    /// Capability: `send_transactions`.
    pub async fn send_transaction(&self, raw: Vec<u8>) -> Result<(), SdkError> {
        expect!(self, Request::SendTransaction { raw }, Response::Ack => ())
    }
    /// Capability: `read_mempool`.
    pub async fn get_mempool_transactions(&self) -> Result<Vec<Hash32>, SdkError> {
        expect!(self, Request::GetMempoolTransactions, Response::Txids(t) => t)
    }
    /// Capability: `read_mempool`.
    pub async fn get_mempool_transaction(&self, txid: Hash32) -> Result<Option<Vec<u8>>, SdkError> {
        expect!(self, Request::GetMempoolTransaction { txid }, Response::Bytes(b) => b)
    }
    /// Capability: `read_mempool`.
    pub async fn get_mempool_size(&self) -> Result<u64, SdkError> {
        expect!(self, Request::GetMempoolSize, Response::Count(n) => n)
    }
    /// Capability: `read_mempool`.
    pub async fn get_fee_estimate(&self, target_blocks: u32) -> Result<u64, SdkError> {
        expect!(self, Request::GetFeeEstimate { target_blocks }, Response::FeeRate { sat_per_kvb } => sat_per_kvb)
    }
    /// Capability: `read_network`.
    pub async fn get_network_stats(&self) -> Result<NetworkStats, SdkError> {
        expect!(self, Request::GetNetworkStats, Response::NetworkStats(s) => s)
    }
    /// Capability: `read_network`.
    pub async fn get_network_peers(&self) -> Result<Vec<PeerInfo>, SdkError> {
        expect!(self, Request::GetNetworkPeers, Response::Peers(p) => p)
    }
    /// Capability: `network_access`.
    pub async fn send_mesh_packet(&self, peer: Vec<u8>, payload: Vec<u8>) -> Result<(), SdkError> {
        expect!(self, Request::SendMeshPacket { peer, payload }, Response::Ack => ())
    }
    /// Capability: `read_lightning`.
    pub async fn get_lightning_node_url(&self) -> Result<String, SdkError> {
        expect!(self, Request::GetLightningNodeUrl, Response::Text(t) => t)
    }
    /// Capability: `read_lightning`.
    pub async fn get_lightning_info(&self) -> Result<String, SdkError> {
        expect!(self, Request::GetLightningInfo, Response::Text(t) => t)
    }
    /// Capability: `read_payment`.
    pub async fn get_payment_state(&self, payment_id: &str) -> Result<String, SdkError> {
        expect!(self, Request::GetPaymentState { payment_id: payment_id.into() }, Response::Text(t) => t)
    }

    // ---- storage (the module's own RocksDB trees, kept by hostd)

    /// Capability: `read_storage`.
    pub async fn storage_get(&self, tree: &str, key: &[u8]) -> Result<Option<Vec<u8>>, SdkError> {
        expect!(self, Request::StorageGet { tree: tree.into(), key: key.to_vec() }, Response::Bytes(b) => b)
    }
    /// Capability: `read_storage`.
    pub async fn storage_iter_prefix(&self, tree: &str, prefix: &[u8], limit: u32) -> Result<Vec<(Vec<u8>, Vec<u8>)>, SdkError> {
        expect!(self, Request::StorageIterPrefix { tree: tree.into(), prefix: prefix.to_vec(), limit }, Response::Entries(e) => e)
    }
    /// Returns once the write is durable.
    ///
    /// Capability: `write_storage`.
    pub async fn storage_put(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<(), SdkError> {
        expect!(self, Request::StoragePut { tree: tree.into(), key: key.to_vec(), value: value.to_vec() }, Response::Ack => ())
    }
    /// Capability: `write_storage`.
    pub async fn storage_delete(&self, tree: &str, key: &[u8]) -> Result<(), SdkError> {
        expect!(self, Request::StorageDelete { tree: tree.into(), key: key.to_vec() }, Response::Ack => ())
    }
    /// All or nothing, durable once acknowledged.
    ///
    /// Capability: `write_storage`.
    pub async fn storage_batch(&self, tree: &str, ops: Vec<BatchOp>) -> Result<(), SdkError> {
        expect!(self, Request::StorageBatch { tree: tree.into(), ops }, Response::Ack => ())
    }
    /// Capability: `manage_storage`.
    pub async fn storage_open_tree(&self, tree: &str) -> Result<(), SdkError> {
        expect!(self, Request::StorageOpenTree { tree: tree.into() }, Response::Ack => ())
    }
    /// Capability: `manage_storage`.
    pub async fn storage_drop_tree(&self, tree: &str) -> Result<(), SdkError> {
        expect!(self, Request::StorageDropTree { tree: tree.into() }, Response::Ack => ())
    }
    /// (used, limit) in bytes.
    ///
    /// Capability: `manage_storage`.
    pub async fn storage_quota(&self) -> Result<(u64, u64), SdkError> {
        expect!(self, Request::StorageQuota, Response::Quota { used_bytes, limit_bytes } => (used_bytes, limit_bytes))
    }

    // ---- files in the module's data directory, through the host

    /// Capability: `read_filesystem`.
    pub async fn fs_read(&self, path: &str, offset: u64, len: u32) -> Result<Vec<u8>, SdkError> {
        expect!(self, Request::FsRead { path: path.into(), offset, len }, Response::Bytes(b) => b.unwrap_or_default())
    }
    /// Capability: `write_filesystem`.
    pub async fn fs_write(&self, path: &str, data: &[u8], append: bool) -> Result<(), SdkError> {
        expect!(self, Request::FsWrite { path: path.into(), data: data.to_vec(), append }, Response::Ack => ())
    }
    /// Capability: `write_filesystem`.
    pub async fn fs_delete(&self, path: &str) -> Result<(), SdkError> {
        expect!(self, Request::FsDelete { path: path.into() }, Response::Ack => ())
    }
    /// Capability: `manage_filesystem`.
    pub async fn fs_mkdir(&self, path: &str) -> Result<(), SdkError> {
        expect!(self, Request::FsMkdir { path: path.into() }, Response::Ack => ())
    }

    // ---- RPC endpoints, timers, metrics

    /// Capability: `register_rpc_endpoint`.
    pub async fn register_rpc_endpoint(&self, method: &str, description: &str) -> Result<(), SdkError> {
        expect!(self, Request::RegisterRpcEndpoint { method: method.into(), description: description.into() }, Response::Ack => ())
    }
    /// Capability: `register_rpc_endpoint`.
    pub async fn unregister_rpc_endpoint(&self, method: &str) -> Result<(), SdkError> {
        expect!(self, Request::UnregisterRpcEndpoint { method: method.into() }, Response::Ack => ())
    }
    /// Capability: `manage_timers`.
    pub async fn timer_create(&self, interval_ms: u64, repeat: bool) -> Result<u64, SdkError> {
        expect!(self, Request::TimerCreate { interval_ms, repeat }, Response::TimerId(t) => t)
    }
    /// Capability: `manage_timers`.
    pub async fn timer_cancel(&self, timer_id: u64) -> Result<(), SdkError> {
        expect!(self, Request::TimerCancel { timer_id }, Response::Ack => ())
    }
    /// Capability: `manage_timers`.
    pub async fn schedule_task(&self, delay_ms: u64, task: &str) -> Result<u64, SdkError> {
        expect!(self, Request::ScheduleTask { delay_ms, task: task.into() }, Response::TimerId(t) => t)
    }
    /// Capability: `report_metrics`.
    pub async fn report_metric(&self, name: &str, value: f64, labels: &[(&str, &str)]) -> Result<(), SdkError> {
        let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        expect!(self, Request::ReportMetric { name: name.into(), value, labels }, Response::Ack => ())
    }
    /// Capability: `read_metrics`.
    pub async fn get_metrics(&self, module: Option<&str>) -> Result<Vec<MetricSample>, SdkError> {
        expect!(self, Request::GetMetrics { module: module.map(str::to_string) }, Response::Metrics(m) => m)
    }

    // ---- modules

    /// Capability: `discover_modules`.
    pub async fn discover_modules(&self) -> Result<Vec<ModuleInfo>, SdkError> {
        expect!(self, Request::DiscoverModules, Response::Modules(m) => m)
    }
    /// Capability: `discover_modules`.
    pub async fn get_module_info(&self, name: &str) -> Result<ModuleInfo, SdkError> {
        expect!(self, Request::GetModuleInfo { name: name.into() }, Response::Module(m) => m)
    }
    /// Capability: `call_module`.
    pub async fn call_module(&self, module: &str, method: &str, params: Vec<u8>) -> Result<Vec<u8>, SdkError> {
        expect!(self, Request::CallModule { module: module.into(), method: method.into(), params }, Response::CallResult(r) => r)
    }
    /// Capability: `register_module_api`.
    pub async fn register_module_api(&self, methods: &[&str]) -> Result<(), SdkError> {
        let methods = methods.iter().map(|m| m.to_string()).collect();
        expect!(self, Request::RegisterModuleApi { methods }, Response::Ack => ())
    }
    /// Capability: `register_module_api`.
    pub async fn unregister_module_api(&self) -> Result<(), SdkError> {
        expect!(self, Request::UnregisterModuleApi, Response::Ack => ())
    }

    // ---- blocks

    /// Capability: `submit_block`.
    pub async fn submit_block(&self, raw: Vec<u8>) -> Result<(), SdkError> {
        expect!(self, Request::SubmitBlock { raw }, Response::Ack => ())
    }
    /// Capability: `queue_inbound_block`.
    pub async fn queue_inbound_block(&self, raw: Vec<u8>) -> Result<(), SdkError> {
        expect!(self, Request::QueueInboundBlock { raw }, Response::Ack => ())
    }
}
