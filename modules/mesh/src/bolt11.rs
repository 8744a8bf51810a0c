//! BOLT11 Lightning invoices: read (checksum, amount, fields, signature
//! and payee key) and write (signed with a secret key, RFC 6979 nonces, so
//! the same fields and key give the same string). Only what Commons Mesh
//! needs is typed: payment hash, description hash, payment secret, payee,
//! expiry and timestamp; every other field is kept as read, so a decoded
//! invoice re-encodes exactly (the spec's own vectors prove it).

use crate::bech32::{self, Bech32Error};
use crate::identity::sha256;
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, PublicKey, SecretKey};

/// Longest invoice accepted: real ones are a few hundred characters.
pub const MAX_INVOICE: usize = 2048;
/// BOLT11's default expiry when an invoice has no `x` field.
pub const DEFAULT_EXPIRY_SECS: u64 = 3600;

const F_PAYMENT_HASH: u8 = 1;
const F_EXPIRY: u8 = 6;
const F_DESCRIPTION: u8 = 13;
const F_PAYMENT_SECRET: u8 = 16;
const F_PAYEE: u8 = 19;
const F_DESCRIPTION_HASH: u8 = 23;
const F_FEATURES: u8 = 5;
/// Signature: 520 bits = 104 groups of 5.
const SIG_GROUPS: usize = 104;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Currency {
    Bitcoin,
    Testnet,
    Signet,
    Regtest,
}

impl Currency {
    pub fn prefix(self) -> &'static str {
        match self {
            Currency::Bitcoin => "bc",
            Currency::Testnet => "tb",
            Currency::Signet => "tbs",
            Currency::Regtest => "bcrt",
        }
    }

    fn from_prefix(p: &str) -> Option<Currency> {
        [Currency::Bitcoin, Currency::Testnet, Currency::Signet, Currency::Regtest].into_iter().find(|c| c.prefix() == p)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Bolt11Error {
    #[error("longer than {MAX_INVOICE} characters")]
    TooLong,
    #[error(transparent)]
    Bech32(#[from] Bech32Error),
    #[error("the prefix {0:?} is not ln + bc/tb/tbs/bcrt + amount")]
    BadPrefix(String),
    #[error("bad amount {0:?}")]
    BadAmount(String),
    #[error("the data part is cut short")]
    Truncated,
    #[error("no payment hash")]
    NoPaymentHash,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the signature's key differs from the payee field")]
    PayeeMismatch,
}

/// What an issuer signs: everything but the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsigned {
    pub currency: Currency,
    pub amount_msat: Option<u64>,
    /// Unix seconds (35 bits).
    pub timestamp: u64,
    /// Tagged fields as (type, 5-bit data), in order.
    pub fields: Vec<(u8, Vec<u8>)>,
}

/// A read invoice whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub unsigned: Unsigned,
    pub payment_hash: [u8; 32],
    pub description_hash: Option<[u8; 32]>,
    pub payment_secret: Option<[u8; 32]>,
    pub description: Option<String>,
    pub expiry_secs: u64,
    /// The compressed key that signed it.
    pub payee: [u8; 33],
}

impl Invoice {
    pub fn amount_msat(&self) -> Option<u64> {
        self.unsigned.amount_msat
    }
    pub fn timestamp(&self) -> u64 {
        self.unsigned.timestamp
    }
    /// Unix seconds after which it must not be paid or accepted.
    pub fn expires_at(&self) -> u64 {
        self.unsigned.timestamp.saturating_add(self.expiry_secs)
    }
    /// The payee's x-only key (what a Commons Mesh NodeId is).
    pub fn payee_x_only(&self) -> [u8; 32] {
        let mut x = [0u8; 32];
        x.copy_from_slice(&self.payee[1..]);
        x
    }
}

fn amount_text(msat: u64) -> String {
    // The shortest exact form: BTC, milli, micro, nano, then pico (1 msat = 10 pico).
    for (div, suffix) in [(100_000_000_000u64, ""), (100_000_000, "m"), (100_000, "u"), (100, "n")] {
        if msat % div == 0 {
            return format!("{}{suffix}", msat / div);
        }
    }
    format!("{}0p", msat)
}

fn parse_amount(s: &str) -> Result<u64, Bolt11Error> {
    let bad = || Bolt11Error::BadAmount(s.to_string());
    let (digits, unit) = match s.as_bytes().last() {
        Some(c) if c.is_ascii_alphabetic() => (&s[..s.len() - 1], Some(*c)),
        _ => (s, None),
    };
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    match unit {
        None => n.checked_mul(100_000_000_000),
        Some(b'm') => n.checked_mul(100_000_000),
        Some(b'u') => n.checked_mul(100_000),
        Some(b'n') => n.checked_mul(100),
        Some(b'p') if n % 10 == 0 => Some(n / 10),
        _ => None,
    }
    .ok_or_else(bad)
}

fn int_groups(mut v: u64) -> Vec<u8> {
    let mut g = Vec::new();
    while v > 0 {
        g.push((v & 31) as u8);
        v >>= 5;
    }
    g.reverse();
    g
}

fn groups_int(g: &[u8]) -> Option<u64> {
    if g.len() > 12 {
        return None;
    }
    Some(g.iter().fold(0u64, |acc, v| (acc << 5) | u64::from(*v)))
}

fn bytes32(g: &[u8]) -> Option<[u8; 32]> {
    if g.len() != 52 {
        return None;
    }
    bech32::regroup(g, 5, 8, false).get(..32)?.try_into().ok()
}

impl Unsigned {
    /// A Commons Mesh quote: payment hash, payment secret, description
    /// hash, expiry, and the feature bits Lightning payers require
    /// (var_onion_optin, payment_secret).
    pub fn new(currency: Currency, amount_msat: u64, timestamp: u64, payment_hash: [u8; 32], payment_secret: [u8; 32], description_hash: [u8; 32], expiry_secs: u64) -> Unsigned {
        let hash = |h: &[u8; 32]| bech32::regroup(h, 8, 5, true);
        Unsigned {
            currency,
            amount_msat: Some(amount_msat),
            timestamp,
            fields: vec![
                (F_PAYMENT_SECRET, hash(&payment_secret)),
                (F_PAYMENT_HASH, hash(&payment_hash)),
                (F_DESCRIPTION_HASH, hash(&description_hash)),
                (F_EXPIRY, int_groups(expiry_secs)),
                (F_FEATURES, int_groups((1 << 14) | (1 << 8))),
            ],
        }
    }

    fn hrp(&self) -> String {
        format!("ln{}{}", self.currency.prefix(), self.amount_msat.map(amount_text).unwrap_or_default())
    }

    fn data(&self) -> Vec<u8> {
        let mut d = Vec::new();
        for i in (0..7).rev() {
            d.push(((self.timestamp >> (5 * i)) & 31) as u8);
        }
        for (tag, g) in &self.fields {
            d.extend_from_slice(&[*tag, (g.len() >> 5) as u8 & 31, g.len() as u8 & 31]);
            d.extend_from_slice(g);
        }
        d
    }

    fn digest(hrp: &str, data: &[u8]) -> Message {
        let mut m = hrp.as_bytes().to_vec();
        m.extend_from_slice(&bech32::regroup(data, 5, 8, true));
        Message::from_digest(sha256(&m))
    }

    /// The invoice string, signed with `key`.
    pub fn sign(&self, key: &SecretKey) -> String {
        let (hrp, mut data) = (self.hrp(), self.data());
        let sig = RecoverableSignature::sign_ecdsa_recoverable(Self::digest(&hrp, &data), key);
        let (recid, compact) = sig.serialize_compact();
        let mut sig_bytes = compact.to_vec();
        sig_bytes.push(u8::from(recid));
        data.extend_from_slice(&bech32::regroup(&sig_bytes, 8, 5, true));
        bech32::encode(&hrp, &data)
    }
}

/// Read `s` and check its signature.
pub fn decode(s: &str) -> Result<Invoice, Bolt11Error> {
    if s.len() > MAX_INVOICE {
        return Err(Bolt11Error::TooLong);
    }
    let (hrp, data) = bech32::decode(s)?;
    let rest = hrp.strip_prefix("ln").ok_or_else(|| Bolt11Error::BadPrefix(hrp.clone()))?;
    let split = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
    let currency = Currency::from_prefix(&rest[..split]).ok_or_else(|| Bolt11Error::BadPrefix(hrp.clone()))?;
    let amount_msat = if split == rest.len() { None } else { Some(parse_amount(&rest[split..])?) };
    if data.len() < 7 + SIG_GROUPS {
        return Err(Bolt11Error::Truncated);
    }
    let (body, sig_groups) = data.split_at(data.len() - SIG_GROUPS);
    let timestamp = groups_int(&body[..7]).ok_or(Bolt11Error::Truncated)?;
    let mut fields = Vec::new();
    let mut at = 7;
    while at < body.len() {
        let head = body.get(at..at + 3).ok_or(Bolt11Error::Truncated)?;
        let len = (usize::from(head[1]) << 5) | usize::from(head[2]);
        let g = body.get(at + 3..at + 3 + len).ok_or(Bolt11Error::Truncated)?;
        fields.push((head[0], g.to_vec()));
        at += 3 + len;
    }
    let sig_bytes = bech32::regroup(sig_groups, 5, 8, false);
    let recid = RecoveryId::try_from(i32::from(sig_bytes[64])).map_err(|_| Bolt11Error::BadSignature)?;
    let sig = RecoverableSignature::from_compact(&sig_bytes[..64], recid).map_err(|_| Bolt11Error::BadSignature)?;
    let msg = Unsigned::digest(&hrp, body);
    let key = sig.recover_ecdsa(msg).map_err(|_| Bolt11Error::BadSignature)?;
    // Recovery accepts high-S twins; a standard verify does not.
    sig.to_standard().verify(msg, &key).map_err(|_| Bolt11Error::BadSignature)?;
    let payee = key.serialize();
    // BOLT11: a known field of the wrong length is skipped; the first valid one counts.
    let first = |tag: u8| fields.iter().filter(|(t, _)| *t == tag).find_map(|(_, g)| bytes32(g));
    let payment_hash = first(F_PAYMENT_HASH).ok_or(Bolt11Error::NoPaymentHash)?;
    let description_hash = first(F_DESCRIPTION_HASH);
    let payment_secret = first(F_PAYMENT_SECRET);
    let expiry_secs = fields.iter().find(|(t, _)| *t == F_EXPIRY).and_then(|(_, g)| groups_int(g)).unwrap_or(DEFAULT_EXPIRY_SECS);
    let description = fields.iter().find(|(t, _)| *t == F_DESCRIPTION).and_then(|(_, g)| String::from_utf8(bech32::regroup(g, 5, 8, false)).ok());
    if let Some((_, g)) = fields.iter().find(|(t, g)| *t == F_PAYEE && g.len() == 53) {
        let named = PublicKey::from_slice(&bech32::regroup(g, 5, 8, false)[..33]).map_err(|_| Bolt11Error::PayeeMismatch)?;
        if named != key {
            return Err(Bolt11Error::PayeeMismatch);
        }
    }
    Ok(Invoice { unsigned: Unsigned { currency, amount_msat, timestamp, fields }, payment_hash, description_hash, payment_secret, description, expiry_secs, payee })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex<const N: usize>(s: &str) -> [u8; N] {
        mesh_api::parse_hex(s).unwrap()
    }

    // BOLT11's examples (lightning/bolts 11-payment-encoding.md), signed
    // with the spec's key.
    const SPEC_KEY: &str = "e126f68f7eafcc8b74f54d269fe206be715000f94dac067d1c04a8ca3b2db734";
    const SPEC_PAYEE: &str = "03e7156ae33b0a208d0744199163177e909e80176e55d97a2f221ede0f934dd9ad";
    const DONATION: &str = "lnbc1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpl2pkx2ctnv5sxxmmwwd5kgetjypeh2ursdae8g6twvus8g6rfwvs8qun0dfjkxaq9qrsgq357wnc5r2ueh7ck6q93dj32dlqnls087fxdwk8qakdyafkq3yap9us6v52vjjsrvywa6rt52cm9r9zqt8r2t7mlcwspyetp5h2tztugp9lfyql";
    const COFFEE: &str = "lnbc2500u1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpu9qrsgquk0rl77nj30yxdy8j9vdx85fkpmdla2087ne0xh8nhedh8w27kyke0lp53ut353s06fv3qfegext0eh0ymjpf39tuven09sam30g4vgpfna3rh";

    fn spec_key() -> SecretKey {
        SecretKey::from_secret_bytes(unhex::<32>(SPEC_KEY)).unwrap()
    }

    #[test]
    fn the_spec_vectors_read_and_re_sign_to_the_same_string() {
        let mut hash = [0u8; 32];
        for (i, h) in hash.iter_mut().enumerate() {
            *h = (i % 10) as u8;
        }
        hash[30..].copy_from_slice(&[1, 2]);
        let d = decode(DONATION).unwrap();
        assert_eq!((d.amount_msat(), d.timestamp(), d.payment_hash, d.payee), (None, 1_496_314_658, hash, unhex::<33>(SPEC_PAYEE)));
        assert_eq!(d.description.as_deref(), Some("Please consider supporting this project"));
        assert_eq!(d.payment_secret, Some([0x11; 32]));
        assert_eq!(d.expiry_secs, DEFAULT_EXPIRY_SECS);
        let c = decode(COFFEE).unwrap();
        assert_eq!((c.amount_msat(), c.expiry_secs, c.description.as_deref()), (Some(250_000_000), 60, Some("1 cup coffee")));
        assert_eq!(c.expires_at(), 1_496_314_658 + 60);
        // RFC 6979: our writer reproduces the spec's signatures byte for byte.
        assert_eq!(d.unsigned.sign(&spec_key()), DONATION);
        assert_eq!(c.unsigned.sign(&spec_key()), COFFEE);
        assert_eq!(decode(&COFFEE.to_ascii_uppercase()).unwrap(), c);
    }

    #[test]
    fn amounts_round_trip_in_every_unit() {
        for msat in [1u64, 10, 1000, 123_456_789, 100_000, 100_000_000, 100_000_000_000, 250_000_000, u64::MAX / 1000] {
            let u = Unsigned::new(Currency::Regtest, msat, 1_700_000_000, [7; 32], [8; 32], [9; 32], 600);
            let s = u.sign(&spec_key());
            let inv = decode(&s).unwrap_or_else(|e| panic!("{msat} msat → {s}: {e}"));
            assert_eq!((inv.amount_msat(), inv.expiry_secs, inv.description_hash, inv.payment_hash), (Some(msat), 600, Some([9; 32]), [7; 32]));
            assert_eq!(inv.payee, unhex::<33>(SPEC_PAYEE));
        }
        assert!(parse_amount("025u").is_err() && parse_amount("11p").is_err() && parse_amount("u").is_err());
        assert!(parse_amount("99999999999999999999").is_err());
    }

    #[test]
    fn tampering_anywhere_is_refused() {
        let s = Unsigned::new(Currency::Regtest, 5000, 1_700_000_000, [7; 32], [8; 32], [9; 32], 600).sign(&spec_key());
        // Every single-character change: a checksum error, or (if the
        // checksum were recomputed) a different signer.
        for at in [s.len() - 1, s.len() - 30, s.find('1').unwrap() + 10] {
            let mut b = s.clone().into_bytes();
            b[at] = if b[at] == b'q' { b'p' } else { b'q' };
            assert!(decode(std::str::from_utf8(&b).unwrap()).is_err());
        }
        let (hrp, mut data) = bech32::decode(&s).unwrap();
        data[20] ^= 1;
        match decode(&bech32::encode(&hrp, &data)) {
            Ok(inv) => assert_ne!(inv.payee, unhex::<33>(SPEC_PAYEE), "a changed field must change the signer"),
            Err(e) => assert_eq!(e, Bolt11Error::BadSignature),
        }
        assert_eq!(decode(&"x".repeat(MAX_INVOICE + 1)), Err(Bolt11Error::TooLong));
        assert!(decode("lnxx1qqqqqqqq").is_err());
    }
}
