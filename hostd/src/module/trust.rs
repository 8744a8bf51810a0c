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
    #[error("{module}: the binary's hash {actual} does not match the manifest's {expected}: the binary was changed after the manifest was written (rebuild the manifest with `hostd sign`)")]
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
    verify_file(module, dir, open_entry_point(module, dir, m)?, m, declared_threshold, policy)
}

fn open_entry_point(module: &str, dir: &Path, m: &Manifest) -> Result<std::fs::File, TrustError> {
    open_inside(dir, &m.entry_point).map_err(|message| TrustError::Binary { module: module.into(), path: dir.join(&m.entry_point), message })
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
    inspect_file(module, dir, open_entry_point(module, dir, m)?, m, declared_threshold, policy)
}

/// [`verify`] of a binary already open (one kept from an earlier start,
/// whose directory entry may since point at another file).
pub fn verify_file(
    module: &str,
    dir: &Path,
    file: std::fs::File,
    m: &Manifest,
    declared_threshold: Option<(usize, usize)>,
    policy: &SignaturePolicy,
) -> Result<VerifiedBinary, TrustError> {
    let (fd, verification) = inspect_file(module, dir, file, m, declared_threshold, policy)?;
    match verification.refusal(module) {
        Some(e) => Err(e),
        None => Ok(VerifiedBinary { fd, verification }),
    }
}

fn inspect_file(
    module: &str,
    dir: &Path,
    file: std::fs::File,
    m: &Manifest,
    declared_threshold: Option<(usize, usize)>,
    policy: &SignaturePolicy,
) -> Result<(OwnedFd, Verification), TrustError> {
    let path = dir.join(&m.entry_point);
    let bin_err = |message: String| TrustError::Binary { module: module.into(), path: path.clone(), message };
    let meta = file.metadata().map_err(|e| bin_err(e.to_string()))?;
    if !meta.is_file() {
        return Err(bin_err("not a regular file".into()));
    }
    only_trusted_can_rewrite(&meta).map_err(bin_err)?;
    super::elf::check_static(&file).map_err(bin_err)?;
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

/// The hash is of the bytes read now and the exec comes later, from the same
/// fd: only someone already trusted may be able to rewrite the file in
/// between. So a module's binary must belong to root or to this process's
/// own user, and be writable by no group or other user.
fn only_trusted_can_rewrite(meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != 0 && meta.uid() != me {
        return Err(format!("belongs to uid {}: a module's binary must belong to root (or to hostd's own user), so nobody else can rewrite it between the hash and the exec", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!("is writable by group or others (mode {:o}): chmod go-w it, so nobody else can rewrite it between the hash and the exec", meta.mode() & 0o7777));
    }
    Ok(())
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
#[path = "trust_tests.rs"]
mod tests;
