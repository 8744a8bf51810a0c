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

/// docs/manifest.md names every field of the manifest. The manifest is
/// built field by field here, so a new field does not compile until it is
/// added below, and then this fails until the page has it.
#[test]
fn every_manifest_field_is_in_the_reference() {
    let s = || Some("x".to_string());
    let m = Manifest {
        name: "m".into(),
        version: "1.0.0".into(),
        entry_point: "m".into(),
        description: s(),
        author: s(),
        capabilities: vec!["read_storage".into()],
        dependencies: [("a".to_string(), "^1".to_string())].into(),
        optional_dependencies: [("b".to_string(), "^1".to_string())].into(),
        config_schema: [("k".to_string(), "what k is".to_string())].into(),
        binary: Some(BinarySection { hash: "sha256:00".into(), size: 1, download_url: s() }),
        signatures: Some(SignaturesSection {
            threshold: s(),
            maintainers: vec![MaintainerSignature { name: "n".into(), public_key: "k".into(), signature: "s".into() }],
        }),
        payment: Some(PaymentSection {
            required: true,
            price_sats: Some(1),
            author_payment_code: s(),
            commons_payment_code: s(),
            payment_signature: s(),
        }),
        governance: Some(GovernanceSection { tier: s(), maintainers: vec!["n".into()], threshold: s(), review_period_days: Some(1) }),
        compatibility: Some(CompatibilitySection { min_consensus_version: s(), min_protocol_version: s(), min_node_version: s(), tested_with: vec!["x".into()] }),
        resources: Some(ResourceRequest { memory_max_bytes: Some(1), cpu_percent: Some(1), pids_max: Some(1), nofile: Some(1) }),
    };
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/manifest.md")).expect("docs/manifest.md");
    let toml::Value::Table(top) = toml::Value::try_from(&m).expect("serializes") else { panic!("a table") };
    let mut missing = Vec::new();
    for (k, v) in &top {
        // Tables of free-form keys are documented as sections.
        let keyed = ["dependencies", "optional_dependencies", "config_schema"];
        match v {
            toml::Value::Table(t) if !keyed.contains(&k.as_str()) => {
                for sub in t.keys() {
                    let key = format!("{k}.{sub}");
                    // Sections with their own table use bare keys.
                    let short = format!("| `{sub}` |");
                    let documented = doc.contains(&format!("`{key}`")) || (matches!(k.as_str(), "binary" | "signatures") && doc.contains(&short));
                    if !documented {
                        missing.push(key);
                    }
                }
            }
            _ if keyed.contains(&k.as_str()) => {
                if !doc.contains(&format!("[{k}]")) {
                    missing.push(format!("[{k}]"));
                }
            }
            _ => {
                if !doc.contains(&format!("| `{k}` |")) {
                    missing.push(k.clone());
                }
            }
        }
    }
    assert!(missing.is_empty(), "docs/manifest.md lacks {missing:?}");
}
