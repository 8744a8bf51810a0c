//! Start-up order and readiness: each module is loaded once the modules it
//! requires are up (running and handshaken) or have definitively failed,
//! and hostd says READY=1 only once every module it started is one or the
//! other — with a STATUS= line naming which — or the wait's bound has
//! passed, in which case it says READY and names the stragglers (loudly,
//! in the log too), rather than never becoming ready.

use super::{Host, ModState};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How one module stands for readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Up,
    Failed,
    Pending,
}

pub fn standing(host: &Host, name: &str) -> Standing {
    host.with_module(name, |s| match s.state {
        ModState::Running if s.handshaken => Standing::Up,
        ModState::Failed | ModState::Stopped => Standing::Failed,
        _ => Standing::Pending,
    })
    .unwrap_or(Standing::Failed)
}

/// Wait until none of `names` is pending, or `deadline`.
pub async fn settle(host: &Arc<Host>, names: &[String], deadline: Instant) {
    while Instant::now() < deadline && names.iter().any(|n| standing(host, n) == Standing::Pending) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The STATUS= text ("N modules started: U up; failed: …; still starting:
/// …"), and whether every module is up.
pub fn status_line(host: &Host, names: &[String]) -> (String, bool) {
    let (mut up, mut failed, mut pending) = (Vec::new(), Vec::new(), Vec::new());
    for n in names {
        match standing(host, n) {
            Standing::Up => up.push(n.as_str()),
            Standing::Failed => failed.push(n.as_str()),
            Standing::Pending => pending.push(n.as_str()),
        }
    }
    let mut line = format!("{} modules started: {} up", names.len(), up.len());
    if !failed.is_empty() {
        line += &format!("; failed: {}", failed.join(", "));
    }
    if !pending.is_empty() {
        line += &format!("; still starting: {}", pending.join(", "));
    }
    (line, up.len() == names.len())
}
