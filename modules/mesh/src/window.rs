//! Per-source sliding sequence window at the destination (as IPsec's
//! anti-replay window): the highest sequence seen and a bitmap of the
//! `WINDOW` below it. A sequence at or below `highest - WINDOW`, or one
//! already marked, is a replay. The window is persisted before the packet
//! is delivered, so a restart does not reopen it.

pub const WINDOW: u64 = 1024;
const WORDS: usize = (WINDOW / 64) as usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Below the window: too old to tell, so refused.
    TooOld,
    /// Seen before.
    Seen,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SeqWindow {
    /// 0: nothing seen (sequences start at 1).
    pub highest: u64,
    /// Bit i: `highest - i` seen.
    bits: [u64; WORDS],
    /// When the window last moved (unix ms), for pruning.
    pub last_ms: u64,
}

impl SeqWindow {
    fn get(&self, i: u64) -> bool {
        self.bits[(i / 64) as usize] >> (i % 64) & 1 == 1
    }

    fn set(&mut self, i: u64) {
        self.bits[(i / 64) as usize] |= 1 << (i % 64);
    }

    fn shift(&mut self, by: u64) {
        if by >= WINDOW {
            self.bits = [0; WORDS];
            return;
        }
        let (words, rem) = ((by / 64) as usize, by % 64);
        let mut out = [0u64; WORDS];
        for (i, slot) in out.iter_mut().enumerate().skip(words) {
            let src = i - words;
            let mut v = self.bits[src] << rem;
            if rem != 0 && src > 0 {
                v |= self.bits[src - 1] >> (64 - rem);
            }
            *slot = v;
        }
        self.bits = out;
    }

    /// Everything up to `highest` counted as seen: what a destination
    /// assumes after a crash, up to the sequence it had reserved.
    pub fn all_seen(highest: u64, now_ms: u64) -> SeqWindow {
        SeqWindow { highest, bits: [u64::MAX; WORDS], last_ms: now_ms }
    }

    /// Whether `seq` would be accepted (nothing changes).
    pub fn check(&self, seq: u64) -> Result<(), Replay> {
        if seq == 0 {
            return Err(Replay::TooOld);
        }
        if seq > self.highest {
            return Ok(());
        }
        let back = self.highest - seq;
        if back >= WINDOW {
            Err(Replay::TooOld)
        } else if self.get(back) {
            Err(Replay::Seen)
        } else {
            Ok(())
        }
    }

    /// Accept `seq` if it is new, and mark it.
    pub fn accept(&mut self, seq: u64, now_ms: u64) -> Result<(), Replay> {
        self.check(seq)?;
        if seq > self.highest {
            self.shift(seq - self.highest);
            self.highest = seq;
            self.set(0);
        } else {
            self.set(self.highest - seq);
        }
        self.last_ms = now_ms;
        Ok(())
    }

    pub const ENCODED: usize = 8 + 8 * WORDS + 8;

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(SeqWindow::ENCODED);
        v.extend_from_slice(&self.highest.to_be_bytes());
        for w in &self.bits {
            v.extend_from_slice(&w.to_be_bytes());
        }
        v.extend_from_slice(&self.last_ms.to_be_bytes());
        v
    }

    pub fn decode(b: &[u8]) -> Option<SeqWindow> {
        if b.len() != SeqWindow::ENCODED {
            return None;
        }
        let word = |i: usize| u64::from_be_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        let mut w = SeqWindow { highest: word(0), last_ms: word(1 + WORDS), ..SeqWindow::default() };
        for i in 0..WORDS {
            w.bits[i] = word(1 + i);
        }
        Some(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_sequences_pass_once_in_any_order_within_the_window() {
        let mut w = SeqWindow::default();
        assert_eq!(w.accept(0, 1), Err(Replay::TooOld));
        for s in [5, 3, 4, 1, 2] {
            assert_eq!(w.accept(s, 1), Ok(()), "{s}");
        }
        for s in 1..=5 {
            assert_eq!(w.accept(s, 1), Err(Replay::Seen), "{s}");
        }
        assert_eq!(w.accept(5 + 70, 1), Ok(()));
        assert_eq!(w.accept(6, 1), Ok(()), "still inside after a shift across words");
        assert_eq!(w.accept(3, 1), Err(Replay::Seen), "bits carried across words");
        assert_eq!(w.accept(10_000, 1), Ok(()));
        assert_eq!(w.accept(10_000 - WINDOW, 1), Err(Replay::TooOld));
        assert_eq!(w.accept(10_000 - WINDOW + 1, 1), Ok(()));
        assert_eq!(w.accept(u64::MAX, 1), Ok(()));
        assert_eq!(w.accept(u64::MAX, 1), Err(Replay::Seen));
    }

    #[test]
    fn after_a_crash_everything_reserved_is_refused() {
        let w = SeqWindow::all_seen(5000, 1);
        assert_eq!(w.check(5000), Err(Replay::Seen));
        assert_eq!(w.check(4000), Err(Replay::Seen));
        assert_eq!(w.check(1), Err(Replay::TooOld));
        assert_eq!(w.check(5001), Ok(()));
    }

    #[test]
    fn the_window_survives_encoding() {
        let mut w = SeqWindow::default();
        for s in [1, 2, 3, 200, 150, 1000] {
            w.accept(s, 42).unwrap();
        }
        let back = SeqWindow::decode(&w.encode()).unwrap();
        assert_eq!(back, w);
        for s in [1, 2, 3, 200, 150, 1000] {
            assert_eq!(back.check(s), Err(Replay::Seen));
        }
        assert_eq!(back.check(151), Ok(()));
        assert!(SeqWindow::decode(&[0; 3]).is_none());
    }
}
