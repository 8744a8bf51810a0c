//! The writing side of a module connection: responses first, then calls
//! to the module, then events, then mesh messages, each from its own
//! bounded queue; events only as fast as the module reads them.

use super::event_queue::EventQueue;
use hostd_protocol::connection::FrameWriter;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::mpsc;

/// The longest pause between checks of whether a module has read its
/// events, while it has not.
const EVENT_POLL_MAX: Duration = Duration::from_millis(64);
/// The same while events are waiting: a module that catches up gets them
/// within this, rather than after a long idle backoff.
const EVENT_POLL_PENDING: Duration = Duration::from_millis(2);

/// What goes to one module, each bounded on its own.
pub(super) struct Queues {
    pub ctrl: mpsc::Receiver<Vec<u8>>,
    pub invocations: mpsc::Receiver<Vec<u8>>,
    pub events: Arc<EventQueue>,
    /// Mesh messages (link up/down, frames), each holding the budget its
    /// bytes are charged to until it is in the batch.
    pub mesh: mpsc::Receiver<super::mesh::MeshOut>,
}

/// Responses first, then calls to the module, then events, then mesh
/// messages (which wait while events do and the socket is not drained, so a
/// stream of frames cannot hold events back); what is already
/// queued goes out in one write. Events leave the queue only once the
/// module has read everything written to it before (the socket's send
/// queue is empty): the socket buffer would otherwise hold thousands of
/// small events behind the bounded queue, and a module that stops reading
/// would have far more than its queue's bound of events undelivered. At
/// most `events_per_write` event frames go into one write, so a module has
/// at most its queue plus that many events undelivered.
pub(super) async fn write_loop(mut wr: FrameWriter<OwnedWriteHalf>, socket: RawFd, queues: Queues, events_per_write: usize) {
    let Queues { mut ctrl, mut invocations, events, mut mesh } = queues;
    let mut poll = Duration::ZERO;
    loop {
        let drained = unsent_bytes(socket) == 0;
        if drained {
            poll = Duration::ZERO;
        }
        let mut events_taken = 0;
        tokio::select! {
            biased;
            Some(f) = ctrl.recv() => wr.push_frame(&f),
            Some(f) = invocations.recv() => wr.push_frame(&f),
            Some(f) = events.take(), if drained => {
                wr.push_frame(&f);
                events_taken += 1;
            }
            Some(m) = mesh.recv(), if drained || events.queued() == 0 => wr.push_frame(&m.frame),
            _ = tokio::time::sleep(poll), if !drained => {
                let cap = if events.queued() > 0 { EVENT_POLL_PENDING } else { EVENT_POLL_MAX };
                poll = (poll * 2).clamp(Duration::from_millis(1), cap);
                continue;
            }
            else => return,
        }
        while !wr.batch_full() {
            if let Ok(f) = ctrl.try_recv() {
                wr.push_frame(&f);
            } else if let Ok(f) = invocations.try_recv() {
                wr.push_frame(&f);
            } else if let Some(f) = (drained && events_taken < events_per_write).then(|| events.try_take()).flatten() {
                wr.push_frame(&f);
                events_taken += 1;
            } else if let Some(m) = (drained || events.queued() == 0).then(|| mesh.try_recv().ok()).flatten() {
                wr.push_frame(&m.frame);
            } else {
                break;
            }
        }
        if wr.flush().await.is_err() {
            return;
        }
    }
}

/// Bytes written to `socket` that its peer has not read yet (SIOCOUTQ;
/// for AF_UNIX stream sockets since Linux 2.6.x, unix(7)). An error reads
/// as "not drained", which only delays events.
fn unsent_bytes(socket: RawFd) -> libc::c_int {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (== SIOCOUTQ) writes one c_int through the pointer.
    let rc = unsafe { libc::ioctl(socket, libc::TIOCOUTQ, &mut n) };
    if rc < 0 {
        return libc::c_int::MAX;
    }
    n
}
