//! Bech32 (BIP-173) as BOLT11 uses it: the original checksum constant and
//! no 90-character limit (invoices are longer); the caller bounds the
//! length instead.

const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const GEN: [u32; 5] = [0x3b6a_57b2, 0x2650_8e6d, 0x1ea1_19fa, 0x3d42_33dd, 0x2a14_62b3];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Bech32Error {
    #[error("mixed upper and lower case")]
    MixedCase,
    #[error("no '1' separator")]
    NoSeparator,
    #[error("character {0:?} is not in the bech32 alphabet")]
    BadChar(char),
    #[error("the checksum does not match")]
    BadChecksum,
    #[error("too short")]
    TooShort,
}

fn polymod(values: impl Iterator<Item = u8>) -> u32 {
    let mut chk: u32 = 1;
    for v in values {
        let top = chk >> 25;
        chk = ((chk & 0x01ff_ffff) << 5) ^ u32::from(v);
        for (i, g) in GEN.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

fn hrp_expand(hrp: &str) -> impl Iterator<Item = u8> + '_ {
    hrp.bytes().map(|c| c >> 5).chain(std::iter::once(0)).chain(hrp.bytes().map(|c| c & 31))
}

/// `hrp` + "1" + the 5-bit `data` + checksum, lower case.
pub fn encode(hrp: &str, data: &[u8]) -> String {
    let chk = polymod(hrp_expand(hrp).chain(data.iter().copied()).chain([0u8; 6])) ^ 1;
    let mut s = String::with_capacity(hrp.len() + 1 + data.len() + 6);
    s.push_str(hrp);
    s.push('1');
    for d in data.iter().copied().chain((0..6).map(|i| ((chk >> (5 * (5 - i))) & 31) as u8)) {
        s.push(CHARSET[usize::from(d & 31)] as char);
    }
    s
}

/// Which checksum a string carries: BIP-173's, or BIP-350's (bech32m,
/// used by segwit v1+ addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Bech32,
    Bech32m,
}

/// (hrp in lower case, 5-bit data without the checksum), bech32 only.
pub fn decode(s: &str) -> Result<(String, Vec<u8>), Bech32Error> {
    match decode_any(s)? {
        (hrp, data, Variant::Bech32) => Ok((hrp, data)),
        _ => Err(Bech32Error::BadChecksum),
    }
}

/// Like `decode`, accepting either checksum and saying which.
pub fn decode_any(s: &str) -> Result<(String, Vec<u8>, Variant), Bech32Error> {
    let has_lower = s.bytes().any(|b| b.is_ascii_lowercase());
    let has_upper = s.bytes().any(|b| b.is_ascii_uppercase());
    if has_lower && has_upper {
        return Err(Bech32Error::MixedCase);
    }
    let s = s.to_ascii_lowercase();
    let sep = s.rfind('1').ok_or(Bech32Error::NoSeparator)?;
    let (hrp, rest) = (&s[..sep], &s[sep + 1..]);
    if hrp.is_empty() || rest.len() < 6 {
        return Err(Bech32Error::TooShort);
    }
    if let Some(c) = hrp.chars().find(|c| !(33..=126).contains(&(*c as u32))) {
        return Err(Bech32Error::BadChar(c));
    }
    let mut data = Vec::with_capacity(rest.len());
    for c in rest.chars() {
        let v = CHARSET.iter().position(|x| *x as char == c).ok_or(Bech32Error::BadChar(c))?;
        data.push(v as u8);
    }
    let variant = match polymod(hrp_expand(hrp).chain(data.iter().copied())) {
        1 => Variant::Bech32,
        0x2bc8_30a3 => Variant::Bech32m,
        _ => return Err(Bech32Error::BadChecksum),
    };
    data.truncate(data.len() - 6);
    Ok((hrp.to_string(), data, variant))
}

/// Regroup bits: 8 → 5 (padding the last group with zeros) or 5 → 8
/// (dropping the incomplete tail, as BOLT11 does for the signed bytes).
pub fn regroup(data: &[u8], from: u32, to: u32, pad: bool) -> Vec<u8> {
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut out = Vec::with_capacity(data.len() * from as usize / to as usize + 1);
    let max = (1u32 << to) - 1;
    for v in data {
        acc = (acc << from) | u32::from(*v);
        bits += from;
        while bits >= to {
            bits -= to;
            out.push(((acc >> bits) & max) as u8);
        }
    }
    if pad && bits > 0 {
        out.push(((acc << (to - bits)) & max) as u8);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bip173_vectors_and_round_trip() {
        for valid in ["A12UEL5L", "a12uel5l", "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw", "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w"] {
            let (hrp, data) = decode(valid).unwrap_or_else(|e| panic!("{valid}: {e}"));
            assert_eq!(encode(&hrp, &data), valid.to_ascii_lowercase());
        }
        assert_eq!(decode("A12UeL5L"), Err(Bech32Error::MixedCase));
        assert_eq!(decode("a12uel5m"), Err(Bech32Error::BadChecksum));
        assert_eq!(decode("a1b2uel5l"), Err(Bech32Error::BadChar('b')));
        assert_eq!(regroup(&regroup(&[0xff, 0x01, 0x80], 8, 5, true), 5, 8, false), vec![0xff, 0x01, 0x80]);
    }
}
