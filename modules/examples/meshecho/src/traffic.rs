//! The frames meshecho sends and checks: numbered data frames whose
//! bytes follow from their number (so a receiver can check every byte and
//! the order), and benchmark probes carrying their send time.

use std::time::Instant;

pub const DATA: u8 = 1;
pub const PROBE: u8 = 2;
/// Kind byte, sequence number, whole length (a truncated frame is caught).
pub const HEAD: usize = 13;

fn fill(seq: u64, body: &mut [u8]) {
    let base = (seq as u8).wrapping_mul(31);
    for (j, b) in body.iter_mut().enumerate() {
        *b = base.wrapping_add(j as u8);
    }
}

/// Data frame `seq` of `size` bytes (at least the header).
pub fn data(seq: u64, size: usize) -> Vec<u8> {
    let mut f = vec![0u8; size.max(HEAD)];
    f[0] = DATA;
    f[1..9].copy_from_slice(&seq.to_le_bytes());
    let len = f.len() as u32;
    f[9..HEAD].copy_from_slice(&len.to_le_bytes());
    fill(seq, &mut f[HEAD..]);
    f
}

/// The sequence number of a well-formed data frame.
pub fn check_data(f: &[u8]) -> Option<u64> {
    if f.len() < HEAD || f[0] != DATA {
        return None;
    }
    let seq = u64::from_le_bytes(f[1..9].try_into().ok()?);
    if u32::from_le_bytes(f[9..HEAD].try_into().ok()?) as usize != f.len() {
        return None;
    }
    let mut want = vec![0u8; f.len() - HEAD];
    fill(seq, &mut want);
    (want == f[HEAD..]).then_some(seq)
}

/// A probe sent now, padded to `size`.
pub fn probe(seq: u64, size: usize, clock: Instant) -> Vec<u8> {
    let mut f = vec![0u8; size.max(HEAD + 8)];
    f[0] = PROBE;
    f[1..9].copy_from_slice(&seq.to_le_bytes());
    f[HEAD..HEAD + 8].copy_from_slice(&(clock.elapsed().as_nanos() as u64).to_le_bytes());
    f
}

/// Microseconds since a probe of ours was sent.
pub fn probe_age_us(f: &[u8], clock: Instant) -> Option<u64> {
    if f.len() < HEAD + 8 || f[0] != PROBE {
        return None;
    }
    let sent = u64::from_le_bytes(f[HEAD..HEAD + 8].try_into().ok()?);
    Some((clock.elapsed().as_nanos() as u64).saturating_sub(sent) / 1000)
}

/// The value at quantile `q` of sorted `v`.
pub fn quantile(v: &[u64], q: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v[((v.len() - 1) as f64 * q).round() as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_frames_check_and_any_changed_byte_is_caught() {
        let f = data(77, 300);
        assert_eq!(check_data(&f), Some(77));
        for i in [0, 3, HEAD, 299] {
            let mut bad = f.clone();
            bad[i] ^= 1;
            assert_ne!(check_data(&bad), Some(77), "byte {i}");
        }
        assert_eq!(check_data(&f[..200]), None, "a truncated frame is not the frame");
    }
}
