//! Rate limits a module cannot talk its way around: a token bucket for
//! the frames it sends (requests and log records), enforced by not reading
//! past it, and a per-second line budget for what reaches hostd's log.

use std::time::{Duration, Instant};

/// A throttled module is read in batches this long at its rate.
pub const THROTTLE_QUANTUM: Duration = Duration::from_millis(10);

/// Token bucket: `rate` per second, up to `burst` at once.
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: u32, burst: u32) -> TokenBucket {
        TokenBucket::of(f64::from(rate), f64::from(burst))
    }

    /// A bucket of anything countable (frames, bytes).
    pub fn of(rate: f64, burst: f64) -> TokenBucket {
        TokenBucket { rate, burst, tokens: burst, last: Instant::now() }
    }

    /// Take `n` tokens at once (a frame's bytes); like [`Self::reserve`].
    pub fn reserve_n(&mut self, n: f64) -> Option<Duration> {
        self.take_at(Instant::now(), n)
    }

    /// Take one token. `None` if there was one (or the balance is less than
    /// one [`THROTTLE_QUANTUM`] of frames in debt); otherwise how long to
    /// wait before acting on what it was taken for. The balance goes
    /// negative, so over time frames pass at exactly `rate` per second, and
    /// a throttled reader sleeps once per quantum, not once per frame.
    pub fn reserve(&mut self) -> Option<Duration> {
        self.reserve_at(Instant::now())
    }

    fn reserve_at(&mut self, now: Instant) -> Option<Duration> {
        self.take_at(now, 1.0)
    }

    fn take_at(&mut self, now: Instant, n: f64) -> Option<Duration> {
        if self.tokens < n {
            self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
            self.last = now;
        }
        self.tokens -= n;
        let slack = (self.rate * THROTTLE_QUANTUM.as_secs_f64()).max(1.0);
        (self.tokens < 1.0 - slack).then(|| Duration::from_secs_f64(-self.tokens / self.rate))
    }
}

/// At most `per_sec` lines in each one-second window; the rest are
/// suppressed and counted, and the count is handed out once per window so
/// the caller can say how many were lost.
pub struct LineBudget {
    per_sec: u32,
    window: Instant,
    count: u32,
    suppressed: u64,
}

/// What to do with one line.
pub struct Admit {
    pub keep: bool,
    /// Lines suppressed in the window that just closed (report them now).
    pub closed_window_suppressed: u64,
}

impl LineBudget {
    pub fn new(per_sec: u32) -> LineBudget {
        LineBudget { per_sec, window: Instant::now(), count: 0, suppressed: 0 }
    }

    pub fn admit(&mut self) -> Admit {
        let mut closed = 0;
        if self.window.elapsed() >= Duration::from_secs(1) {
            closed = self.take_suppressed();
            self.window = Instant::now();
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        let keep = self.count <= self.per_sec;
        if !keep {
            self.suppressed += 1;
        }
        Admit { keep, closed_window_suppressed: closed }
    }

    /// Suppressed lines not yet reported (call when the source ends).
    pub fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_budget_keeps_per_sec_and_counts_the_rest() {
        let mut b = LineBudget::new(3);
        let kept = (0..10).filter(|_| b.admit().keep).count();
        assert_eq!(kept, 3);
        assert_eq!(b.take_suppressed(), 7);
        assert_eq!(b.take_suppressed(), 0);
    }

    #[test]
    fn a_throttled_reader_sleeps_once_per_quantum_at_the_same_rate() {
        let mut t = TokenBucket::new(2000, 10);
        let start = t.last;
        let (mut now, mut sleeps) = (start, 0);
        for _ in 0..210 {
            if let Some(w) = t.reserve_at(now) {
                sleeps += 1;
                now += w;
            }
        }
        // 200 frames past the burst at 2,000/s take 100 ms, in sleeps of
        // one quantum (20 frames) each, not 200 sleeps.
        let took = now - start;
        assert!((9..=11).contains(&sleeps), "{sleeps} sleeps");
        assert!(took >= Duration::from_millis(90) && took <= Duration::from_millis(101), "{took:?}");
    }

    #[test]
    fn token_bucket_makes_frames_past_the_burst_wait_at_the_rate() {
        let mut t = TokenBucket::new(100, 5);
        assert_eq!((0..5).filter_map(|_| t.reserve()).count(), 0, "the burst passes at once");
        let waits: Vec<Duration> = (0..3).filter_map(|_| t.reserve()).collect();
        assert_eq!(waits.len(), 3);
        // The 6th waits 10 ms, the 8th 30 ms: one per 1/rate.
        assert!(waits[0] <= Duration::from_millis(10) && waits[2] > Duration::from_millis(25), "{waits:?}");
    }
}
