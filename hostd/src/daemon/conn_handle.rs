//! hostd's side of a live module connection, for anything that must reach
//! the module: queued messages, calls to it (bounded, each with a
//! timeout), and requests answered later (mesh sends).

use super::lock;
use hostd_protocol::{self as proto, ErrorBody, ErrorCode, HostMessage, Invocation};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// hostd's side of a live connection, for anything that must reach the module.
type InvocationWaiters = HashMap<u64, oneshot::Sender<Result<Vec<u8>, ErrorBody>>>;

pub struct ConnHandle {
    pub(super) ctrl: mpsc::Sender<Vec<u8>>,
    /// Invoke frames: calls made to this module.
    pub(super) invocations: mpsc::Sender<Vec<u8>>,
    pub(super) max_pending: usize,
    pub(super) pending: Mutex<InvocationWaiters>,
    pub(super) next_invoke: AtomicU64,
    pub(super) max_frame: u32,
    pub(super) in_flight: AtomicU32,
    /// Time this module's frames waited for its rate limit, in µs.
    pub(super) throttled_us: AtomicU64,
    /// The protocol version negotiated in the handshake.
    pub protocol: u32,
}

impl ConnHandle {
    /// Queue a message without waiting; false if the queue is full or closed.
    pub fn try_send(&self, msg: &HostMessage) -> bool {
        match proto::encode(msg, self.max_frame) {
            Ok(f) => self.ctrl.try_send(f).is_ok(),
            Err(e) => {
                tracing::warn!("message to module does not fit a frame: {e}");
                false
            }
        }
    }

    /// Call the module and wait for its `InvocationResult`, at most
    /// `timeout` in all. Never waits for queue room: a module with
    /// `max_pending_invocations` calls unanswered answers Busy at once. The
    /// pending entry is removed on every path (answer, timeout, Busy, the
    /// module's exit, the caller giving up).
    pub async fn invoke(&self, invocation: Invocation, timeout: Duration) -> Result<Vec<u8>, ErrorBody> {
        let id = self.next_invoke.fetch_add(1, Ordering::Relaxed);
        let frame = proto::encode(&HostMessage::Invoke { id, invocation }, self.max_frame)
            .map_err(|e| ErrorBody::new(ErrorCode::InvalidArgument, e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = lock(&self.pending);
            if pending.len() >= self.max_pending {
                return Err(ErrorBody::new(ErrorCode::Busy, format!("the module has {} calls pending; try again later", pending.len())));
            }
            pending.insert(id, tx);
        }
        let _forget = PendingGuard { handle: self, id };
        match self.invocations.try_send(frame) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return Err(ErrorBody::new(ErrorCode::Busy, "the module's call queue is full; try again later"))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Err(ErrorBody::new(ErrorCode::ModuleUnavailable, "the module's connection closed"))
            }
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(ErrorBody::new(ErrorCode::ModuleUnavailable, "the module's connection closed")),
            Err(_) => Err(ErrorBody::new(ErrorCode::Timeout, format!("no answer within {} ms", timeout.as_millis()))),
        }
    }

    /// Largest frame to the module.
    pub fn max_frame(&self) -> u32 {
        self.max_frame
    }

    /// A request whose answer comes later ([`Self::end_deferred`]) counts
    /// as in flight until then.
    pub fn begin_deferred(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// Answer a deferred request. The response queue has room for every
    /// request in flight, so this fails only for a module that also stopped
    /// reading its inline answers; its reader notices and closes it.
    pub fn end_deferred(&self, id: u64, result: Result<proto::Response, ErrorBody>) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !self.try_send(&HostMessage::Response { id, result }) {
            tracing::debug!("deferred answer {id} not queued: the module does not read its responses");
        }
    }

    /// Milliseconds this module's frames waited for its rate limit.
    pub fn throttled_ms(&self) -> u64 {
        self.throttled_us.load(Ordering::Relaxed) / 1000
    }

    /// Calls to this module not answered yet.
    pub fn pending_invocations(&self) -> usize {
        lock(&self.pending).len()
    }

    pub(super) fn complete(&self, id: u64, result: Result<Vec<u8>, ErrorBody>) {
        if let Some(tx) = lock(&self.pending).remove(&id) {
            let _ = tx.send(result);
        }
    }
}

/// Removes a call's pending entry however its wait ends, including when the
/// caller's task is dropped mid-wait.
struct PendingGuard<'a> {
    handle: &'a ConnHandle,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.handle.pending).remove(&self.id);
    }
}

