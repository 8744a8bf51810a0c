//! The API hub: every request is checked against the permission table
//! (`crate::permissions::access`) before its handler runs; a denied or
//! failed request is an error response and the connection stays up. The
//! handlers live by request family: `chain`, `storage`, `files`,
//! `registry` (RPC endpoints, module APIs, CLI specs, discovery, calls),
//! `timers`, `metrics`, `events`.

mod chain;
mod events;
mod files;
mod mesh;
mod metrics;
mod registry;
mod storage;
mod timers;

pub use registry::module_info;

/// Metrics `module` keeps, for `hostd status`.
pub fn metric_count(host: &Host, module: &str) -> usize {
    metrics::count(&super::lock(&host.metrics), module)
}

use super::conn::ConnCtx;
use super::Host;
use crate::permissions::access;
use hostd_protocol::{ErrorBody, ErrorCode, Request, RequestKind, Response};
use std::sync::Arc;

fn err(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
    ErrorBody::new(code, message)
}

/// Run `work` on the shared blocking pool, within the module's share of it
/// (`daemon.max_blocking_per_module`): one module's slow disk work, or a
/// flood of it, cannot take every pool thread from the others.
pub async fn on_pool<R: Send + 'static>(host: &Host, module: &str, work: impl FnOnce() -> R + Send + 'static) -> Result<R, ErrorBody> {
    let slots = host.with_module(module, |s| s.pool.clone()).ok_or_else(|| err(ErrorCode::Internal, format!("module {module} is not loaded")))?;
    let _slot = slots.acquire_owned().await.map_err(|_| err(ErrorCode::Internal, "the module is being unloaded"))?;
    tokio::task::spawn_blocking(work).await.map_err(|e| err(ErrorCode::Internal, e.to_string()))
}

/// Requests that may block (disk, other modules) run on their own task so
/// the module's other requests keep flowing; the table says which.
pub fn is_blocking(kind: RequestKind) -> bool {
    access(kind).blocking
}

/// Answer request `id`: `Ok(None)` when its answer comes later from
/// whoever took it on (a mesh frame, once its link's socket took it).
pub async fn handle(host: &Arc<Host>, ctx: &Arc<ConnCtx>, id: u64, req: Request) -> Result<Option<Response>, ErrorBody> {
    let module = ctx.module.as_str();
    let kind = req.kind();
    if let Some(p) = access(kind).permission {
        let message = || format!("{kind} needs the {p} permission, which module {module} does not have");
        let granted = host
            .with_module(module, |s| {
                let granted = s.permissions.contains(&p);
                if !granted {
                    s.record_denial(&message());
                }
                granted
            })
            .unwrap_or(false);
        if !granted {
            return Err(err(ErrorCode::PermissionDenied, message()));
        }
    }
    use Request as Q;
    let answer = match req {
        Q::MeshSend { link, data } => return mesh::send(ctx, id, link, data).map(|()| None),
        Q::MeshConnect { addr } => mesh::connect(ctx, &addr).await,
        Q::MeshClose { link } => mesh::close(ctx, link),
        Q::MeshLinks => mesh::links(ctx),
        Q::SendMeshPacket { .. } => Err(err(
            ErrorCode::Unsupported,
            "SendMeshPacket names no link: hostd's mesh transport is links (MeshConnect, then MeshSend; protocol 2)",
        )),
        Q::ReportHealth { status, detail } => events::report_health(host, module, status, detail),
        Q::SubscribeEvents { types } => events::subscribe(host, module, &types),
        Q::UnsubscribeEvents { types } => events::unsubscribe(host, module, &types),
        Q::PublishEvent { event_type, data } => events::publish(host, module, event_type, data),
        Q::GetBlock { .. }
        | Q::GetBlockHeader { .. }
        | Q::GetTransaction { .. }
        | Q::HasTransaction { .. }
        | Q::GetUtxo { .. }
        | Q::GetChainTip
        | Q::GetBlockHeight
        | Q::GetChainInfo
        | Q::SendTransaction { .. }
        | Q::GetMempoolTransactions
        | Q::GetMempoolTransaction { .. }
        | Q::GetMempoolSize
        | Q::GetFeeEstimate { .. }
        | Q::GetNetworkStats
        | Q::GetNetworkPeers
        | Q::GetLightningNodeUrl
        | Q::GetLightningInfo
        | Q::GetPaymentState { .. }
        | Q::SubmitBlock { .. }
        | Q::QueueInboundBlock { .. } => chain::query(host, module, &req).await,
        Q::StorageGet { tree, key } => storage::run(host, module, move |s| s.get(&tree, &key).map(Response::Bytes)).await,
        Q::StorageIterPrefix { tree, prefix, limit } => {
            let limit = limit.min(host.config.daemon.max_scan_entries) as usize;
            let max_bytes = storage::scan_budget(host.config.daemon.max_frame_bytes);
            storage::run(host, module, move |s| s.iter_prefix(&tree, &prefix, limit, max_bytes).map(Response::Entries)).await
        }
        Q::StoragePut { tree, key, value } => storage::run(host, module, move |s| s.put(&tree, &key, &value).map(|_| Response::Ack)).await,
        Q::StorageDelete { tree, key } => storage::run(host, module, move |s| s.delete(&tree, &key).map(|_| Response::Ack)).await,
        Q::StorageBatch { tree, ops } => storage::run(host, module, move |s| s.batch(&tree, &ops).map(|_| Response::Ack)).await,
        Q::StorageOpenTree { tree } => storage::run(host, module, move |s| s.open_tree(&tree).map(|_| Response::Ack)).await,
        Q::StorageDropTree { tree } => storage::run(host, module, move |s| s.drop_tree(&tree).map(|_| Response::Ack)).await,
        Q::StorageQuota => {
            storage::run(host, module, |s| {
                let limit_bytes = s.quota().1;
                Ok(Response::Quota { used_bytes: s.used_for_module(), limit_bytes })
            })
            .await
        }
        Q::FsRead { path, offset, len } => files::run(host, module, move |f| f.read(&path, offset, len)).await,
        Q::FsWrite { path, data, append } => files::run(host, module, move |f| f.write(&path, &data, append)).await,
        Q::FsDelete { path } => files::run(host, module, move |f| f.delete(&path)).await,
        Q::FsMkdir { path } => files::run(host, module, move |f| f.mkdir(&path)).await,
        Q::RegisterCliSpec { spec } => registry::cli_spec(host, module, spec),
        Q::RegisterRpcEndpoint { method, description } => registry::register_rpc(host, module, method, description),
        Q::UnregisterRpcEndpoint { method } => registry::unregister_rpc(host, module, &method),
        Q::RegisterModuleApi { methods } => registry::register_api(host, module, methods),
        Q::UnregisterModuleApi => registry::unregister_api(host, module),
        Q::DiscoverModules => registry::discover(host),
        Q::GetModuleInfo { name } => registry::info(host, &name),
        Q::CallModule { module: target, method, params } => registry::call(host, module, &target, method, params).await,
        Q::TimerCreate { interval_ms, repeat } => timers::start(host, ctx, interval_ms, repeat, None),
        Q::ScheduleTask { delay_ms, task } => timers::start(host, ctx, delay_ms, false, Some(task)),
        Q::TimerCancel { timer_id } => timers::cancel(ctx, timer_id),
        Q::ReportMetric { name, value, labels } => metrics::report(host, module, name, value, labels),
        Q::GetMetrics { module: filter } => metrics::get(host, filter),
    };
    answer.map(Some)
}
