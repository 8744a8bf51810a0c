//! Block and transaction hashes on the wire.
//!
//! Every `Hash32` in this protocol is in **internal byte order**: the bytes
//! as they appear inside serialized blocks and transactions (a header's
//! previous-block field, an input's outpoint), i.e. the SHA-256d output
//! as computed. Bitcoin Core's RPC and block explorers print hashes
//! byte-reversed ("display order"): [`hash_to_hex`] and [`hash_from_hex`]
//! convert between the two, so `hash_to_hex(&tip)` is what
//! `bitcoin-cli getbestblockhash` prints.

use crate::messages::Hash32;

/// Display-order hex (as Core's RPC prints it) of an internal-order hash.
pub fn hash_to_hex(hash: &Hash32) -> String {
    hash.iter().rev().map(|b| format!("{b:02x}")).collect()
}

/// The internal-order hash of display-order hex (64 hex digits).
pub fn hash_from_hex(text: &str) -> Option<Hash32> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        out[31 - i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_order_is_reversed_internal_order() {
        // Regtest genesis: Core prints 0f9188f1…; its header's hash bytes
        // start with 06 22 6e 46.
        let text = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206";
        let h = hash_from_hex(text).expect("valid");
        assert_eq!(&h[..4], &[0x06, 0x22, 0x6e, 0x46]);
        assert_eq!(hash_to_hex(&h), text);
        assert_eq!(hash_from_hex("0f"), None);
        assert_eq!(hash_from_hex(&"zz".repeat(32)), None);
    }
}
