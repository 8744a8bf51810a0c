//! One link: a task that reads frames for the module and writes the
//! module's frames, until either side fails, the module closes it, or the
//! module goes away.

use super::stats::LinkStats;
use super::wire::{self, Close};
use super::{lock, Held, ModuleMesh, SendRate, FRAME_OVERHEAD};
use hostd_protocol::{ErrorBody, ErrorCode, HostMessage, LinkInfo, Response};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Bytes of queued frames written to the socket in one call at most.
const WRITE_BATCH: usize = 256 * 1024;
/// Read buffer of a link: many small frames per read system call, while
/// bodies this size and larger are read straight into their IPC frame.
const READ_BUFFER: usize = 8 * 1024;
/// Frames written in one system call at most.
const WRITE_FRAMES: usize = 256;

/// A module's frame waiting for the link's socket.
pub struct Outgoing {
    pub id: u64,
    pub data: Vec<u8>,
    pub held: Held,
}

pub struct Link {
    pub info: LinkInfo,
    out: mpsc::UnboundedSender<Outgoing>,
    send_budget: Arc<Semaphore>,
    close: Mutex<Option<oneshot::Sender<Close>>>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
    pub stats: Arc<LinkStats>,
}

impl Link {
    pub fn send_budget(&self) -> &Arc<Semaphore> {
        &self.send_budget
    }

    /// Queue a frame (its bytes already charged to `send_budget`).
    pub fn queue(&self, o: Outgoing) -> Result<(), Outgoing> {
        self.out.send(o).map_err(|e| e.0)
    }

    /// Ask the link's task to end with `why` (LinkDown follows).
    pub fn close(&self, why: Close) {
        if let Some(tx) = lock(&self.close).take() {
            let _ = tx.send(why);
        }
    }

    /// End the task at once, saying nothing (the module is gone).
    pub fn abort(&self) {
        if let Some(t) = lock(&self.task).take() {
            t.abort();
        }
    }

    pub fn status_json(&self) -> serde_json::Value {
        let mut v = self.stats.json();
        v["id"] = self.info.id.into();
        v["peer"] = self.info.peer.clone().into();
        v["local"] = self.info.local.clone().into();
        v["inbound"] = self.info.inbound.into();
        v["unsent_bytes"] = (self.info.send_window as usize - self.send_budget.available_permits()).into();
        v
    }
}

/// Make `stream` a link of `mm`: tell the module (LinkUp) and start its
/// task. An error if the module is gone or holds its maximum of links.
pub async fn start(mm: &Arc<ModuleMesh>, stream: TcpStream, inbound: bool) -> Result<LinkInfo, Close> {
    let (peer, local) = match (stream.peer_addr(), stream.local_addr()) {
        (Ok(p), Ok(l)) => (p, l),
        (Err(e), _) | (_, Err(e)) => return Err(Close::Io(e.to_string())),
    };
    let info = mm.new_info(peer, local, inbound);
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (close_tx, close_rx) = oneshot::channel();
    let link = Arc::new(Link {
        info: info.clone(),
        out: out_tx,
        send_budget: Arc::new(Semaphore::new(mm.settings().link_send_bytes as usize)),
        close: Mutex::new(Some(close_tx)),
        task: Mutex::new(None),
        stats: Arc::default(),
    });
    {
        let mut links = lock(&mm.links);
        if mm.is_closed() {
            return Err(Close::ModuleGone);
        }
        if links.len() >= mm.settings().max_links_per_module as usize {
            return Err(Close::Io(format!("the module holds its maximum of {} links ([mesh] max_links_per_module)", links.len())));
        }
        links.insert(info.id, link.clone());
    }
    // LinkUp goes first on the module's mesh queue, so it precedes every
    // frame of the link.
    if !mm.to_module(&HostMessage::LinkUp(info.clone()), None).await {
        lock(&mm.links).remove(&info.id);
        return Err(Close::ModuleGone);
    }
    mm.stats.count_link_up(inbound);
    tracing::info!(module = %mm.module, link = info.id, peer = %peer, inbound, "mesh link up");
    let task = tokio::spawn(run(mm.clone(), link.clone(), stream, out_rx, close_rx));
    *lock(&link.task) = Some(task.abort_handle());
    Ok(info)
}

async fn run(mm: Arc<ModuleMesh>, link: Arc<Link>, stream: TcpStream, mut out_rx: mpsc::UnboundedReceiver<Outgoing>, close_rx: oneshot::Receiver<Close>) {
    let (rd, wr) = stream.into_split();
    let why = tokio::select! {
        Err(c) = read_side(&mm, &link, rd) => c,
        Err(c) = write_side(&mm, &link, wr, &mut out_rx) => c,
        c = close_rx => c.unwrap_or(Close::ModuleGone),
    };
    let id = link.info.id;
    lock(&mm.links).remove(&id);
    link.send_budget.close();
    out_rx.close();
    while let Ok(o) = out_rx.try_recv() {
        mm.conn().end_deferred(o.id, Err(ErrorBody::new(ErrorCode::LinkClosed, format!("mesh link {id} closed: {why}"))));
    }
    mm.stats.count_close(why.class());
    tracing::info!(module = %mm.module, link = id, peer = %link.info.peer, reason = %why, "mesh link down");
    mm.to_module(&HostMessage::LinkDown { link: id, reason: why.to_string() }, None).await;
}

/// Frames from the peer to the module. Room in the module's budget is
/// taken before a body is read: while the module does not read, neither
/// does hostd, and the peer's TCP window fills.
async fn read_side(mm: &ModuleMesh, link: &Link, rd: OwnedReadHalf) -> Result<(), Close> {
    let s = mm.settings();
    let (idle, body_limit) = (ms(s.idle_timeout_ms), ms(s.frame_timeout_ms));
    let mut rd = tokio::io::BufReader::with_capacity(READ_BUFFER, rd);
    loop {
        let len = wire::read_header(&mut rd, idle, s.max_frame_bytes).await?;
        if len == 0 {
            continue;
        }
        let held = mm.hold_recv(len + FRAME_OVERHEAD).await.ok_or(Close::ModuleGone)?;
        // The body is read straight into the IPC frame that carries it.
        let mut frame = hostd_protocol::mesh_frame_prefix(link.info.id, len as usize, mm.conn().max_frame()).map_err(|e| Close::Io(e.to_string()))?;
        let start = frame.len();
        frame.resize(start + len as usize, 0);
        wire::read_body_into(&mut rd, &mut frame[start..], body_limit).await?;
        link.stats.received(len as usize);
        mm.stats.received(len as usize);
        if !mm.queue_to_module(frame, Some(held)).await {
            return Err(Close::ModuleGone);
        }
    }
}

/// The module's frames to the peer, in order, at the module's and the
/// link's rate; each answered once the socket took it. A keepalive goes
/// out when nothing else did for `keepalive_ms`.
async fn write_side(mm: &ModuleMesh, link: &Link, mut wr: OwnedWriteHalf, out_rx: &mut mpsc::UnboundedReceiver<Outgoing>) -> Result<(), Close> {
    let s = mm.settings();
    let (keepalive, stall) = (ms(s.keepalive_ms), ms(s.idle_timeout_ms));
    let mut rate = SendRate::new(f64::from(s.link_frames_per_sec), s.link_bytes_per_sec as f64);
    let mut written: Vec<Outgoing> = Vec::new();
    loop {
        let first = match tokio::time::timeout(keepalive, out_rx.recv()).await {
            Err(_) => {
                wire::write_frames(&mut wr, &[&[]], stall).await?;
                continue;
            }
            Ok(None) => return Err(Close::ModuleGone),
            Ok(Some(o)) => o,
        };
        let (mut wait, mut bytes) = (Duration::ZERO, 0);
        let mut next = Some(first);
        while let Some(o) = next {
            wait = wait.max(rate.charge(o.data.len())).max(lock(&mm.send_rate).charge(o.data.len()));
            bytes += o.data.len();
            written.push(o);
            next = if bytes >= WRITE_BATCH || written.len() >= WRITE_FRAMES { None } else { out_rx.try_recv().ok() };
        }
        if !wait.is_zero() {
            mm.stats.throttled(wait);
            tokio::time::sleep(wait).await;
        }
        let frames: Vec<&[u8]> = written.iter().map(|o| o.data.as_slice()).collect();
        wire::write_frames(&mut wr, &frames, stall).await?;
        for o in written.drain(..) {
            link.stats.sent(o.data.len());
            mm.stats.sent(o.data.len());
            drop(o.held);
            mm.conn().end_deferred(o.id, Ok(Response::Ack));
        }
    }
}

fn ms(v: u32) -> Duration {
    Duration::from_millis(u64::from(v))
}
