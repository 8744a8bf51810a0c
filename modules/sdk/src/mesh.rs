//! Mesh links (protocol 2, `network_access`): typed calls, and the send
//! window that keeps a module's unanswered sends within what hostd holds
//! for a link, so sending waits for room instead of getting Busy.

use crate::client::{answer, Client};
use crate::conn::SdkError;
use hostd_protocol::{ErrorBody, ErrorCode, LinkInfo, Request, Response, MESH_SEND_OVERHEAD};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// Per link: a semaphore of the bytes of sends not yet answered (at most
/// the link's window, as hostd counts them); for the connection, sends not
/// yet answered (at most half the requests hostd lets a module have in
/// flight, so mesh traffic never runs other requests into TooManyInFlight);
/// and the room each unanswered send holds, by request id.
#[derive(Debug)]
pub(crate) struct Windows {
    links: Mutex<HashMap<u64, (Arc<Semaphore>, u32)>>,
    in_flight: Arc<Semaphore>,
    held: Mutex<HashMap<u64, (Option<OwnedSemaphorePermit>, OwnedSemaphorePermit)>>,
}

fn guard<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Windows {
    pub(crate) fn new(max_in_flight: u32) -> Windows {
        Windows { links: Mutex::default(), in_flight: Arc::new(Semaphore::new((max_in_flight / 2).max(1) as usize)), held: Mutex::default() }
    }

    /// A link came up (LinkUp, or the answer to `mesh_connect`).
    pub(crate) fn open(&self, info: &LinkInfo) {
        guard(&self.links).entry(info.id).or_insert_with(|| (Arc::new(Semaphore::new(info.send_window as usize)), info.send_window));
    }

    /// A link went down: sends waiting for room fail at once.
    pub(crate) fn close(&self, link: u64) {
        if let Some((s, _)) = guard(&self.links).remove(&link) {
            s.close();
        }
    }

    /// The connection ended.
    pub(crate) fn clear(&self) {
        for (_, (s, _)) in guard(&self.links).drain() {
            s.close();
        }
        guard(&self.held).clear();
    }

    /// Request `id` was answered: its room is free again.
    pub(crate) fn release(&self, id: u64) {
        guard(&self.held).remove(&id);
    }

    fn get(&self, link: u64) -> Option<(Arc<Semaphore>, u32)> {
        guard(&self.links).get(&link).cloned()
    }
}

/// The answer to one queued frame: hostd handed it to the link's socket.
#[derive(Debug)]
pub struct MeshAck(oneshot::Receiver<Result<Response, ErrorBody>>);

impl MeshAck {
    pub async fn wait(self) -> Result<(), SdkError> {
        match answer(self.0).await? {
            Response::Ack => Ok(()),
            other => Err(SdkError::UnexpectedResponse { request: "mesh_send", got: format!("{other:?}") }),
        }
    }

    /// The answer if it has come: `None` while it has not.
    pub fn try_wait(&mut self) -> Option<Result<(), SdkError>> {
        match self.0.try_recv() {
            Ok(Ok(Response::Ack)) => Some(Ok(())),
            Ok(Ok(other)) => Some(Err(SdkError::UnexpectedResponse { request: "mesh_send", got: format!("{other:?}") })),
            Ok(Err(e)) => Some(Err(SdkError::Host(e))),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(SdkError::Closed)),
        }
    }
}

impl Client {
    /// Open a link to another hostd's module at `addr` ("ip:port"); the
    /// host config's allowlist decides what may be reached. Capability: `network_access`.
    pub async fn mesh_connect(&self, addr: &str) -> Result<LinkInfo, SdkError> {
        let info = match self.request(Request::MeshConnect { addr: addr.to_string() }).await? {
            Response::Link(info) => info,
            other => return Err(SdkError::UnexpectedResponse { request: "mesh_connect", got: format!("{other:?}") }),
        };
        self.shared().windows.open(&info);
        Ok(info)
    }

    /// Close one of this module's links. Capability: `network_access`.
    pub async fn mesh_close(&self, link: u64) -> Result<(), SdkError> {
        match self.request(Request::MeshClose { link }).await? {
            Response::Ack => Ok(()),
            other => Err(SdkError::UnexpectedResponse { request: "mesh_close", got: format!("{other:?}") }),
        }
    }

    /// This module's links. Capability: `network_access`.
    pub async fn mesh_links(&self) -> Result<Vec<LinkInfo>, SdkError> {
        match self.request(Request::MeshLinks).await? {
            Response::Links(l) => Ok(l),
            other => Err(SdkError::UnexpectedResponse { request: "mesh_links", got: format!("{other:?}") }),
        }
    }

    /// Send one frame on `link` and wait until hostd handed it to the
    /// link's socket. Capability: `network_access`.
    pub async fn mesh_send(&self, link: u64, data: Vec<u8>) -> Result<(), SdkError> {
        self.mesh_queue(link, data).await?.wait().await
    }

    /// Queue one frame on `link` without waiting for its answer: waits only
    /// while the link's window is full. Frames queued by one task go out in
    /// the order queued; this is how to keep a link busy.
    pub async fn mesh_queue(&self, link: u64, data: Vec<u8>) -> Result<MeshAck, SdkError> {
        let windows = &self.shared().windows;
        let closed = || SdkError::Host(ErrorBody::new(ErrorCode::LinkClosed, format!("mesh link {link} closed")));
        let room = match windows.get(link) {
            Some((window, size)) => {
                let cost = (data.len() as u32).saturating_add(MESH_SEND_OVERHEAD).min(size);
                Some(window.acquire_many_owned(cost).await.map_err(|_| closed())?)
            }
            // Unknown here: hostd says why (closed, or never this module's).
            None => None,
        };
        let slot = windows.in_flight.clone().acquire_owned().await.map_err(|_| SdkError::Closed)?;
        let rx = self
            .submit(Request::MeshSend { link, data }, |id| {
                guard(&windows.held).insert(id, (room, slot));
            })
            .await?;
        Ok(MeshAck(rx))
    }
}
