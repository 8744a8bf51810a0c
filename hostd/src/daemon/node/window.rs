//! The blocks of the node's active chain hostd remembers (the last
//! `[node] header_window`), and what a new tip means against them.
//!
//! The poller walks back from a new tip by previous-block hash until it
//! meets a block of this window (the fork point) — never trusting the
//! node's `confirmations` or `nextblockhash`, which blvm-node reports
//! wrongly for stale blocks. [`Window::apply`] turns that walk into the
//! events modules see: every abandoned block tip-first, then the reorg,
//! then every newly connected block in ascending height.

use hostd_protocol::Hash32;
use std::collections::{HashMap, VecDeque};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainChange {
    Disconnected { hash: Hash32, height: u64 },
    Reorg { old_tip: Hash32, new_tip: Hash32, fork_point: Option<Hash32>, fork_height: Option<u64>, depth: u64 },
    Connected { hash: Hash32, height: u64 },
}

pub struct Window {
    /// Ascending height, contiguous, each the parent of the next.
    blocks: VecDeque<(Hash32, u64)>,
    index: HashMap<Hash32, u64>,
    cap: usize,
}

impl Window {
    pub fn new(cap: usize) -> Window {
        Window { blocks: VecDeque::new(), index: HashMap::new(), cap: cap.max(1) }
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    pub fn tip(&self) -> Option<(Hash32, u64)> {
        self.blocks.back().copied()
    }

    pub fn lowest_height(&self) -> Option<u64> {
        self.blocks.front().map(|b| b.1)
    }

    pub fn contains(&self, hash: &Hash32) -> bool {
        self.index.contains_key(hash)
    }

    /// Forget everything (initial block download: the tip moves too fast
    /// for per-block events; the window is seeded again afterwards).
    pub fn clear(&mut self) {
        self.blocks.clear();
        self.index.clear();
    }

    /// Apply a walk from the new tip: `walked` holds the blocks the window
    /// does not have, tip first; `fork` is the window block the walk
    /// stopped at, `None` if it stopped without meeting one (window empty:
    /// a seed, no events; otherwise a reorg deeper than the window).
    pub fn apply(&mut self, walked: Vec<(Hash32, u64)>, fork: Option<Hash32>) -> Vec<ChainChange> {
        // An empty walk: the new tip is a block hostd already has below its
        // tip (the node's tip went back, e.g. `invalidateblock`).
        let Some(new_tip) = walked.first().map(|b| b.0).or(fork) else { return Vec::new() };
        let mut changes = Vec::new();
        let old_tip = self.tip();
        if fork.is_none() && self.blocks.is_empty() {
            self.connect_all(walked);
            return changes;
        }
        let fork_height = fork.and_then(|f| self.index.get(&f).copied());
        let mut depth = 0;
        while let Some(&(hash, height)) = self.blocks.back() {
            if fork_height.is_some_and(|f| height <= f) {
                break;
            }
            self.blocks.pop_back();
            self.index.remove(&hash);
            changes.push(ChainChange::Disconnected { hash, height });
            depth += 1;
        }
        if let (true, Some((old, _))) = (depth > 0, old_tip) {
            changes.push(ChainChange::Reorg { old_tip: old, new_tip, fork_point: fork, fork_height, depth });
        }
        for &(hash, height) in walked.iter().rev() {
            changes.push(ChainChange::Connected { hash, height });
        }
        self.connect_all(walked);
        changes
    }

    fn connect_all(&mut self, walked: Vec<(Hash32, u64)>) {
        for (hash, height) in walked.into_iter().rev() {
            self.blocks.push_back((hash, height));
            self.index.insert(hash, height);
        }
        while self.blocks.len() > self.cap {
            if let Some((h, _)) = self.blocks.pop_front() {
                self.index.remove(&h);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(branch: u8, height: u64) -> Hash32 {
        let mut x = [0u8; 32];
        x[0] = branch;
        x[1..9].copy_from_slice(&height.to_le_bytes());
        x
    }

    /// Blocks `from..=to` of a branch, tip first (as a walk returns them).
    fn walk(branch: u8, from: u64, to: u64) -> Vec<(Hash32, u64)> {
        (from..=to).rev().map(|n| (h(branch, n), n)).collect()
    }

    #[test]
    fn seed_then_extend_then_reorg() {
        let mut w = Window::new(10);
        assert!(w.apply(walk(0, 0, 5), None).is_empty(), "a seed publishes nothing");
        assert_eq!(w.tip(), Some((h(0, 5), 5)));
        let c = w.apply(walk(0, 6, 7), Some(h(0, 5)));
        assert_eq!(c, vec![ChainChange::Connected { hash: h(0, 6), height: 6 }, ChainChange::Connected { hash: h(0, 7), height: 7 }]);
        // Branch 1 forks at 5 and is longer: 7, 6 leave tip first, then the
        // reorg, then 6', 7', 8' ascending.
        let c = w.apply(walk(1, 6, 8), Some(h(0, 5)));
        assert_eq!(
            c,
            vec![
                ChainChange::Disconnected { hash: h(0, 7), height: 7 },
                ChainChange::Disconnected { hash: h(0, 6), height: 6 },
                ChainChange::Reorg { old_tip: h(0, 7), new_tip: h(1, 8), fork_point: Some(h(0, 5)), fork_height: Some(5), depth: 2 },
                ChainChange::Connected { hash: h(1, 6), height: 6 },
                ChainChange::Connected { hash: h(1, 7), height: 7 },
                ChainChange::Connected { hash: h(1, 8), height: 8 },
            ]
        );
        assert_eq!(w.tip(), Some((h(1, 8), 8)));
    }

    #[test]
    fn a_tip_that_goes_back_disconnects() {
        let mut w = Window::new(10);
        w.apply(walk(0, 0, 5), None);
        let c = w.apply(Vec::new(), Some(h(0, 3)));
        assert_eq!(
            c,
            vec![
                ChainChange::Disconnected { hash: h(0, 5), height: 5 },
                ChainChange::Disconnected { hash: h(0, 4), height: 4 },
                ChainChange::Reorg { old_tip: h(0, 5), new_tip: h(0, 3), fork_point: Some(h(0, 3)), fork_height: Some(3), depth: 2 },
            ]
        );
        assert_eq!(w.tip(), Some((h(0, 3), 3)));
    }

    #[test]
    fn window_is_capped_and_a_deeper_reorg_says_so() {
        let mut w = Window::new(4);
        w.apply(walk(0, 0, 9), None);
        assert_eq!(w.len(), 4);
        assert_eq!(w.lowest_height(), Some(6));
        let c = w.apply(walk(2, 3, 10), None);
        let disconnected = c.iter().filter(|x| matches!(x, ChainChange::Disconnected { .. })).count();
        assert_eq!(disconnected, 4, "every block hostd knew is reported abandoned");
        assert!(c.contains(&ChainChange::Reorg { old_tip: h(0, 9), new_tip: h(2, 10), fork_point: None, fork_height: None, depth: 4 }));
        assert_eq!(c.last(), Some(&ChainChange::Connected { hash: h(2, 10), height: 10 }));
        assert_eq!(w.len(), 4);
    }
}
