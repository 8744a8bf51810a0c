//! Trust: the binary is the one the manifest names, and enough maintainers
//! the *host* trusts signed that manifest.
//!
//! Signature scheme (documented for maintainers and tooling):
//! * ECDSA over secp256k1; public keys are 33-byte compressed points (hex, as
//!   in the seeds' examples), signatures 64-byte compact (r‖s, low-s), hex.
//! * The signed 32-byte message is
//!   `sha256("hostd/module-manifest/v1\n" ‖ canonical)`, where `canonical` is
//!   the manifest without `[signatures]` serialized as JSON by hostd's own
//!   `Manifest` type (fixed field order, maps sorted by key, absent optional
//!   fields omitted). `[binary]` (hash and size) is inside it, so a signature
//!   covers the exact binary.
//! * Only keys from the host config's trust anchors count; the key a
//!   manifest prints next to a signature is ignored. A threshold counts
//!   distinct anchors; a second signature by the same anchor, or one by an
//!   unknown key, adds nothing.

use secp256k1::{ecdsa, Message, PublicKey, SecretKey};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::config::{SignaturePolicy, TrustAnchor};
use crate::manifest::{parse_sha256, Manifest};

pub const DOMAIN: &[u8] = b"hostd/module-manifest/v1\n";

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{module}: {path}: {message}")]
    Binary { module: String, path: PathBuf, message: String },
    #[error("{module}: binary sha256 {actual} does not match the manifest's {expected}: the binary was changed after the manifest was written (rebuild the manifest with `hostd sign`)")]
    HashMismatch { module: String, expected: String, actual: String },
    #[error("{module}: binary is {actual} bytes, the manifest says {expected}")]
    SizeMismatch { module: String, expected: u64, actual: u64 },
    #[error("{module}: the manifest has no [binary] section (hash and size): run `hostd sign` or add it")]
    NoBinarySection { module: String },
    #[error("{module}: unsigned, and the host config does not allow unsigned modules ([trust] allow_unsigned = false)")]
    Unsigned { module: String },
    #[error("{module}: {valid} valid signature(s) from trusted maintainers, {required} required{detail}")]
    BelowThreshold { module: String, valid: usize, required: usize, detail: String },
    #[error("{0}")]
    Key(String),
}

/// What `policy show` prints about trust.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Verification {
    pub binary_sha256: String,
    pub binary_size: u64,
    pub hash_matches: bool,
    /// Anchors whose valid signature was found, in anchor order.
    pub signed_by: Vec<String>,
    /// Signatures that did not count, and why.
    pub rejected: Vec<String>,
    pub required: usize,
    pub threshold_met: bool,
    /// The manifest carries no signature at all.
    pub unsigned: bool,
    pub unsigned_allowed: bool,
}

impl Verification {
    /// Why the module may not load despite a matching binary, if it may not.
    pub fn refusal(&self, module: &str) -> Option<TrustError> {
        if self.unsigned && !self.unsigned_allowed {
            return Some(TrustError::Unsigned { module: module.into() });
        }
        if !self.threshold_met {
            let detail = if self.rejected.is_empty() { String::new() } else { format!(" ({})", self.rejected.join("; ")) };
            return Some(TrustError::BelowThreshold { module: module.into(), valid: self.signed_by.len(), required: self.required, detail });
        }
        None
    }
}

/// The verified binary: the fd that was hashed is the fd that will be exec'd.
#[derive(Debug)]
pub struct VerifiedBinary {
    pub fd: OwnedFd,
    pub verification: Verification,
}

/// Hash `file` through an fd we keep.
pub fn hash_fd(file: &std::fs::File) -> std::io::Result<([u8; 32], u64)> {
    let mut reader = file.try_clone()?;
    use std::io::Seek;
    reader.seek(std::io::SeekFrom::Start(0))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((h.finalize().into(), size))
}

pub fn sha256_string(d: &[u8; 32]) -> String {
    format!("sha256:{}", hex::encode(d))
}

/// The message maintainers sign.
pub fn signing_digest(m: &Manifest) -> [u8; 32] {
    let mut unsigned = m.clone();
    unsigned.signatures = None;
    // Serializing our own plain data types cannot fail.
    let canonical = serde_json::to_vec(&unsigned).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(&canonical);
    h.finalize().into()
}

pub fn sign(m: &Manifest, key: &SecretKey) -> String {
    let sig = ecdsa::sign(Message::from_digest(signing_digest(m)), key);
    hex::encode(sig.serialize_compact())
}

pub fn parse_public_key(hexkey: &str) -> Result<PublicKey, String> {
    let bytes = hex::decode(hexkey).map_err(|_| format!("{hexkey:?} is not hex"))?;
    if bytes.len() != 33 {
        return Err(format!("public key must be 33 bytes (compressed), got {}", bytes.len()));
    }
    PublicKey::from_slice(&bytes).map_err(|e| format!("not a secp256k1 public key: {e}"))
}

/// Count signatures by distinct trust anchors.
pub fn check_signatures(m: &Manifest, anchors: &[TrustAnchor]) -> (Vec<String>, Vec<String>) {
    let msg = Message::from_digest(signing_digest(m));
    let mut signed_by: Vec<String> = Vec::new();
    let mut rejected = Vec::new();
    let sigs = m.signatures.as_ref().map(|s| s.maintainers.as_slice()).unwrap_or(&[]);
    for s in sigs {
        let parsed = hex::decode(&s.signature).ok().and_then(|b| ecdsa::Signature::from_compact(&b).ok());
        let Some(mut sig) = parsed else {
            rejected.push(format!("{}: malformed signature", s.name));
            continue;
        };
        // Accept either s form; a signature is about the key, not its encoding.
        sig.normalize_s();
        let by = anchors.iter().find(|a| parse_public_key(&a.public_key).is_ok_and(|k| ecdsa::verify(&sig, msg, &k).is_ok()));
        match by {
            None => rejected.push(format!("{}: not by any trusted maintainer key (or not over this manifest)", s.name)),
            Some(a) if signed_by.contains(&a.name) => rejected.push(format!("{}: second signature by anchor {}", s.name, a.name)),
            Some(a) => signed_by.push(a.name.clone()),
        }
    }
    (signed_by, rejected)
}

/// Verify and enforce: hash, size, and the signature threshold.
pub fn verify(
    module: &str,
    dir: &Path,
    m: &Manifest,
    declared_threshold: Option<(usize, usize)>,
    policy: &SignaturePolicy,
) -> Result<VerifiedBinary, TrustError> {
    let (fd, verification) = inspect(module, dir, m, declared_threshold, policy)?;
    match verification.refusal(module) {
        Some(e) => Err(e),
        None => Ok(VerifiedBinary { fd, verification }),
    }
}

/// Open the entry point inside `dir` without following a symlink out of it,
/// hash it, check hash and size, and count signatures — without deciding
/// whether the count suffices (`policy show` reports it either way).
pub fn inspect(
    module: &str,
    dir: &Path,
    m: &Manifest,
    declared_threshold: Option<(usize, usize)>,
    policy: &SignaturePolicy,
) -> Result<(OwnedFd, Verification), TrustError> {
    let path = dir.join(&m.entry_point);
    let bin_err = |message: String| TrustError::Binary { module: module.into(), path: path.clone(), message };
    let file = open_inside(dir, &m.entry_point).map_err(bin_err)?;
    let meta = file.metadata().map_err(|e| bin_err(e.to_string()))?;
    if !meta.is_file() {
        return Err(bin_err("not a regular file".into()));
    }
    let (digest, size) = hash_fd(&file).map_err(|e| bin_err(format!("read: {e}")))?;
    let binary = m.binary.as_ref().ok_or(TrustError::NoBinarySection { module: module.into() })?;
    let expected = parse_sha256(&binary.hash).map_err(bin_err)?;
    if expected != digest {
        return Err(TrustError::HashMismatch { module: module.into(), expected: binary.hash.clone(), actual: sha256_string(&digest) });
    }
    if binary.size != size {
        return Err(TrustError::SizeMismatch { module: module.into(), expected: binary.size, actual: size });
    }
    let (signed_by, rejected) = check_signatures(m, &policy.anchors);
    let unsigned = m.signatures.as_ref().is_none_or(|s| s.maintainers.is_empty());
    // The manifest may demand more signatures than the host does, never fewer.
    let required = declared_threshold.map(|(r, _)| r).unwrap_or(0).max(policy.min_signatures).max(1);
    let threshold_met = if unsigned { policy.allow_unsigned } else { signed_by.len() >= required };
    let verification = Verification {
        binary_sha256: sha256_string(&digest),
        binary_size: size,
        hash_matches: true,
        signed_by,
        rejected,
        required,
        threshold_met,
        unsigned,
        unsigned_allowed: policy.allow_unsigned,
    };
    Ok((OwnedFd::from(file), verification))
}

/// Open `rel` beneath `dir`, refusing `..`, absolute paths and symlinks that
/// resolve outside (openat2 RESOLVE_BENEATH).
pub fn open_inside(dir: &Path, rel: &str) -> Result<std::fs::File, String> {
    let dirf = std::fs::File::open(dir).map_err(|e| format!("open module dir {}: {e}", dir.display()))?;
    crate::beneath::open(&dirf, rel, libc::O_RDONLY, 0).map_err(|e| {
        if e.raw_os_error() == Some(libc::EXDEV) {
            format!("{rel} resolves outside the module directory (symlink escape)")
        } else {
            format!("open {rel}: {e}")
        }
    })
}

/// A new secret key from the kernel's CSPRNG.
pub fn generate_key() -> Result<SecretKey, TrustError> {
    loop {
        let mut b = [0u8; 32];
        // SAFETY: getrandom into a local buffer.
        let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
        if n != 32 {
            return Err(TrustError::Key(format!("getrandom: {}", std::io::Error::last_os_error())));
        }
        if let Ok(k) = SecretKey::from_secret_bytes(b) {
            return Ok(k);
        }
    }
}

pub fn public_hex(k: &SecretKey) -> String {
    hex::encode(PublicKey::from_secret_key(k).serialize())
}

/// A key file holds the secret key as 64 hex digits (mode 0600).
pub fn read_key_file(path: &Path) -> Result<SecretKey, TrustError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrustError::Key(format!("{}: {e}", path.display())))?;
    let mut b = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut b)
        .map_err(|_| TrustError::Key(format!("{}: expected 64 hex digits (a key from `hostd keygen`)", path.display())))?;
    SecretKey::from_secret_bytes(b).map_err(|e| TrustError::Key(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{MaintainerSignature, SignaturesSection, ValidManifest};

    struct Fixture {
        dir: PathBuf,
        keys: Vec<SecretKey>,
        anchors: Vec<TrustAnchor>,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn fixture(tag: &str) -> Fixture {
        let dir = std::env::temp_dir().join(format!("hostd-trust-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("mod-bin"), b"\x7fELF pretend module binary").expect("write bin");
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

        // Tampered binary: one byte changed after signing.
        std::fs::write(f.dir.join("mod-bin"), b"\x7fELF pretend module binarY").expect("tamper");
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
}
