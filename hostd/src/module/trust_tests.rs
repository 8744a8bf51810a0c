//! Unit tests of `trust.rs`: each attack on hashes and signatures, with a control.

use super::*;
use crate::manifest::{MaintainerSignature, SignaturesSection, ValidManifest};
use crate::scratch::Scratch;

struct Fixture {
    dir: Scratch,
    keys: Vec<SecretKey>,
    anchors: Vec<TrustAnchor>,
}

/// A little-endian ELF64 header with no program headers (so no
/// interpreter: what `elf::check_static` accepts), then `tail`.
fn elf(tail: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 64];
    b[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    b[0x20] = 64; // e_phoff
    b[0x36] = 56; // e_phentsize; e_phnum stays 0
    b.extend_from_slice(tail);
    b
}

fn fixture(tag: &str) -> Fixture {
    let dir = Scratch::new(&format!("trust-{tag}"));
    std::fs::write(dir.join("mod-bin"), elf(b"pretend module binary")).expect("write bin");
    let keys: Vec<SecretKey> = (0..4).map(|_| generate_key().expect("key")).collect();
    // Keys 0..3 are anchored; key 3 is not.
    let anchors = ["alice", "bob", "carol"]
        .iter()
        .zip(&keys)
        .map(|(n, k)| TrustAnchor { name: n.to_string(), public_key: public_hex(k) })
        .collect();
    Fixture { dir, keys, anchors }
}

fn manifest(f: &Fixture) -> ValidManifest {
    let file = std::fs::File::open(f.dir.join("mod-bin")).expect("open");
    let (d, size) = hash_fd(&file).expect("hash");
    let text = format!(
        "name = \"m\"\nversion = \"1.0.0\"\nentry_point = \"mod-bin\"\n[binary]\nhash = \"{}\"\nsize = {size}\n[signatures]\nthreshold = \"2-of-3\"\n",
        sha256_string(&d)
    );
    Manifest::parse(&text, Path::new("module.toml")).expect("valid")
}

fn signed_by(m: &ValidManifest, keys: &[&SecretKey]) -> ValidManifest {
    let mut m = m.clone();
    let maintainers = keys
        .iter()
        .enumerate()
        .map(|(i, k)| MaintainerSignature { name: format!("s{i}"), public_key: public_hex(k), signature: sign(&m.manifest, k) })
        .collect();
    m.manifest.signatures = Some(SignaturesSection { threshold: Some("2-of-3".into()), maintainers });
    m
}

fn check(f: &Fixture, m: &ValidManifest) -> Result<Verification, String> {
    let policy = SignaturePolicy { allow_unsigned: false, min_signatures: 1, anchors: f.anchors.clone() };
    verify("m", &f.dir, &m.manifest, m.declared_threshold, &policy).map(|v| v.verification).map_err(|e| e.to_string())
}

#[test]
fn a_valid_two_of_three_set_loads() {
    let f = fixture("valid");
    let m = signed_by(&manifest(&f), &[&f.keys[0], &f.keys[2]]);
    let v = check(&f, &m).expect("loads");
    assert_eq!(v.signed_by, ["alice", "carol"]);
    assert!(v.threshold_met);
}

#[test]
fn each_attack_is_rejected() {
    let f = fixture("attacks");
    let base = manifest(&f);
    let good = signed_by(&base, &[&f.keys[0], &f.keys[1]]);
    check(&f, &good).expect("control: the untampered module loads");

    // Below threshold: one trusted signature of two.
    let err = check(&f, &signed_by(&base, &[&f.keys[0]])).unwrap_err();
    assert!(err.contains("1 valid signature(s)") && err.contains("2 required"), "{err}");

    // Unanchored key: a valid signature by a key the host does not trust.
    let err = check(&f, &signed_by(&base, &[&f.keys[0], &f.keys[3]])).unwrap_err();
    assert!(err.contains("not by any trusted maintainer"), "{err}");

    // The same anchor twice counts once.
    let err = check(&f, &signed_by(&base, &[&f.keys[1], &f.keys[1]])).unwrap_err();
    assert!(err.contains("second signature by anchor bob"), "{err}");

    // A manifest that names an anchor's public key next to a forged signature.
    let mut forged = signed_by(&base, &[&f.keys[0], &f.keys[3]]);
    if let Some(s) = forged.manifest.signatures.as_mut() {
        s.maintainers[1].public_key = f.anchors[1].public_key.clone();
    }
    assert!(check(&f, &forged).is_err(), "the key printed in the manifest must not matter");

    // Tampered manifest: a capability added after signing.
    let mut tampered = good.clone();
    tampered.manifest.capabilities.push("send_transactions".into());
    let err = check(&f, &tampered).unwrap_err();
    assert!(err.contains("0 valid signature(s)"), "{err}");

    // A manifest asking for fewer signatures than it was signed with
    // cannot go below the host's own minimum.
    let policy = SignaturePolicy { allow_unsigned: false, min_signatures: 3, anchors: f.anchors.clone() };
    let err = verify("m", &f.dir, &good.manifest, Some((1, 3)), &policy).map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("3 required"), "{err}");

    // Unsigned: refused by default.
    let err = check(&f, &base).unwrap_err();
    assert!(err.contains("unsigned"), "{err}");

    // A binary someone else could rewrite between the hash and the exec.
    use std::os::unix::fs::PermissionsExt;
    let bin = f.dir.join("mod-bin");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let err = check(&f, &good).unwrap_err();
    assert!(err.contains("writable by group or others"), "{err}");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&bin, Some(4242), None).expect("chown");
        let err = check(&f, &good).unwrap_err();
        assert!(err.contains("belongs to uid 4242"), "{err}");
        std::os::unix::fs::chown(&bin, Some(0), None).expect("chown back");
    }
    check(&f, &good).expect("control: root's 0755 binary verifies again");

    // Tampered binary: one byte changed after signing.
    std::fs::write(f.dir.join("mod-bin"), elf(b"pretend module binarY")).expect("tamper");
    let err = check(&f, &good).unwrap_err();
    assert!(err.contains("does not match the manifest"), "{err}");
}

#[test]
fn entry_point_symlink_escape_is_refused() {
    let f = fixture("symlink");
    std::os::unix::fs::symlink("/bin/sh", f.dir.join("escape")).expect("symlink");
    let err = open_inside(&f.dir, "escape").unwrap_err();
    assert!(err.contains("outside the module directory"), "{err}");
    open_inside(&f.dir, "mod-bin").expect("a plain file inside opens");
}
