//! The fee split, in whole sats that always add up to the fee F
//! (seed 003: 60% destination, 30% routers, 10% treasury):
//!
//! - treasury = ⌊F / 10⌋;
//! - routers = ⌊3F / 10⌋ when the path has routers, else 0 (nothing is lost
//!   when there are none: it stays with the destination);
//! - destination = F − treasury − routers (every rounding remainder);
//! - the routers' share goes equally to each distinct *entity* on the path,
//!   then equally to that entity's routers; leftover sats go one each in
//!   path order (an entity's place is where it first appears). With every
//!   router its own entity this is "proportional to hops"; a path through
//!   several routers of one operator earns that operator one share, which
//!   is how the split favours decentralised paths.

/// Who receives what, in sats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub treasury: u64,
    pub destination: u64,
    /// Per router, in path order.
    pub routers: Vec<u64>,
}

impl Split {
    pub fn total(&self) -> u128 {
        u128::from(self.treasury) + u128::from(self.destination) + self.routers.iter().map(|r| u128::from(*r)).sum::<u128>()
    }
}

/// `a` split into `n` parts differing by at most one, larger ones first.
fn even(a: u64, n: usize) -> impl Iterator<Item = u64> {
    let n64 = n.max(1) as u64;
    let (each, extra) = (a / n64, (a % n64) as usize);
    (0..n).map(move |i| each + u64::from(i < extra))
}

/// Split fee `f` over a path whose router `i` belongs to `entities[i]`.
pub fn split<E: PartialEq>(f: u64, entities: &[E]) -> Split {
    // F / 10 and 3F / 10 without overflow for any u64.
    let treasury = f / 10;
    let routers_total = if entities.is_empty() { 0 } else { f / 10 * 3 + (f % 10) * 3 / 10 };
    let destination = f - treasury - routers_total;
    // Distinct entities in order of first appearance.
    let mut distinct: Vec<&E> = Vec::new();
    for e in entities {
        if !distinct.contains(&e) {
            distinct.push(e);
        }
    }
    let mut routers = vec![0u64; entities.len()];
    for (entity, amount) in distinct.iter().zip(even(routers_total, distinct.len())) {
        let members: Vec<usize> = (0..entities.len()).filter(|i| &&entities[*i] == entity).collect();
        for (i, share) in members.iter().zip(even(amount, members.len())) {
            routers[*i] = share;
        }
    }
    Split { treasury, destination, routers }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_split_and_its_edge_cases() {
        let s = split(100, &["a", "b", "c"]);
        assert_eq!((s.treasury, s.destination, s.routers.clone()), (10, 60, vec![10, 10, 10]));
        let s = split(100, &[] as &[&str]);
        assert_eq!((s.treasury, s.destination), (10, 90), "no routers: their 30% stays with the destination");
        let s = split(7, &["a", "b"]);
        assert_eq!((s.treasury, s.routers.clone(), s.destination), (0, vec![1, 1], 5), "⌊21/10⌋ = 2 for routers");
        let s = split(100, &["x", "x", "y"]);
        assert_eq!(s.routers, vec![8, 7, 15], "one share per entity, then per router");
        let s = split(u64::MAX, &["a"]);
        assert_eq!(s.total(), u128::from(u64::MAX), "no overflow at the top");
    }

    /// Property: over F in [0, 10^6], 0–10 routers and random entity maps,
    /// shares sum to exactly F, treasury = ⌊F/10⌋, routers get ⌊3F/10⌋ or
    /// nothing, entities' shares differ by ≤ 1 sat, and so do the routers'
    /// within an entity.
    #[test]
    fn shares_always_add_up_and_same_kind_shares_differ_by_at_most_one() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for case in 0..200_000u64 {
            let f = if case < 1000 { case } else { next() % 1_000_001 };
            let n = (next() % 11) as usize;
            let kinds = 1 + next() % 4;
            let entities: Vec<u64> = (0..n).map(|_| next() % kinds).collect();
            let s = split(f, &entities);
            assert_eq!(s.total(), u128::from(f), "F {f} entities {entities:?}: {s:?}");
            assert_eq!(s.treasury, f / 10);
            let routers: u64 = s.routers.iter().sum();
            assert_eq!(routers, if n == 0 { 0 } else { 3 * f / 10 }, "F {f}");
            let mut per_entity: Vec<(u64, u64)> = Vec::new();
            for (e, r) in entities.iter().zip(&s.routers) {
                match per_entity.iter_mut().find(|(k, _)| k == e) {
                    Some((_, sum)) => *sum += r,
                    None => per_entity.push((*e, *r)),
                }
                let same: Vec<u64> = entities.iter().zip(&s.routers).filter(|(k, _)| *k == e).map(|(_, r)| *r).collect();
                let (lo, hi) = (same.iter().min().copied().unwrap_or(0), same.iter().max().copied().unwrap_or(0));
                assert!(hi - lo <= 1, "routers of one entity: {same:?}");
            }
            let sums: Vec<u64> = per_entity.iter().map(|(_, s)| *s).collect();
            if let (Some(lo), Some(hi)) = (sums.iter().min(), sums.iter().max()) {
                assert!(hi - lo <= 1, "entities: {sums:?} for F {f} {entities:?}");
            }
        }
    }
}
