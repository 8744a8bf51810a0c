//! The connection: fd pickup, handshake, reader and writer tasks.

use crate::client::{Client, Shared};
use hostd_protocol::connection::{FrameReader, FrameWriter, ReadError};
use hostd_protocol::{
    self as proto, ErrorBody, Event, Hello, HostMessage, Invocation, LinkInfo, ModuleMessage, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

/// Capacity of the module-side queue of pushed messages (events, invocations,
/// timers). Bounded like the host's. The reader never waits for room in it
/// (responses arrive on the same connection and must never queue behind a
/// module that is not reading its inbox, or a module awaiting a request
/// inside an event handler would deadlock): when it is full, events and
/// timer ticks are dropped and counted ([`Client::dropped_events`],
/// [`Client::dropped_ticks`]), and an invocation is answered at once with
/// `TooManyInFlight`, so the caller learns the module is busy.
const INCOMING_CAPACITY: usize = 100;
/// Outgoing frames queued before `send` waits for the writer.
const OUTGOING_CAPACITY: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    #[error("HOSTD_IPC_FD is {0:?}, not a file descriptor number; is this running under hostd?")]
    BadFdVariable(String),
    #[error("fd {fd} is not the hostd connection: {source}; is this running under hostd?")]
    NotASocket { fd: RawFd, source: std::io::Error },
    #[error("connection to hostd: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame: {0}")]
    Frame(#[from] proto::FrameError),
    #[error("reading from hostd: {0}")]
    Read(#[from] ReadError),
    #[error("hostd refused the handshake: {0}")]
    Refused(ErrorBody),
    #[error("hostd answered the handshake with an unexpected message")]
    UnexpectedHandshake,
    #[error("hostd: {0}")]
    Host(ErrorBody),
    #[error("hostd answered {request} with an unexpected {got}")]
    UnexpectedResponse { request: &'static str, got: String },
    #[error("the configuration hostd sent is not TOML: {0}")]
    BadConfig(String),
    #[error("the connection to hostd is closed")]
    Closed,
}

impl SdkError {
    /// The host's error code, when the host answered with an error.
    pub fn code(&self) -> Option<proto::ErrorCode> {
        match self {
            SdkError::Host(e) | SdkError::Refused(e) => Some(e.code),
            _ => None,
        }
    }
}

/// Something the host pushed to the module. New kinds come with new
/// protocol versions: match with a catch-all arm.
#[derive(Debug)]
#[non_exhaustive]
pub enum Incoming {
    Event(Event),
    Invoke(InvocationCall),
    TimerFired { timer_id: u64, task: Option<String> },
    /// Stop within `grace_ms`, after which the host kills the sandbox.
    Shutdown { grace_ms: u32 },
    /// Protocol 2: a mesh link is up (yours by `mesh_connect`, or a peer
    /// that connected to your listener).
    LinkUp(LinkInfo),
    /// Protocol 2: a link is gone; nothing more arrives on it.
    LinkDown { link: u64, reason: String },
    /// Protocol 2: a frame from a link's peer, in the order it was sent.
    Frame { link: u64, data: Vec<u8> },
}

/// A host → module call; answer it exactly once with [`InvocationCall::reply`].
#[derive(Debug)]
pub struct InvocationCall {
    pub id: u64,
    pub invocation: Invocation,
    client: Client,
}

impl InvocationCall {
    pub fn reply(self, result: Result<Vec<u8>, ErrorBody>) {
        self.client.send_message(ModuleMessage::InvocationResult { id: self.id, result });
    }
}

/// The module's inbox of pushed messages. Mesh messages have their own
/// queue, which never drops: hostd sends frames only as fast as the module
/// reads its connection, but frames read and not taken from here wait in
/// the module's memory (the sandbox's memory limit bounds them).
#[derive(Debug)]
pub struct IncomingStream {
    rx: mpsc::Receiver<Incoming>,
    mesh: mpsc::UnboundedReceiver<Incoming>,
}

impl IncomingStream {
    /// The next pushed message; `None` once the host closed the connection.
    pub async fn next(&mut self) -> Option<Incoming> {
        tokio::select! {
            biased;
            Some(m) = self.rx.recv() => Some(m),
            Some(m) = self.mesh.recv() => Some(m),
            else => None,
        }
    }
}

/// Connect on the fd named by `HOSTD_IPC_FD` (3 if unset) and handshake.
pub async fn connect(name: &str, version: &str) -> Result<(Client, IncomingStream), SdkError> {
    let fd = match std::env::var("HOSTD_IPC_FD") {
        Ok(v) => v.parse::<RawFd>().map_err(|_| SdkError::BadFdVariable(v))?,
        Err(_) => 3,
    };
    // SAFETY: hostd hands this fd to the module and nothing else in the
    // process owns it; taking it once is the contract of HOSTD_IPC_FD.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    connect_fd(owned, name, version).await
}

/// Connect on an already-open socket (tests, benchmarks).
pub async fn connect_fd(fd: OwnedFd, name: &str, version: &str) -> Result<(Client, IncomingStream), SdkError> {
    let std_stream = std::os::unix::net::UnixStream::from(fd);
    let raw = std::os::fd::AsRawFd::as_raw_fd(&std_stream);
    std_stream.set_nonblocking(true).map_err(|source| SdkError::NotASocket { fd: raw, source })?;
    let stream = UnixStream::from_std(std_stream).map_err(|source| SdkError::NotASocket { fd: raw, source })?;
    let (rd, wr) = stream.into_split();
    // Until the Welcome says otherwise, accept what the protocol allows.
    let mut rd = FrameReader::new(rd, proto::HARD_MAX_FRAME);
    let mut wr = FrameWriter::new(wr, proto::DEFAULT_MAX_FRAME);

    let hello = ModuleMessage::Hello(Hello {
        name: name.to_string(),
        version: version.to_string(),
        protocol_min: MIN_PROTOCOL_VERSION,
        protocol_max: PROTOCOL_VERSION,
    });
    wr.send(&hello).await?;
    let welcome = match rd.next::<HostMessage>().await? {
        Some(HostMessage::Welcome(w)) => w,
        Some(HostMessage::Refused(e)) => return Err(SdkError::Refused(e)),
        Some(_) => return Err(SdkError::UnexpectedHandshake),
        None => return Err(SdkError::Closed),
    };
    let max_frame = welcome.max_frame;
    rd.set_max_frame(max_frame);
    wr.set_max_frame(max_frame);
    let (out_tx, out_rx) = mpsc::channel::<ModuleMessage>(OUTGOING_CAPACITY);
    let (in_tx, in_rx) = mpsc::channel::<Incoming>(INCOMING_CAPACITY);
    let (mesh_tx, mesh_rx) = mpsc::unbounded_channel::<Incoming>();
    let shared = Arc::new(Shared::new(welcome, out_tx));
    let client = Client::from_shared(shared.clone());
    tokio::spawn(writer(wr, out_rx));
    tokio::spawn(reader(rd, shared, Inboxes { pushed: in_tx, mesh: mesh_tx }, client.clone()));
    Ok((client, IncomingStream { rx: in_rx, mesh: mesh_rx }))
}

async fn writer(mut wr: FrameWriter<OwnedWriteHalf>, mut rx: mpsc::Receiver<ModuleMessage>) {
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        // Coalesce whatever is already queued into one write.
        while let Some(msg) = next {
            if let Err(e) = wr.push(&msg) {
                eprintln!("hostd-sdk: dropping a message that does not fit a frame: {e}");
            }
            next = if wr.batch_full() { None } else { rx.try_recv().ok() };
        }
        if wr.flush().await.is_err() {
            return;
        }
    }
}

/// Yields granted to the module's consumer, when the inbox is full, before
/// an event is dropped. One read can carry a thousand events; on a
/// single-threaded runtime the consumer runs only when the reader yields.
const FULL_INBOX_YIELDS: usize = 4;

/// Hand an event to the inbox; if the module's consumer still has not made
/// room after a few yields it is not keeping up: drop and count, so
/// responses behind the event are not held up.
async fn deliver_event(inbox: &mpsc::Sender<Incoming>, shared: &Shared, ev: Event) {
    let mut item = Incoming::Event(ev);
    for _ in 0..=FULL_INBOX_YIELDS {
        match inbox.try_send(item) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(back)) => item = back,
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
        tokio::task::yield_now().await;
    }
    shared.count_dropped_event();
}

struct Inboxes {
    pushed: mpsc::Sender<Incoming>,
    mesh: mpsc::UnboundedSender<Incoming>,
}

async fn reader(mut rd: FrameReader<OwnedReadHalf>, shared: Arc<Shared>, inboxes: Inboxes, client: Client) {
    let Inboxes { pushed: inbox, mesh } = inboxes;
    loop {
        let msg = match rd.next::<HostMessage>().await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => {
                eprintln!("hostd-sdk: undecodable frame from hostd: {e}");
                break;
            }
        };
        match msg {
            HostMessage::Response { id, result } => shared.complete(id, result),
            HostMessage::Event(ev) => deliver_event(&inbox, &shared, ev).await,
            HostMessage::Invoke { id, invocation } => {
                let call = InvocationCall { id, invocation, client: client.clone() };
                match inbox.try_send(Incoming::Invoke(call)) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(Incoming::Invoke(call))) => call.reply(Err(ErrorBody::new(
                        proto::ErrorCode::TooManyInFlight,
                        format!("module busy: its inbox of {INCOMING_CAPACITY} pushed messages is full"),
                    ))),
                    Err(_) => break,
                }
            }
            HostMessage::TimerFired { timer_id, task } => match inbox.try_send(Incoming::TimerFired { timer_id, task }) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => shared.count_dropped_tick(),
                Err(mpsc::error::TrySendError::Closed(_)) => break,
            },
            HostMessage::Shutdown { grace_ms } => {
                // Never lost, and never holding up the responses behind it.
                let inbox = inbox.clone();
                tokio::spawn(async move {
                    let _ = inbox.send(Incoming::Shutdown { grace_ms }).await;
                });
            }
            HostMessage::LinkUp(info) => {
                shared.windows.open(&info);
                let _ = mesh.send(Incoming::LinkUp(info));
            }
            HostMessage::LinkDown { link, reason } => {
                shared.windows.close(link);
                let _ = mesh.send(Incoming::LinkDown { link, reason });
            }
            HostMessage::MeshFrame { link, data } => {
                let _ = mesh.send(Incoming::Frame { link, data });
            }
            HostMessage::Welcome(_) | HostMessage::Refused(_) => {}
        }
    }
    shared.close();
}
