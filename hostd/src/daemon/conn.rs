//! One module connection: handshake, then a reader loop dispatching
//! requests to the hub and a writer task that sends responses, invocations
//! and events. Everything toward the module is bounded, each in its own
//! queue so one kind cannot crowd out another: responses (`max_in_flight` +
//! slack), calls made *to* the module by others (`max_pending_invocations`;
//! beyond it callers get Busy, and nobody is blamed for someone else's
//! flood), and events (`[daemon] event_queue_len`, end to end). A module that stops
//! reading loses events (counted) and, once its own response queue is full,
//! its connection.

pub use super::conn_handle::ConnHandle;
use super::limit::{LineBudget, TokenBucket};
use super::{hub, lock, Host};
use hostd_protocol::connection::{FrameReader, FrameWriter, ReadError};
use hostd_protocol::{
    self as proto, negotiate, CrashReason, ErrorBody, ErrorCode, HostMessage, LogLevel, ModuleMessage, Welcome,
    MESH_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
};
use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

/// Why a connection ended.
#[derive(Debug)]
pub enum ConnEnd {
    /// EOF: the module closed it (usually by exiting).
    Closed,
    /// hostd closed it; the module is faulty.
    Violation(CrashReason),
}

fn violation(detail: impl Into<String>) -> ConnEnd {
    ConnEnd::Violation(CrashReason::ProtocolViolation { detail: detail.into() })
}

/// Per-connection facts the hub needs.
pub struct ConnCtx {
    pub module: String,
    pub handle: Arc<ConnHandle>,
    pub requests: Arc<super::request_stats::RequestStats>,
    pub timers: Mutex<HashMap<u64, tokio::task::AbortHandle>>,
    pub next_timer: AtomicU64,
    pub protocol: u32,
    /// The module's mesh links (protocol 2 and `network_access`).
    pub mesh: Option<Arc<super::mesh::ModuleMesh>>,
}

/// Serve one module connection until it ends. `module` is the identity
/// hostd gave this socket; the handshake must name it.
pub async fn serve(host: Arc<Host>, module: String, version: String, stream: UnixStream) -> ConnEnd {
    let d = &host.config.daemon;
    let max_frame = d.max_frame_bytes;
    // Valid while either half lives; the writer holds one.
    let socket = stream.as_raw_fd();
    let (rd, wr) = stream.into_split();
    let mut rd = FrameReader::new(rd, max_frame);
    let mut wr = FrameWriter::new(wr, max_frame);

    // ---- handshake
    let hello = tokio::time::timeout(Duration::from_millis(u64::from(d.handshake_timeout_ms)), rd.next::<ModuleMessage>()).await;
    let hello = match hello {
        Err(_) => return violation("no handshake within the timeout"),
        Ok(Err(e)) => return violation(format!("bad handshake frame: {e}")),
        Ok(Ok(None)) => return violation("closed before the handshake"),
        Ok(Ok(Some(ModuleMessage::Hello(h)))) => h,
        Ok(Ok(Some(_))) => return violation("first message was not a handshake"),
    };
    if hello.name != module {
        return refuse(
            &mut wr,
            ErrorCode::IdentityMismatch,
            format!("handshake names module {:?} but this connection belongs to {module:?}", hello.name),
        )
        .await;
    }
    let Some(protocol) = negotiate((MIN_PROTOCOL_VERSION, PROTOCOL_VERSION), (hello.protocol_min, hello.protocol_max)) else {
        return refuse(
            &mut wr,
            ErrorCode::VersionMismatch,
            format!(
                "module speaks protocol {}..={}, hostd speaks {MIN_PROTOCOL_VERSION}..={PROTOCOL_VERSION}",
                hello.protocol_min, hello.protocol_max
            ),
        )
        .await;
    };
    let (granted, config_toml, networked, listen) = host
        .with_module(&module, |s| {
            let granted: Vec<String> = s.permissions.iter().map(|p| p.as_str().to_string()).collect();
            let networked = s.permissions.contains(&crate::permissions::Permission::NetworkAccess);
            (granted, toml::to_string(&s.module.config).unwrap_or_default(), networked, super::mesh::listen_addr(&s.module.config))
        })
        .unwrap_or_default();
    let welcome = HostMessage::Welcome(Welcome {
        protocol,
        module: module.clone(),
        host_version: env!("CARGO_PKG_VERSION").to_string(),
        granted,
        max_frame,
        max_in_flight: d.max_in_flight,
        config_toml,
    });
    if let Err(e) = wr.push(&welcome) {
        return violation(format!("welcome does not encode: {e}"));
    }
    if wr.flush().await.is_err() {
        return ConnEnd::Closed;
    }

    // ---- live connection
    let (ctrl_tx, ctrl_rx) = mpsc::channel::<Vec<u8>>(d.max_in_flight as usize + 64);
    let (invoke_tx, invoke_rx) = mpsc::channel::<Vec<u8>>(d.max_pending_invocations as usize);
    let handle = Arc::new(ConnHandle {
        ctrl: ctrl_tx,
        invocations: invoke_tx,
        max_pending: d.max_pending_invocations as usize,
        pending: Mutex::new(HashMap::new()),
        next_invoke: AtomicU64::new(1),
        max_frame,
        in_flight: AtomicU32::new(0),
        throttled_us: AtomicU64::new(0),
        protocol,
    });
    let (mesh_tx, mesh_rx) = mpsc::channel::<super::mesh::MeshOut>(super::mesh::MODULE_QUEUE_FRAMES);
    let mesh = match (networked, protocol >= MESH_PROTOCOL_VERSION) {
        (true, true) => Some(host.mesh.attach(&module, handle.clone(), mesh_tx, listen)),
        (true, false) => {
            let why = format!("module speaks protocol {protocol}; mesh links need {MESH_PROTOCOL_VERSION}: no links, no listener");
            tracing::warn!(module = %module, "{why}");
            host.with_module(&module, |s| s.note(why));
            None
        }
        (false, _) => None,
    };
    let events = host.bus.attach(&module, &version);
    host.with_module(&module, |s| {
        s.conn = Some(handle.clone());
        s.mesh = mesh.clone();
        s.handshaken = true;
    });
    tracing::info!(module = %module, protocol, "module handshaken");
    let queues = super::conn_writer::Queues { ctrl: ctrl_rx, invocations: invoke_rx, events, mesh: mesh_rx };
    let writer = tokio::spawn(super::conn_writer::write_loop(wr, socket, queues, d.events_per_write as usize));
    let announce = tokio::spawn({
        let (host, module) = (host.clone(), module.clone());
        let after = Duration::from_millis(u64::from(d.announce_after_ms));
        async move {
            tokio::time::sleep(after).await;
            host.bus.announce(&module);
        }
    });
    let ctx = Arc::new(ConnCtx {
        module: module.clone(),
        handle: handle.clone(),
        requests: host.with_module(&module, |s| s.requests.clone()).unwrap_or_default(),
        timers: Mutex::new(HashMap::new()),
        next_timer: AtomicU64::new(1),
        protocol,
        mesh: mesh.clone(),
    });
    let mut log_budget = LineBudget::new(d.output_lines_per_sec);
    let end = read_loop(&host, &ctx, &mut rd, &mut log_budget).await;
    report_suppressed(&host, &module, log_budget.take_suppressed());

    // ---- teardown
    if let Some(m) = &mesh {
        m.shutdown();
    }
    writer.abort();
    announce.abort();
    host.bus.detach(&module);
    for (_, t) in lock(&ctx.timers).drain() {
        t.abort();
    }
    lock(&handle.pending).clear();
    host.with_module(&module, |s| {
        if s.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, &handle)) {
            s.conn = None;
            s.mesh = None;
            s.api.clear();
            s.rpc.clear();
        }
    });
    end
}

async fn refuse(wr: &mut FrameWriter<OwnedWriteHalf>, code: ErrorCode, message: String) -> ConnEnd {
    let _ = wr.send(&HostMessage::Refused(ErrorBody::new(code, message.clone()))).await;
    violation(message)
}

async fn read_loop(host: &Arc<Host>, ctx: &Arc<ConnCtx>, rd: &mut FrameReader<OwnedReadHalf>, log_budget: &mut LineBudget) -> ConnEnd {
    let d = &host.config.daemon;
    let limits = host.config.limits_for(&ctx.module);
    let mut limiter = TokenBucket::new(limits.requests_per_sec, limits.request_burst);
    let max_in_flight = d.max_in_flight;
    loop {
        // One read can hold thousands of requests: give the runtime back
        // every so often so writers (this module's and others') and other
        // modules' readers are not starved by one busy module.
        tokio::task::coop::consume_budget().await;
        let msg = match rd.next::<ModuleMessage>().await {
            Ok(Some(m)) => m,
            Ok(None) => return ConnEnd::Closed,
            Err(ReadError::Io(e)) => return violation(format!("read error: {e}")),
            Err(e @ ReadError::Truncated { .. }) => return violation(e.to_string()),
            Err(ReadError::Frame(e)) => return violation(format!("bad frame: {e}")),
        };
        // Past its rate, a module's requests and log records wait in its
        // socket: hostd reads on at the rate, the module's sends block, and
        // flooding costs hostd no more than sending at the rate.
        // Mesh frames have their own rates, per module and per link.
        let rated = match &msg {
            ModuleMessage::Request { request, .. } => !matches!(request, proto::Request::MeshSend { .. }),
            ModuleMessage::Log(_) => true,
            _ => false,
        };
        if rated {
            if let Some(wait) = limiter.reserve() {
                ctx.handle.throttled_us.fetch_add(wait.as_micros() as u64, Ordering::Relaxed);
                tokio::time::sleep(wait).await;
            }
        }
        match msg {
            ModuleMessage::Hello(_) => return violation("second handshake on a live connection"),
            ModuleMessage::Log(rec) => {
                let admit = log_budget.admit();
                report_suppressed(host, &ctx.module, admit.closed_window_suppressed);
                if admit.keep {
                    log_record(host, &ctx.module, rec);
                }
            }
            ModuleMessage::InvocationResult { id, result } => ctx.handle.complete(id, result),
            ModuleMessage::Request { id, request } => {
                if ctx.handle.in_flight.load(Ordering::Relaxed) >= max_in_flight {
                    let err = ErrorBody::new(ErrorCode::TooManyInFlight, format!("more than {max_in_flight} requests in flight"));
                    if !ctx.handle.try_send(&HostMessage::Response { id, result: Err(err) }) {
                        return violation("request flood: the module does not read its responses");
                    }
                    continue;
                }
                let started = std::time::Instant::now();
                if hub::is_blocking(request.kind()) {
                    ctx.handle.in_flight.fetch_add(1, Ordering::Relaxed);
                    let (host, ctx) = (host.clone(), ctx.clone());
                    tokio::spawn(async move {
                        let result = hub::handle(&host, &ctx, id, request).await;
                        ctx.handle.in_flight.fetch_sub(1, Ordering::Relaxed);
                        respond(&ctx, id, result);
                        ctx.requests.record(started.elapsed());
                    });
                } else {
                    let result = hub::handle(host, ctx, id, request).await;
                    let answered = respond(ctx, id, result);
                    ctx.requests.record(started.elapsed());
                    if !answered {
                        return violation("request flood: the module does not read its responses");
                    }
                }
            }
        }
    }
}

/// Queue the answer to request `id`; `Ok(None)` is answered later by
/// whoever took the request on.
fn respond(ctx: &ConnCtx, id: u64, result: Result<Option<proto::Response>, ErrorBody>) -> bool {
    let result = match result {
        Ok(None) => return true,
        Ok(Some(r)) => Ok(r),
        Err(e) => Err(e),
    };
    let msg = HostMessage::Response { id, result };
    if ctx.handle.try_send(&msg) {
        return true;
    }
    // Too big for a frame (a huge read result) is the module's request's
    // fault, not a flood: answer with an error instead.
    if proto::encode(&msg, ctx.handle.max_frame).is_err() {
        let err = ErrorBody::new(ErrorCode::InvalidArgument, "the result does not fit in one frame; ask for less");
        return ctx.handle.try_send(&HostMessage::Response { id, result: Err(err) });
    }
    false
}

/// Count lines a module lost to its output budget, and say so once.
pub(crate) fn report_suppressed(host: &Host, module: &str, suppressed: u64) {
    if suppressed > 0 {
        tracing::warn!(module, "{suppressed} log/output lines suppressed (over {}/s)", host.config.daemon.output_lines_per_sec);
        host.with_module(module, |s| s.suppressed_lines += suppressed);
    }
}

fn log_record(host: &Host, module: &str, rec: proto::LogRecord) {
    let fields: String = rec.fields.iter().map(|(k, v)| format!(" {k}={v}")).collect();
    let line: String = format!("{:?} {}: {}{}", rec.level, rec.target, rec.message, fields).chars().take(4096).collect();
    match rec.level {
        LogLevel::Error => tracing::error!(module, "{line}"),
        LogLevel::Warn => tracing::warn!(module, "{line}"),
        LogLevel::Info => tracing::info!(module, "{line}"),
        LogLevel::Debug => tracing::debug!(module, "{line}"),
        LogLevel::Trace => tracing::trace!(module, "{line}"),
    }
    host.log_line(module, line);
}
