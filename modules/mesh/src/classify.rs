//! Traffic classes from the payload bytes alone. A sender's declared class
//! is only checked against this, never trusted.
//!
//! - Bitcoin P2P: one or more whole messages of one network (magic), each
//!   a known command, its exact length and a matching checksum
//!   (first 4 bytes of sha256d of the body).
//! - Governance: the same framing carrying Commons governance commands.
//! - Stratum V2: one or more whole unencrypted frames (extension type 0,
//!   channel bit allowed) whose message types are in the spec's tables for
//!   the Common, Mining, Job Declaration and Template Distribution
//!   protocols. Noise-encrypted SV2 is opaque and therefore paid.
//! - Everything else: paid.

use crate::identity::sha256d;
use mesh_api::TrafficClass;

/// Network magics as they appear on the wire.
pub const MAGICS: &[(&str, [u8; 4])] = &[
    ("mainnet", [0xf9, 0xbe, 0xb4, 0xd9]),
    ("testnet3", [0x0b, 0x11, 0x09, 0x07]),
    ("testnet4", [0x1c, 0x16, 0x3f, 0x28]),
    ("signet", [0x0a, 0x03, 0xcf, 0x40]),
    ("regtest", [0xfa, 0xbf, 0xb5, 0xda]),
];

/// Bitcoin Core's P2P commands (net_processing, BIP 37/130/133/152/155/157/339).
const BITCOIN_COMMANDS: &[&str] = &[
    "version", "verack", "addr", "addrv2", "sendaddrv2", "inv", "getdata", "merkleblock", "getblocks", "getheaders", "tx", "headers", "block",
    "getaddr", "mempool", "ping", "pong", "notfound", "filterload", "filteradd", "filterclear", "sendheaders", "feefilter", "sendcmpct",
    "cmpctblock", "getblocktxn", "blocktxn", "getcfilters", "cfilter", "getcfheaders", "cfheaders", "getcfcheckpt", "cfcheckpt", "wtxidrelay",
    "sendtxrcncl",
];

/// Commons governance commands, in Bitcoin P2P framing.
pub const GOVERNANCE_COMMANDS: &[&str] = &["govproposal", "govvote", "govresult", "govquery"];

/// Stratum V2 message types of extension 0 and their channel_msg bit, from
/// the spec's message-type table (sv2-spec 08-Message-Types).
const SV2_TYPES: &[(u8, bool)] = &[
    // Common
    (0x00, false), (0x01, false), (0x02, false), (0x03, true), (0x04, false),
    // Mining
    (0x10, false), (0x11, false), (0x12, false), (0x13, false), (0x14, false), (0x15, false), (0x16, true), (0x17, true), (0x18, true),
    (0x19, true), (0x1a, true), (0x1b, true), (0x1c, true), (0x1d, true), (0x1f, true), (0x20, true), (0x21, true), (0x22, false),
    (0x23, false), (0x24, false), (0x25, false),
    // Job Declaration
    (0x50, false), (0x51, false), (0x53, false), (0x54, false), (0x55, false), (0x56, false), (0x57, false), (0x58, false), (0x59, false),
    (0x60, true),
    // Template Distribution
    (0x70, false), (0x71, false), (0x72, false), (0x73, false), (0x74, false), (0x75, false), (0x76, false),
];

const HEADER: usize = 24;

/// Which commands a whole run of Bitcoin-framed messages carries.
#[derive(PartialEq, Eq)]
enum Framed {
    Bitcoin,
    Governance,
}

fn command_name(raw: &[u8]) -> Option<&str> {
    // ASCII, then NUL padding only.
    let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
    if end == 0 || raw[end..].iter().any(|b| *b != 0) || !raw[..end].iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return None;
    }
    std::str::from_utf8(&raw[..end]).ok()
}

fn bitcoin_framed(mut b: &[u8]) -> Option<Framed> {
    if b.len() < HEADER {
        return None;
    }
    let magic = &b[..4];
    MAGICS.iter().find(|(_, m)| m == magic)?;
    let mut kind = None;
    while !b.is_empty() {
        if b.len() < HEADER || &b[..4] != magic {
            return None;
        }
        let cmd = command_name(&b[4..16])?;
        let this = if BITCOIN_COMMANDS.contains(&cmd) {
            Framed::Bitcoin
        } else if GOVERNANCE_COMMANDS.contains(&cmd) {
            Framed::Governance
        } else {
            return None;
        };
        // Mixed runs are not one class.
        if kind.as_ref().is_some_and(|k| *k != this) {
            return None;
        }
        kind = Some(this);
        let len = u32::from_le_bytes([b[16], b[17], b[18], b[19]]) as usize;
        let body = b.get(HEADER..HEADER.checked_add(len)?)?;
        if sha256d(body)[..4] != b[20..24] {
            return None;
        }
        b = &b[HEADER + len..];
    }
    kind
}

fn stratum_v2(mut b: &[u8]) -> bool {
    if b.len() < 6 {
        return false;
    }
    while !b.is_empty() {
        if b.len() < 6 {
            return false;
        }
        let ext = u16::from_le_bytes([b[0], b[1]]);
        let channel = ext & 0x8000 != 0;
        let len = u32::from_le_bytes([b[3], b[4], b[5], 0]) as usize;
        if ext & 0x7fff != 0 || !SV2_TYPES.contains(&(b[2], channel)) || b.len() < 6 + len {
            return false;
        }
        b = &b[6 + len..];
    }
    true
}

pub fn classify(payload: &[u8]) -> TrafficClass {
    match bitcoin_framed(payload) {
        Some(Framed::Bitcoin) => TrafficClass::Bitcoin,
        Some(Framed::Governance) => TrafficClass::Governance,
        None if stratum_v2(payload) => TrafficClass::StratumV2,
        None => TrafficClass::Paid,
    }
}

/// A whole Bitcoin P2P message (tests, the CLI).
pub fn bitcoin_message(magic: [u8; 4], command: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(HEADER + body.len());
    m.extend_from_slice(&magic);
    let mut cmd = [0u8; 12];
    let n = command.len().min(12);
    cmd[..n].copy_from_slice(&command.as_bytes()[..n]);
    m.extend_from_slice(&cmd);
    m.extend_from_slice(&(body.len() as u32).to_le_bytes());
    m.extend_from_slice(&sha256d(body)[..4]);
    m.extend_from_slice(body);
    m
}

/// A Stratum V2 frame (tests, the CLI).
pub fn sv2_frame(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let channel = SV2_TYPES.iter().any(|(t, c)| *t == msg_type && *c);
    let mut f = vec![0, if channel { 0x80 } else { 0 }, msg_type];
    f.extend_from_slice(&(body.len() as u32).to_le_bytes()[..3]);
    f.extend_from_slice(body);
    f
}

pub fn magic(network: &str) -> Option<[u8; 4]> {
    MAGICS.iter().find(|(n, _)| *n == network).map(|(_, m)| *m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_come_from_whole_valid_frames_only() {
        let regtest = magic("regtest").unwrap();
        let ping = bitcoin_message(regtest, "ping", &7u64.to_le_bytes());
        let cases: Vec<(&str, Vec<u8>, TrafficClass)> = vec![
            ("regtest ping", ping.clone(), TrafficClass::Bitcoin),
            ("two messages", [ping.clone(), bitcoin_message(regtest, "pong", &7u64.to_le_bytes())].concat(), TrafficClass::Bitcoin),
            ("bad checksum", {
                let mut p = ping.clone();
                p[20] ^= 1;
                p
            }, TrafficClass::Paid),
            ("truncated body", ping[..ping.len() - 1].to_vec(), TrafficClass::Paid),
            ("trailing byte", [ping.clone(), vec![0]].concat(), TrafficClass::Paid),
            ("unknown command", bitcoin_message(regtest, "hello", b""), TrafficClass::Paid),
            ("unknown magic", bitcoin_message([1, 2, 3, 4], "ping", b""), TrafficClass::Paid),
            ("mixed networks", [ping.clone(), bitcoin_message(magic("mainnet").unwrap(), "ping", b"")].concat(), TrafficClass::Paid),
            ("governance", bitcoin_message(magic("signet").unwrap(), "govvote", b"yes"), TrafficClass::Governance),
            ("mixed governance", [ping.clone(), bitcoin_message(regtest, "govvote", b"")].concat(), TrafficClass::Paid),
            ("sv2 setup", sv2_frame(0x00, b"abc"), TrafficClass::StratumV2),
            ("sv2 two frames", [sv2_frame(0x1a, b"x"), sv2_frame(0x71, b"")].concat(), TrafficClass::StratumV2),
            ("sv2 unknown type", sv2_frame(0x0f, b"x"), TrafficClass::Paid),
            ("sv2 reserved type", sv2_frame(0x1e, b"x"), TrafficClass::Paid),
            ("sv2 wrong channel bit", {
                let mut f = sv2_frame(0x1a, b"x");
                f[1] = 0;
                f
            }, TrafficClass::Paid),
            ("sv2 bad length", {
                let mut f = sv2_frame(0x10, b"xy");
                f.pop();
                f
            }, TrafficClass::Paid),
            ("first bytes 0x0100 only", vec![0x01, 0x00, 0xaa, 0xbb], TrafficClass::Paid),
            ("empty", vec![], TrafficClass::Paid),
            ("text", b"hello mesh".to_vec(), TrafficClass::Paid),
        ];
        for (what, bytes, want) in cases {
            assert_eq!(classify(&bytes), want, "{what}");
        }
    }
}
