//! Why a module's process ended, and whether to start it again: pure
//! logic, unit-tested without a sandbox.

use crate::config::RestartPolicy;
use hostd_protocol::CrashReason;
use sandbox::Outcome;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The crash reason of a process that ended with `outcome`; a protocol
/// violation hostd saw on its connection wins.
pub fn crash_reason(outcome: Outcome, violation: Option<CrashReason>) -> CrashReason {
    match (outcome, violation) {
        // hostd closed the connection first: that is the cause, however the
        // process then ended (killed by us, or exiting on the refusal).
        (_, Some(v)) => v,
        (Outcome::Exited { code }, _) => CrashReason::Exited { code },
        (Outcome::Signaled { signal }, _) => CrashReason::Signaled { signal },
        (Outcome::SeccompViolation, _) => CrashReason::SeccompViolation,
        (Outcome::OomKilled, _) => CrashReason::OutOfMemory,
        (Outcome::KilledByHost, None) => CrashReason::Unresponsive,
    }
}

/// What to do after a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Start it again once this backoff has passed.
    RestartAfter(Duration),
    /// A crash loop (or restarts are off): leave it failed.
    GiveUp { crashes: usize },
}

/// The crashes of one module within the policy's window.
#[derive(Debug)]
pub struct CrashWindow {
    policy: RestartPolicy,
    crashes: VecDeque<Instant>,
}

impl CrashWindow {
    pub fn new(policy: RestartPolicy) -> CrashWindow {
        CrashWindow { policy, crashes: VecDeque::new() }
    }

    /// Record a crash at `now`: crashes older than the window are forgotten;
    /// more than `max_restarts` within it is a crash loop. The backoff
    /// doubles with each crash in the window, from `backoff_initial_ms` up
    /// to `backoff_max_ms`.
    pub fn record(&mut self, now: Instant) -> Verdict {
        let window = Duration::from_secs(self.policy.window_secs);
        self.crashes.push_back(now);
        while self.crashes.front().is_some_and(|t| now.duration_since(*t) > window) {
            self.crashes.pop_front();
        }
        let n = self.crashes.len();
        if !self.policy.enabled || n as u32 > self.policy.max_restarts {
            return Verdict::GiveUp { crashes: n };
        }
        let exp = (n as u32).saturating_sub(1).min(20);
        let ms = self.policy.backoff_initial_ms.saturating_mul(1u64 << exp).min(self.policy.backoff_max_ms);
        Verdict::RestartAfter(Duration::from_millis(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy { enabled: true, backoff_initial_ms: 100, backoff_max_ms: 1000, max_restarts: 5, window_secs: 60 }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_then_a_crash_loop_gives_up() {
        let mut w = CrashWindow::new(policy());
        let t = Instant::now();
        let got: Vec<Verdict> = (0..6).map(|i| w.record(t + Duration::from_secs(i))).collect();
        let ms = |m| Verdict::RestartAfter(Duration::from_millis(m));
        assert_eq!(got, vec![ms(100), ms(200), ms(400), ms(800), ms(1000), Verdict::GiveUp { crashes: 6 }]);
    }

    #[test]
    fn crashes_outside_the_window_are_forgotten() {
        let mut w = CrashWindow::new(policy());
        let t = Instant::now();
        for i in 0..5 {
            w.record(t + Duration::from_secs(i));
        }
        // More than 60 s after the first four, less after the fifth: only
        // the fifth and this one count.
        assert_eq!(w.record(t + Duration::from_millis(63_500)), Verdict::RestartAfter(Duration::from_millis(200)));
    }

    #[test]
    fn disabled_restarts_give_up_at_once() {
        let mut w = CrashWindow::new(RestartPolicy { enabled: false, ..policy() });
        assert_eq!(w.record(Instant::now()), Verdict::GiveUp { crashes: 1 });
    }

    #[test]
    fn the_connection_verdict_wins_over_the_exit() {
        let v = CrashReason::ProtocolViolation { detail: "bad frame".into() };
        assert_eq!(crash_reason(Outcome::KilledByHost, Some(v.clone())), v);
        assert_eq!(crash_reason(Outcome::Exited { code: 3 }, None), CrashReason::Exited { code: 3 });
        assert_eq!(crash_reason(Outcome::Signaled { signal: 11 }, None), CrashReason::Signaled { signal: 11 });
        assert_eq!(crash_reason(Outcome::SeccompViolation, None), CrashReason::SeccompViolation);
        assert_eq!(crash_reason(Outcome::OomKilled, None), CrashReason::OutOfMemory);
        assert_eq!(crash_reason(Outcome::KilledByHost, None), CrashReason::Unresponsive);
    }
}
