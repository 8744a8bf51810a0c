//! What meshping sends: numbered, checksummed payloads the receiver can
//! verify, and timestamped probes for round trips.
//!
//! `MPNG | kind u8 | seq u64 | sent_us u64 | filler | fnv64 of all before`

pub const DATA: u8 = 0;
pub const PROBE: u8 = 1;
pub const ECHO: u8 = 2;
const HEAD: usize = 4 + 1 + 8 + 8;
pub const MIN: usize = HEAD + 8;

fn fnv64(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| (h ^ u64::from(*x)).wrapping_mul(0x0000_0100_0000_01b3))
}

pub fn make(kind: u8, seq: u64, sent_us: u64, size: usize) -> Vec<u8> {
    let size = size.max(MIN);
    let mut v = Vec::with_capacity(size);
    v.extend_from_slice(b"MPNG");
    v.push(kind);
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&sent_us.to_be_bytes());
    v.extend((0..size - MIN).map(|i| (seq as usize + i) as u8));
    let sum = fnv64(&v);
    v.extend_from_slice(&sum.to_be_bytes());
    v
}

/// (kind, seq, sent_us) of an intact payload.
pub fn check(b: &[u8]) -> Option<(u8, u64, u64)> {
    if b.len() < MIN || &b[..4] != b"MPNG" {
        return None;
    }
    let (body, sum) = b.split_at(b.len() - 8);
    if fnv64(body).to_be_bytes() != sum {
        return None;
    }
    let n = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
    Some((b[4], n(5), n(13)))
}

/// Turn a probe into its echo (same bytes, kind and checksum changed).
pub fn echo_of(b: &[u8]) -> Option<Vec<u8>> {
    let (kind, seq, sent) = check(b)?;
    (kind == PROBE).then(|| make(ECHO, seq, sent, b.len()))
}

pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}
