//! The treasury address check: a segwit address (BIP-173/350) of the
//! node's network. Legacy base58 addresses are refused: every wallet
//! since 2017 can receive to segwit, and one format keeps the check exact.

use crate::bech32::{decode_any, regroup, Variant};
use crate::bolt11::Currency;

/// The address's human-readable part on `network` (signet shares testnet's).
fn hrp(network: Currency) -> &'static str {
    match network {
        Currency::Bitcoin => "bc",
        Currency::Testnet | Currency::Signet => "tb",
        Currency::Regtest => "bcrt",
    }
}

/// Ok if `addr` is a valid segwit address of `network`, else why not.
pub fn check(addr: &str, network: Currency) -> Result<(), String> {
    if addr.len() > 90 {
        return Err("longer than 90 characters".into());
    }
    let (h, data, variant) = decode_any(addr).map_err(|e| format!("not a segwit address: {e}"))?;
    if h != hrp(network) {
        return Err(format!("it is for another network (prefix {h:?}; this network uses {:?})", hrp(network)));
    }
    let (version, program) = data.split_first().ok_or("no witness version")?;
    let program = regroup(program, 5, 8, false);
    let ok = match (version, variant) {
        (0, Variant::Bech32) => program.len() == 20 || program.len() == 32,
        (1..=16, Variant::Bech32m) => (2..=40).contains(&program.len()),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("witness version {version} with a {}-byte program and {variant:?} checksum is not a valid address", program.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bip173_and_bip350_addresses_are_checked_against_the_network() {
        // BIP-173 / BIP-350 test vectors.
        assert_eq!(check("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", Currency::Bitcoin), Ok(()));
        assert_eq!(check("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0", Currency::Bitcoin), Ok(()));
        assert_eq!(check("tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7", Currency::Testnet), Ok(()));
        assert!(check("tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7", Currency::Bitcoin).unwrap_err().contains("another network"));
        assert!(check("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5", Currency::Bitcoin).is_err(), "bad checksum");
        assert!(check("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd", Currency::Bitcoin).is_err(), "v1 with a bech32 checksum");
        assert!(check("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", Currency::Bitcoin).is_err(), "legacy");
    }
}
