//! hostd's mesh transport: modules holding `network_access` get framed,
//! rate-limited TCP links that hostd owns (a module has no sockets).
//!
//! - [`Mesh`]: what all modules share: the settings, the global buffer
//!   budget, link ids, and the listeners (a module may not connect to them);
//! - [`ModuleMesh`]: one module's links, listener, budgets and counters,
//!   alive while its connection is;
//! - [`link`]: one link's task (reading and writing side), [`listener`]:
//!   accepting, [`wire`]: preamble and frames, [`stats`]: counters.
//!
//! Bounds, each a `[mesh]` key: a link holds at most `link_send_bytes` of
//! the module's sends (more are answered Busy); a module holds at most
//! `module_recv_bytes` of received frames (past it hostd stops reading its
//! links, so the peers' TCP windows fill); all of it together at most
//! `global_buffer_bytes`. Link frames reach the module on their own writer
//! queue, behind its responses and events.

mod connect;
pub mod link;
mod listener;
mod local_addrs;
pub mod stats;
pub mod wire;

use super::conn::ConnHandle;
use super::limit::TokenBucket;
use super::lock;
use crate::mesh_config::MeshSettings;
use hostd_protocol::{self as proto, ErrorBody, ErrorCode, HostMessage, LinkInfo, Response};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// What a frame costs a budget beyond its bytes, so empty frames are not free.
pub use proto::MESH_SEND_OVERHEAD as FRAME_OVERHEAD;

/// Something for the module's mesh writer queue, holding the budget its
/// bytes were charged to until it is written.
pub struct MeshOut {
    pub frame: Vec<u8>,
    pub held: Option<Held>,
}

/// Bytes charged to a module's (or link's) budget and to the global one.
pub struct Held {
    _own: OwnedSemaphorePermit,
    _global: OwnedSemaphorePermit,
}

pub use crate::mesh_config::listen_addr;

/// Frames hostd queues toward one module, at most (besides bytes).
pub const MODULE_QUEUE_FRAMES: usize = 4096;

/// Shared by every module.
pub struct Mesh {
    pub settings: MeshSettings,
    /// The runtime every link, listener and connect runs on: its own
    /// threads, at a lower scheduling priority than the runtime serving
    /// modules' requests, so bulk traffic yields the CPU to them.
    io: Option<tokio::runtime::Runtime>,
    io_handle: tokio::runtime::Handle,
    global: Arc<Semaphore>,
    next_link: AtomicU64,
    /// Module → the address its listener is bound to.
    listeners: Mutex<BTreeMap<String, SocketAddr>>,
    /// Other listeners of this hostd (the metrics endpoint).
    other_own: Vec<SocketAddr>,
}

impl Mesh {
    pub fn new(settings: MeshSettings, metrics_listen: Option<&str>) -> std::io::Result<Mesh> {
        let global = Semaphore::new(usize::try_from(settings.global_buffer_bytes).unwrap_or(usize::MAX).min(Semaphore::MAX_PERMITS));
        // io_threads = 0: links share the runtime serving requests (fewer
        // thread hand-offs per frame, no priority separation).
        let (io, io_handle) = if settings.io_threads == 0 {
            (None, tokio::runtime::Handle::current())
        } else {
            let nice = settings.io_nice;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(settings.io_threads as usize)
                .thread_name("hostd-mesh")
                .on_thread_start(move || lower_priority(nice))
                .enable_all()
                .build()?;
            let handle = rt.handle().clone();
            (Some(rt), handle)
        };
        Ok(Mesh {
            settings,
            io_handle,
            io,
            global: Arc::new(global),
            next_link: AtomicU64::new(1),
            listeners: Mutex::new(BTreeMap::new()),
            other_own: metrics_listen.and_then(|l| l.parse().ok()).into_iter().collect(),
        })
    }

    /// Where mesh I/O runs (see [`Mesh::io`]).
    pub fn io(&self) -> &tokio::runtime::Handle {
        &self.io_handle
    }

    /// Bytes of frames all modules' links hold now.
    pub fn global_used(&self) -> u64 {
        let total = usize::try_from(self.settings.global_buffer_bytes).unwrap_or(usize::MAX).min(Semaphore::MAX_PERMITS);
        (total - self.global.available_permits()) as u64
    }

    pub fn status_json(&self) -> serde_json::Value {
        serde_json::json!({
            "buffered_bytes": self.global_used(),
            "global_buffer_bytes": self.settings.global_buffer_bytes,
            "listeners": lock(&self.listeners).iter().map(|(m, a)| (m.clone(), a.to_string())).collect::<BTreeMap<_, _>>(),
        })
    }

    /// Start `module`'s mesh: its budgets, and its listener if its merged
    /// config names one. Problems with the listener are said in the module's
    /// log and status; the module runs on without one.
    pub fn attach(self: &Arc<Self>, module: &str, conn: Arc<ConnHandle>, to_module: mpsc::Sender<MeshOut>, listen: Option<String>) -> Arc<ModuleMesh> {
        let s = &self.settings;
        let mm = Arc::new(ModuleMesh {
            module: module.to_string(),
            mesh: self.clone(),
            conn,
            to_module,
            recv_budget: Arc::new(Semaphore::new(s.module_recv_bytes as usize)),
            links: Mutex::new(BTreeMap::new()),
            pending: AtomicU32::new(0),
            connect_rate: Mutex::new(TokenBucket::new(s.connects_per_sec, s.max_pending_connects)),
            accept_rate: Mutex::new(TokenBucket::new(s.accepts_per_sec, s.accepts_per_sec)),
            send_rate: Mutex::new(SendRate::new(f64::from(s.module_frames_per_sec), s.module_bytes_per_sec as f64)),
            stats: stats::ModuleStats::default(),
            listen: Mutex::new(ListenState::None),
            listener_task: Mutex::new(None),
            closed: AtomicBool::new(false),
        });
        if let Some(addr) = listen {
            listener::start(&mm, &addr);
        }
        mm
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        // Dropping a runtime may not block inside another runtime.
        if let Some(rt) = self.io.take() {
            rt.shutdown_background();
        }
    }
}

/// Give this thread a higher nice value (setpriority(2) with a thread id
/// acts on that thread only, on Linux). Failure only costs fairness.
fn lower_priority(nice: i32) {
    // SAFETY: gettid and setpriority have no memory preconditions.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) };
    if rc != 0 {
        tracing::warn!("mesh I/O thread keeps its priority: setpriority: {}", std::io::Error::last_os_error());
    }
}

/// Whether `addr` reaches one of this hostd's own listeners.
fn is_own(mesh: &Mesh, addr: SocketAddr, local: &[std::net::IpAddr]) -> bool {
    let listeners = lock(&mesh.listeners);
    listeners.values().chain(mesh.other_own.iter()).any(|own| {
        own.port() == addr.port()
            && (own.ip() == addr.ip() || (own.ip().is_unspecified() && (addr.ip().is_loopback() || addr.ip().is_unspecified() || local.contains(&addr.ip()))))
    })
}

/// A module's sending rate, frames and bytes per second.
pub struct SendRate {
    frames: TokenBucket,
    bytes: TokenBucket,
}

impl SendRate {
    pub fn new(frames_per_sec: f64, bytes_per_sec: f64) -> SendRate {
        SendRate { frames: TokenBucket::of(frames_per_sec, frames_per_sec), bytes: TokenBucket::of(bytes_per_sec, bytes_per_sec) }
    }

    /// Charge one frame of `len` bytes; how long to wait before sending it.
    pub fn charge(&mut self, len: usize) -> std::time::Duration {
        let f = self.frames.reserve_n(1.0).unwrap_or_default();
        let b = self.bytes.reserve_n(len as f64).unwrap_or_default();
        f.max(b)
    }
}

#[derive(Debug, Clone)]
pub enum ListenState {
    None,
    Listening(SocketAddr),
    Refused(String),
}

/// One module's mesh, for as long as its connection lives.
pub struct ModuleMesh {
    pub module: String,
    mesh: Arc<Mesh>,
    conn: Arc<ConnHandle>,
    to_module: mpsc::Sender<MeshOut>,
    recv_budget: Arc<Semaphore>,
    links: Mutex<BTreeMap<u64, Arc<link::Link>>>,
    /// Connects and inbound preambles in progress.
    pending: AtomicU32,
    connect_rate: Mutex<TokenBucket>,
    accept_rate: Mutex<TokenBucket>,
    send_rate: Mutex<SendRate>,
    pub stats: stats::ModuleStats,
    listen: Mutex<ListenState>,
    listener_task: Mutex<Option<tokio::task::AbortHandle>>,
    closed: AtomicBool,
}

fn err(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
    ErrorBody::new(code, message)
}

impl ModuleMesh {
    fn settings(&self) -> &MeshSettings {
        &self.mesh.settings
    }

    /// Charge `bytes` to `own` and to the global budget, without waiting.
    fn try_hold(&self, own: &Arc<Semaphore>, bytes: u32) -> Result<Held, Option<&'static str>> {
        let own = own.clone().try_acquire_many_owned(bytes).map_err(|e| match e {
            tokio::sync::TryAcquireError::Closed => None,
            tokio::sync::TryAcquireError::NoPermits => Some("link"),
        })?;
        let global = self.mesh.global.clone().try_acquire_many_owned(bytes).map_err(|_| Some("global"))?;
        Ok(Held { _own: own, _global: global })
    }

    /// Charge a received frame to the module's budget and the global one,
    /// waiting for room (meanwhile the link is not read); `None` once the
    /// module is gone.
    async fn hold_recv(&self, bytes: u32) -> Option<Held> {
        let own = self.recv_budget.clone().acquire_many_owned(bytes).await.ok()?;
        let global = self.mesh.global.clone().acquire_many_owned(bytes).await.ok()?;
        Some(Held { _own: own, _global: global })
    }

    /// Queue a message for the module behind its other mesh messages.
    async fn to_module(&self, msg: &HostMessage, held: Option<Held>) -> bool {
        match proto::encode(msg, self.conn.max_frame()) {
            Ok(frame) => self.queue_to_module(frame, held).await,
            Err(e) => {
                tracing::warn!(module = %self.module, "mesh message does not fit an IPC frame: {e}");
                false
            }
        }
    }

    /// Queue an encoded IPC frame for the module (see [`Self::to_module`]).
    async fn queue_to_module(&self, frame: Vec<u8>, held: Option<Held>) -> bool {
        self.to_module.send(MeshOut { frame, held }).await.is_ok()
    }

    /// `MeshSend`: queue `data` on `link`, answered once written (the
    /// answer is deferred: this returns before it).
    pub fn send(&self, id: u64, link: u64, data: Vec<u8>) -> Result<(), ErrorBody> {
        let l = lock(&self.links).get(&link).cloned().ok_or_else(|| err(ErrorCode::NotFound, format!("no mesh link {link} (closed, or never this module's)")))?;
        let max = self.settings().max_frame_bytes;
        if data.len() > max as usize {
            return Err(err(ErrorCode::InvalidArgument, format!("frame of {} bytes exceeds the link maximum of {max} bytes ([mesh] max_frame_bytes)", data.len())));
        }
        let charge = data.len() as u32 + FRAME_OVERHEAD;
        let held = self.try_hold(l.send_budget(), charge).map_err(|which| {
            self.stats.count_busy();
            match which {
                None => err(ErrorCode::LinkClosed, format!("mesh link {link} is closing")),
                Some("link") => err(
                    ErrorCode::Busy,
                    format!("mesh link {link} holds its send_window of {} bytes unsent; wait for earlier sends to be answered", self.settings().link_send_bytes),
                ),
                Some(_) => err(ErrorCode::Busy, "hostd's mesh buffers are full ([mesh] global_buffer_bytes); try again later"),
            }
        })?;
        self.conn.begin_deferred();
        if let Err(back) = l.queue(link::Outgoing { id, data, held }) {
            self.conn.end_deferred(back.id, Err(err(ErrorCode::LinkClosed, format!("mesh link {link} is closing"))));
        }
        Ok(())
    }

    /// `MeshClose`.
    pub fn close(&self, link: u64) -> Result<Response, ErrorBody> {
        let l = lock(&self.links).get(&link).cloned().ok_or_else(|| err(ErrorCode::NotFound, format!("no mesh link {link}")))?;
        l.close(wire::Close::ClosedByModule);
        Ok(Response::Ack)
    }

    /// `MeshLinks`.
    pub fn links(&self) -> Response {
        Response::Links(lock(&self.links).values().map(|l| l.info.clone()).collect())
    }

    /// Links open now.
    pub fn link_count(&self) -> usize {
        lock(&self.links).len()
    }

    /// The module's connection ended: close the listener and every link
    /// (no LinkDown: there is nobody to tell).
    pub fn shutdown(&self) {
        self.closed.store(true, Ordering::Relaxed);
        if let Some(t) = lock(&self.listener_task).take() {
            t.abort();
        }
        lock(&self.mesh.listeners).remove(&self.module);
        for (_, l) in std::mem::take(&mut *lock(&self.links)) {
            l.abort();
        }
        self.recv_budget.close();
    }

    pub fn status_json(&self) -> serde_json::Value {
        let listen = match &*lock(&self.listen) {
            ListenState::None => serde_json::json!({ "state": "none" }),
            ListenState::Listening(a) => serde_json::json!({ "state": "listening", "address": a.to_string() }),
            ListenState::Refused(why) => serde_json::json!({ "state": "refused", "error": why }),
        };
        let links: Vec<serde_json::Value> = lock(&self.links).values().map(|l| l.status_json()).collect();
        let mut v = self.stats.json();
        v["listen"] = listen;
        v["links"] = links.into();
        v["received_unread_bytes"] = (self.settings().module_recv_bytes as usize - self.recv_budget.available_permits()).into();
        v["pending_connects"] = self.pending.load(Ordering::Relaxed).into();
        v
    }

    /// The mesh runtime.
    pub fn io(&self) -> &tokio::runtime::Handle {
        self.mesh.io()
    }

    fn next_link_id(&self) -> u64 {
        self.mesh.next_link.fetch_add(1, Ordering::Relaxed)
    }

    /// The module's connection, which answers its deferred sends.
    fn conn(&self) -> &ConnHandle {
        &self.conn
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    fn new_info(&self, peer: SocketAddr, local: SocketAddr, inbound: bool) -> LinkInfo {
        LinkInfo {
            id: self.next_link_id(),
            peer: peer.to_string(),
            local: local.to_string(),
            inbound,
            max_frame: self.settings().max_frame_bytes,
            send_window: self.settings().link_send_bytes,
        }
    }
}

/// Counts in-progress connects and preambles; released however they end.
struct PendingGuard<'a>(&'a AtomicU32);

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
