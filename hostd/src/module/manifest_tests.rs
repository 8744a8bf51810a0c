//! Unit tests of manifest parsing and validation (from text, no files).

use super::*;

const GOOD: &str = r#"
name = "lightning-network"
version = "1.2.3"
entry_point = "lightning-network"
description = "Lightning"
author = "Alice <alice@example.com>"
capabilities = ["read_blockchain", "subscribe_events", "read_lightning"]

[dependencies]
"bllvm-node" = ">=1.0.0"

[optional_dependencies]
"bllvm-mesh" = ">=0.5.0"

[config_schema]
network = "Network: mainnet, testnet, regtest (default: mainnet)"

[binary]
hash = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
size = 1234567

[signatures]
threshold = "2-of-3"
maintainers = [{ name = "alice", key = "02ab", signature = "00" }]

[payment]
required = true
price_sats = 100000

[governance]
tier = "application"
maintainers = ["alice", "bob", "charlie"]
threshold = "2-of-3"
review_period_days = 14

[compatibility]
min_node_version = "1.0.0"
tested_with = ["1.0.0", "1.1.0"]
"#;

fn parse(text: &str) -> Result<ValidManifest, String> {
    Manifest::parse(text, Path::new("mods/x/module.toml")).map_err(|e| e.to_string())
}

#[test]
fn every_seed_section_parses() {
    let m = parse(GOOD).expect("valid");
    assert_eq!(m.permissions.len(), 3);
    assert_eq!(m.declared_threshold, Some((2, 3)));
    assert_eq!(m.manifest.signatures.as_ref().map(|s| s.maintainers[0].public_key.as_str()), Some("02ab"));
}

/// Each bad manifest and the words its error must contain.
#[test]
fn each_error_explains_itself() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("unknown key", "entry_piont = \"x\"", &["module.toml:", "unknown key `entry_piont`", "did you mean `entry_point`"]),
        ("unknown capability", "capabilities = [\"read_blockchian\"]", &["module.toml:4:", "`capabilities`", "did you mean \"read_blockchain\""]),
        ("duplicate capability", "capabilities = [\"read_utxo\", \"read_utxo\"]", &["listed twice"]),
        ("bad name", "name = \"../etc\"", &["`name`", "not a valid module name"]),
        ("bad version", "version = \"1.2\"", &["module.toml:2:", "`version`", "semver"]),
        ("entry point escapes", "entry_point = \"../../bin/sh\"", &["`entry_point`", "no '..'"]),
        ("absolute entry point", "entry_point = \"/bin/sh\"", &["`entry_point`", "relative"]),
        ("bad requirement", "[dependencies]\nfoo = \"banana\"", &["`dependencies.foo`", "semver requirement"]),
        ("bad hash", "[binary]\nhash = \"md5:00\"\nsize = 1", &["`binary.hash`", "sha256:"]),
        ("bad threshold", "[signatures]\nthreshold = \"3-of-2\"", &["module.toml:5:", "`signatures.threshold`", "2-of-3"]),
        ("unknown section key", "[binary]\nhash = \"sha256:00\"\nsize = 1\nsiez = 2", &["unknown key `siez`", "did you mean `size`"]),
    ];
    for (what, change, words) in cases {
        // Replace the line that sets the same key, or append.
        let key = change.split([' ', '\n']).next().unwrap_or("");
        let base = "name = \"x\"\nversion = \"1.0.0\"\nentry_point = \"x\"\n";
        let text = if base.contains(&format!("{key} =")) {
            base.lines().map(|l| if l.starts_with(&format!("{key} =")) { *change } else { l }).collect::<Vec<_>>().join("\n")
        } else {
            format!("{base}{change}\n")
        };
        let err = parse(&text).expect_err(what);
        for w in *words {
            assert!(err.contains(w), "{what}: {err:?} lacks {w:?}");
        }
    }
}
