//! Timers and scheduled tasks: each a task that sends TimerFired to the
//! module; bounded in number and rate, cancelled with the connection.

use super::err;
use crate::daemon::conn::ConnCtx;
use crate::daemon::{lock, Host};
use hostd_protocol::{ErrorBody, ErrorCode, HostMessage, Response};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// A timer or scheduled task, within `[daemon] max_timers` per module and
/// `min_timer_ms` (a module cannot turn timers into a busy loop).
pub fn start(host: &Host, ctx: &Arc<ConnCtx>, ms: u64, repeat: bool, task: Option<String>) -> Result<Response, ErrorBody> {
    let d = &host.config.daemon;
    if ms < u64::from(d.min_timer_ms) {
        return Err(err(ErrorCode::InvalidArgument, format!("timers fire at most every {} ms (daemon.min_timer_ms)", d.min_timer_ms)));
    }
    let mut timers = lock(&ctx.timers);
    timers.retain(|_, t| !t.is_finished());
    if timers.len() >= d.max_timers as usize {
        return Err(err(ErrorCode::QuotaExceeded, format!("at most {} timers per module (daemon.max_timers)", d.max_timers)));
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

pub fn cancel(ctx: &ConnCtx, timer_id: u64) -> Result<Response, ErrorBody> {
    match lock(&ctx.timers).remove(&timer_id) {
        Some(t) => {
            t.abort();
            Ok(Response::Ack)
        }
        None => Err(err(ErrorCode::NotFound, format!("no timer {timer_id}"))),
    }
}
