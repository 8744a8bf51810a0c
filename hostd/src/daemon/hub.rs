//! The API hub: every request is checked against the permission table
//! before its handler runs; a denied or failed request is an error
//! response and the connection stays up.

use super::conn::ConnCtx;
use super::storage::StorageError;
use super::Host;
use crate::permissions::required_permission;
use hostd_protocol::{
    ErrorBody, ErrorCode, Event, EventPayload, HealthStatus, HostMessage, Invocation, MetricSample, ModuleInfo, Origin,
    Request, Response,
};
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Timers and scheduled tasks one module may have at once.
const MAX_TIMERS: usize = 64;
/// Shortest timer interval: a module cannot turn timers into a busy loop.
const MIN_TIMER_MS: u64 = 10;
/// Most entries one prefix scan returns.
const MAX_SCAN: u32 = 10_000;
/// Metrics one module may keep.
const MAX_METRICS: usize = 1000;

fn err(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
    ErrorBody::new(code, message)
}

/// Requests that may block (disk, other modules): run on their own task so
/// the module's other requests keep flowing. (The list repeats arms of
/// `handle` on purpose: `handle`'s match stays exhaustive, so a new request
/// kind cannot slip into a handler unnoticed.)
pub fn is_blocking(req: &Request) -> bool {
    use Request as Q;
    matches!(
        req,
        Q::StorageGet { .. }
            | Q::StorageIterPrefix { .. }
            | Q::StoragePut { .. }
            | Q::StorageDelete { .. }
            | Q::StorageBatch { .. }
            | Q::StorageOpenTree { .. }
            | Q::StorageDropTree { .. }
            | Q::FsRead { .. }
            | Q::FsWrite { .. }
            | Q::FsDelete { .. }
            | Q::FsMkdir { .. }
            | Q::CallModule { .. }
    )
}

pub async fn handle(host: &Arc<Host>, ctx: &Arc<ConnCtx>, req: Request) -> Result<Response, ErrorBody> {
    let module = ctx.module.as_str();
    let kind = req.kind();
    if let Some(p) = required_permission(kind) {
        let granted = host.with_slot(module, |s| s.permissions.contains(&p)).unwrap_or(false);
        if !granted {
            return Err(err(ErrorCode::PermissionDenied, format!("{kind} needs the {p} permission, which module {module} does not have")));
        }
    }
    use Request as Q;
    match req {
        Q::ReportHealth { status, detail } => {
            host.with_slot(module, |s| s.health = Some((status, detail.clone())));
            host.bus.publish(Event {
                event_type: hostd_protocol::EventType::HealthCheck,
                publisher: None,
                payload: EventPayload::HealthCheck { module_name: module.into(), healthy: status == HealthStatus::Healthy, detail },
            });
            Ok(Response::Ack)
        }
        Q::RegisterCliSpec { spec } => {
            for c in &spec.commands {
                crate::manifest::check_name(&c.name).map_err(|m| err(ErrorCode::InvalidArgument, format!("CLI command {:?}: {m}", c.name)))?;
            }
            host.with_slot(module, |s| s.cli = Some(spec));
            Ok(Response::Ack)
        }
        Q::SubscribeEvents { types } => {
            host.bus.subscribe(module, &types);
            Ok(Response::Ack)
        }
        Q::UnsubscribeEvents { types } => {
            host.bus.unsubscribe(module, &types);
            Ok(Response::Ack)
        }
        Q::PublishEvent { event_type, data } => {
            if event_type.origin() != Origin::Module {
                return Err(err(ErrorCode::Forbidden, format!("{event_type} events are published only by hostd")));
            }
            host.bus.publish(Event { event_type, publisher: Some(module.into()), payload: EventPayload::Data(data) });
            Ok(Response::Ack)
        }
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
        | Q::SendMeshPacket { .. }
        | Q::GetLightningNodeUrl
        | Q::GetLightningInfo
        | Q::GetPaymentState { .. }
        | Q::SubmitBlock { .. }
        | Q::QueueInboundBlock { .. } => host.node.query(&req),
        Q::StorageGet { .. }
        | Q::StorageIterPrefix { .. }
        | Q::StoragePut { .. }
        | Q::StorageDelete { .. }
        | Q::StorageBatch { .. }
        | Q::StorageOpenTree { .. }
        | Q::StorageDropTree { .. }
        | Q::StorageQuota => storage(host, module, req).await,
        Q::FsRead { .. } | Q::FsWrite { .. } | Q::FsDelete { .. } | Q::FsMkdir { .. } => {
            let dir = host.config.module_data_dir(module).join("files");
            let uid = super::lock(&host.ids).peek(module, &host.config).ok();
            let perms_manage = host
                .with_slot(module, |s| s.permissions.contains(&crate::permissions::Permission::ManageFilesystem))
                .unwrap_or(false);
            tokio::task::spawn_blocking(move || files(&dir, uid, perms_manage, req))
                .await
                .map_err(|e| err(ErrorCode::Internal, e.to_string()))?
        }
        Q::RegisterRpcEndpoint { method, description } => {
            crate::manifest::check_name(&method).map_err(|m| err(ErrorCode::InvalidArgument, format!("RPC method {method:?}: {m}")))?;
            // One owner per method: hostd routes a call by its name alone.
            let mut slots = host.slots();
            if let Some(owner) = slots.values().find(|s| s.name() != module && s.rpc.contains_key(&method)) {
                return Err(err(ErrorCode::AlreadyExists, format!("RPC method {method} is registered by module {}", owner.name())));
            }
            if let Some(s) = slots.get_mut(module) {
                s.rpc.insert(method, description);
            }
            Ok(Response::Ack)
        }
        Q::UnregisterRpcEndpoint { method } => {
            host.with_slot(module, |s| s.rpc.remove(&method));
            Ok(Response::Ack)
        }
        Q::TimerCreate { interval_ms, repeat } => start_timer(ctx, interval_ms, repeat, None),
        Q::ScheduleTask { delay_ms, task } => start_timer(ctx, delay_ms, false, Some(task)),
        Q::TimerCancel { timer_id } => match super::lock(&ctx.timers).remove(&timer_id) {
            Some(t) => {
                t.abort();
                Ok(Response::Ack)
            }
            None => Err(err(ErrorCode::NotFound, format!("no timer {timer_id}"))),
        },
        Q::ReportMetric { name, value, labels } => {
            let mut m = super::lock(&host.metrics);
            let key = (module.to_string(), name);
            if !m.contains_key(&key) && m.keys().filter(|(owner, _)| owner == module).count() >= MAX_METRICS {
                return Err(err(ErrorCode::QuotaExceeded, format!("at most {MAX_METRICS} metrics per module")));
            }
            m.insert(key, (value, labels));
            Ok(Response::Ack)
        }
        Q::GetMetrics { module: filter } => {
            let m = super::lock(&host.metrics);
            let samples = m
                .iter()
                .filter(|((owner, _), _)| filter.as_ref().is_none_or(|f| f == owner))
                .map(|((owner, name), (value, labels))| MetricSample {
                    module: owner.clone(),
                    name: name.clone(),
                    value: *value,
                    labels: labels.clone(),
                })
                .collect();
            Ok(Response::Metrics(samples))
        }
        Q::DiscoverModules => Ok(Response::Modules(host.slots().values().map(module_info).collect())),
        Q::GetModuleInfo { name } => host
            .with_slot(&name, |s| module_info(s))
            .map(Response::Module)
            .ok_or_else(|| err(ErrorCode::NotFound, format!("no module {name:?} is loaded"))),
        Q::RegisterModuleApi { methods } => {
            for m in &methods {
                crate::manifest::check_name(m).map_err(|e| err(ErrorCode::InvalidArgument, format!("API method {m:?}: {e}")))?;
            }
            host.with_slot(module, |s| {
                for m in methods {
                    if !s.api.contains(&m) {
                        s.api.push(m);
                    }
                }
            });
            Ok(Response::Ack)
        }
        Q::UnregisterModuleApi => {
            host.with_slot(module, |s| s.api.clear());
            Ok(Response::Ack)
        }
        Q::CallModule { module: target, method, params } => {
            let (conn, has) = host
                .with_slot(&target, |s| (s.conn.clone(), s.api.contains(&method)))
                .ok_or_else(|| err(ErrorCode::NotFound, format!("no module {target:?} is loaded")))?;
            let conn = conn.ok_or_else(|| err(ErrorCode::ModuleUnavailable, format!("module {target} is not running")))?;
            if !has {
                return Err(err(ErrorCode::NotFound, format!("module {target} has not registered API method {method:?}")));
            }
            let timeout = Duration::from_millis(u64::from(host.config.daemon.call_timeout_ms));
            conn.invoke(Invocation::Api { caller: module.into(), method, params }, timeout).await.map(Response::CallResult)
        }
    }
}

pub fn module_info(s: &super::Slot) -> ModuleInfo {
    ModuleInfo {
        name: s.name().to_string(),
        version: s.module.manifest.version.to_string(),
        state: serde_json::to_value(s.state).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
        permissions: s.permissions.iter().map(|p| p.as_str().to_string()).collect(),
        api: s.api.clone(),
    }
}

fn start_timer(ctx: &Arc<ConnCtx>, ms: u64, repeat: bool, task: Option<String>) -> Result<Response, ErrorBody> {
    if ms < MIN_TIMER_MS {
        return Err(err(ErrorCode::InvalidArgument, format!("timers fire at most every {MIN_TIMER_MS} ms")));
    }
    let mut timers = super::lock(&ctx.timers);
    timers.retain(|_, t| !t.is_finished());
    if timers.len() >= MAX_TIMERS {
        return Err(err(ErrorCode::QuotaExceeded, format!("at most {MAX_TIMERS} timers per module")));
    }
    let id = ctx.next_timer.fetch_add(1, Ordering::Relaxed);
    let handle = ctx.handle.clone();
    let join = tokio::spawn(async move {
        let period = Duration::from_millis(ms);
        let mut next = tokio::time::Instant::now() + period;
        loop {
            tokio::time::sleep_until(next).await;
            // A tick the module has no room for is skipped, not queued.
            let _ = handle.try_send(&HostMessage::TimerFired { timer_id: id, task: task.clone() });
            if !repeat {
                return;
            }
            next += period;
        }
    });
    timers.insert(id, join.abort_handle());
    Ok(Response::TimerId(id))
}

fn storage_error(e: StorageError) -> ErrorBody {
    let code = match &e {
        StorageError::BadTreeName(_) | StorageError::DropDefault => ErrorCode::InvalidArgument,
        StorageError::NoSuchTree(_) => ErrorCode::NotFound,
        StorageError::QuotaExceeded { .. } => ErrorCode::QuotaExceeded,
        StorageError::Db { .. } => ErrorCode::Internal,
    };
    if code == ErrorCode::Internal {
        tracing::error!("{e}");
    }
    err(code, e.to_string())
}

async fn storage(host: &Arc<Host>, module: &str, req: Request) -> Result<Response, ErrorBody> {
    let store = host
        .with_slot(module, |s| s.store.clone())
        .flatten()
        .ok_or_else(|| err(ErrorCode::Internal, format!("storage of module {module} is not open")))?;
    tokio::task::spawn_blocking(move || {
        use Request as Q;
        match req {
            Q::StorageGet { tree, key } => store.get(&tree, &key).map(Response::Bytes),
            Q::StorageIterPrefix { tree, prefix, limit } => {
                store.iter_prefix(&tree, &prefix, limit.min(MAX_SCAN) as usize).map(Response::Entries)
            }
            Q::StoragePut { tree, key, value } => store.put(&tree, &key, &value).map(|_| Response::Ack),
            Q::StorageDelete { tree, key } => store.delete(&tree, &key).map(|_| Response::Ack),
            Q::StorageBatch { tree, ops } => store.batch(&tree, &ops).map(|_| Response::Ack),
            Q::StorageOpenTree { tree } => store.open_tree(&tree).map(|_| Response::Ack),
            Q::StorageDropTree { tree } => store.drop_tree(&tree).map(|_| Response::Ack),
            Q::StorageQuota => {
                let (used_bytes, limit_bytes) = store.quota();
                Ok(Response::Quota { used_bytes, limit_bytes })
            }
            other => return Err(err(ErrorCode::Internal, format!("{} is not a storage request", other.kind()))),
        }
        .map_err(storage_error)
    })
    .await
    .map_err(|e| err(ErrorCode::Internal, e.to_string()))?
}

/// File requests, resolved beneath the module's `files/` directory. Files
/// the host creates belong to the module's uid so the sandbox can use them.
fn files(dir: &std::path::Path, uid: Option<u32>, may_manage: bool, req: Request) -> Result<Response, ErrorBody> {
    use crate::beneath;
    let io = |what: &str, path: &str, e: std::io::Error| {
        let code = match e.raw_os_error() {
            Some(libc::ENOENT) => ErrorCode::NotFound,
            Some(libc::EXDEV | libc::ELOOP | libc::EINVAL) => ErrorCode::InvalidArgument,
            Some(libc::EEXIST) => ErrorCode::AlreadyExists,
            Some(libc::EACCES | libc::EPERM) => ErrorCode::PermissionDenied,
            Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG) => ErrorCode::QuotaExceeded,
            _ => ErrorCode::Internal,
        };
        let why = if e.raw_os_error() == Some(libc::EXDEV) { "resolves outside the module's data directory".to_string() } else { e.to_string() };
        err(code, format!("{what} {path:?}: {why}"))
    };
    let root = std::fs::File::open(dir).map_err(|e| io("open data directory", &dir.display().to_string(), e))?;
    // What hostd creates for a module becomes the module's, group hostd
    // (inherited from the setgid files/), group-writable so later requests
    // from the module through hostd can still change it.
    let give = |f: &std::fs::File, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        if let Some(id) = uid {
            let _ = std::os::unix::fs::fchown(f, Some(id), None);
        }
        let _ = f.set_permissions(std::fs::Permissions::from_mode(mode));
    };
    use Request as Q;
    match req {
        Q::FsRead { path, offset, len } => {
            let f = beneath::open(&root, &path, libc::O_RDONLY, 0).map_err(|e| io("read", &path, e))?;
            let mut buf = vec![0u8; len.min(1 << 20) as usize];
            let n = f.read_at(&mut buf, offset).map_err(|e| io("read", &path, e))?;
            buf.truncate(n);
            Ok(Response::Bytes(Some(buf)))
        }
        Q::FsWrite { path, data, append } => {
            let mode = if append { libc::O_APPEND } else { libc::O_TRUNC };
            let f = beneath::open(&root, &path, libc::O_WRONLY | libc::O_CREAT | libc::O_NOFOLLOW | mode, 0o640)
                .map_err(|e| io("write", &path, e))?;
            give(&f, 0o660);
            f.write_all_at(&data, if append { f.metadata().map(|m| m.len()).unwrap_or(0) } else { 0 })
                .and_then(|_| f.sync_data())
                .map_err(|e| io("write", &path, e))?;
            Ok(Response::Ack)
        }
        Q::FsDelete { path } => {
            let (parent, name) = beneath::parent_and_name(&root, &path).map_err(|e| io("delete", &path, e))?;
            let cname = beneath::cstr(name).map_err(|e| io("delete", &path, e))?;
            use std::os::fd::AsRawFd;
            // SAFETY: unlinkat on a directory fd we own and a NUL-terminated name.
            if unsafe { libc::unlinkat(parent.as_raw_fd(), cname.as_ptr(), 0) } == 0 {
                return Ok(Response::Ack);
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EISDIR) && may_manage {
                // SAFETY: as above, removing an (empty) directory.
                if unsafe { libc::unlinkat(parent.as_raw_fd(), cname.as_ptr(), libc::AT_REMOVEDIR) } == 0 {
                    return Ok(Response::Ack);
                }
                return Err(io("delete", &path, std::io::Error::last_os_error()));
            }
            if e.raw_os_error() == Some(libc::EISDIR) {
                return Err(err(ErrorCode::PermissionDenied, format!("{path:?} is a directory; removing directories needs manage_filesystem")));
            }
            Err(io("delete", &path, e))
        }
        Q::FsMkdir { path } => {
            let (parent, name) = beneath::parent_and_name(&root, &path).map_err(|e| io("mkdir", &path, e))?;
            let cname = beneath::cstr(name).map_err(|e| io("mkdir", &path, e))?;
            use std::os::fd::AsRawFd;
            // SAFETY: mkdirat on a directory fd we own and a NUL-terminated name.
            if unsafe { libc::mkdirat(parent.as_raw_fd(), cname.as_ptr(), 0o750) } != 0 {
                return Err(io("mkdir", &path, std::io::Error::last_os_error()));
            }
            let made = beneath::open(&root, &path, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)
                .map_err(|e| io("mkdir", &path, e))?;
            give(&made, 0o2770);
            Ok(Response::Ack)
        }
        other => Err(err(ErrorCode::Internal, format!("{} is not a file request", other.kind()))),
    }
}
