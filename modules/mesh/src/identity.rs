//! A node's identity: a BIP-340 key pair whose x-only public key is the
//! 32-byte NodeId, and the tagged hashes everything signed is built from.
//! Same curve and signature scheme as Bitcoin's Taproot and Lightning.

use mesh_api::NodeId;
use secp256k1::ffi::{self, CPtr};
use secp256k1::{schnorr, Keypair, Secp256k1, SignOnly, XOnlyPublicKey};
use std::cell::RefCell;
use std::collections::HashMap;
use sha2::{Digest, Sha256};

/// BIP-340 tagged hash: sha256(sha256(tag) ‖ sha256(tag) ‖ parts…). A tag
/// per purpose, so a signature made for one kind of message never
/// verifies as another.
pub fn tagged_hash(tag: &str, parts: &[&[u8]]) -> [u8; 32] {
    let t = Sha256::digest(tag.as_bytes());
    let mut h = Sha256::new();
    h.update(t);
    h.update(t);
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Bitcoin's double sha256.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(data)).into()
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("the stored mesh key is not a valid secp256k1 secret key (32 bytes); remove it to make a new identity")]
    BadKey,
    #[error("the kernel's random source failed: {0}")]
    Random(std::io::Error),
}

pub struct Identity {
    keypair: Keypair,
    node_id: NodeId,
    /// This identity's own signing context, randomized once at creation
    /// (libsecp256k1's side-channel blinding). The crate's free `sign`
    /// functions re-randomize the shared context after every signature,
    /// which doubles the cost of signing each packet.
    ctx: Secp256k1<SignOnly>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", mesh_api::hex(&self.node_id))
    }
}

/// `n` bytes from the kernel (getrandom(2), Linux 3.17).
pub fn random_bytes<const N: usize>() -> Result<[u8; N], IdentityError> {
    let mut out = [0u8; N];
    let mut filled = 0;
    while filled < N {
        // SAFETY: writes at most N - filled bytes into our buffer.
        let n = unsafe { libc::getrandom(out[filled..].as_mut_ptr().cast(), N - filled, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(IdentityError::Random(e));
        }
        filled += n as usize;
    }
    Ok(out)
}

impl Identity {
    pub fn generate() -> Result<Identity, IdentityError> {
        loop {
            // Nearly every 32-byte string is a valid key; retry the rest.
            if let Ok(id) = Identity::from_secret(random_bytes::<32>()?) {
                return Ok(id);
            }
        }
    }

    pub fn from_secret(secret: [u8; 32]) -> Result<Identity, IdentityError> {
        let keypair = Keypair::from_secret_bytes(secret).map_err(|_| IdentityError::BadKey)?;
        let node_id = keypair.x_only_public_key().0.to_byte_array();
        let mut ctx = Secp256k1::signing_only();
        ctx.seeded_randomize(&random_bytes::<32>()?);
        Ok(Identity { keypair, node_id, ctx })
    }

    pub fn secret(&self) -> [u8; 32] {
        self.keypair.to_secret_bytes()
    }

    /// The same key for ECDSA (BOLT11 invoices are ECDSA-signed).
    pub fn secret_key(&self) -> secp256k1::SecretKey {
        self.keypair.secret_key()
    }

    /// The compressed public key (what a BOLT11 invoice names as payee).
    pub fn public_key(&self) -> [u8; 33] {
        self.keypair.public_key().serialize()
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// A BIP-340 signature of a 32-byte digest (fresh auxiliary
    /// randomness when the kernel has it, as BIP-340 recommends).
    pub fn sign(&self, digest: &[u8; 32]) -> [u8; 64] {
        let aux = random_bytes::<32>().ok();
        let mut sig = [0u8; 64];
        // SAFETY: every pointer is to a live value of the size the C
        // function reads or writes (64-byte signature, 32-byte digest and
        // aux, a keypair and a context created by the crate).
        let ok = unsafe {
            ffi::secp256k1_schnorrsig_sign32(
                self.ctx.ctx().as_ptr(),
                sig.as_mut_c_ptr(),
                digest.as_c_ptr(),
                self.keypair.as_c_ptr(),
                aux.as_ref().map_or(std::ptr::null(), |a| a.as_c_ptr()),
            )
        };
        if ok == 1 {
            sig
        } else {
            // Cannot happen with a valid keypair; the crate's path is the fallback.
            schnorr::sign_no_aux_rand(digest, &self.keypair).to_byte_array()
        }
    }
}

/// Parsed keys of recent signers: parsing an x-only key takes a square
/// root, and most packets come from a few sources. Per thread, bounded.
const KEY_CACHE: usize = 4096;

thread_local! {
    static KEYS: RefCell<HashMap<NodeId, XOnlyPublicKey>> = RefCell::new(HashMap::new());
}

fn key(node: &NodeId) -> Option<XOnlyPublicKey> {
    KEYS.with(|k| {
        let mut k = k.borrow_mut();
        if let Some(key) = k.get(node) {
            return Some(*key);
        }
        let key = XOnlyPublicKey::from_byte_array(*node).ok()?;
        if k.len() >= KEY_CACHE {
            k.clear();
        }
        k.insert(*node, key);
        Some(key)
    })
}

/// Whether `sig` is `node`'s signature of `digest`.
pub fn verify(node: &NodeId, digest: &[u8; 32], sig: &[u8; 64]) -> bool {
    match key(node) {
        Some(key) => schnorr::verify(&schnorr::Signature::from_byte_array(*sig), digest, &key).is_ok(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_key_digest_and_tag() {
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap();
        let d = tagged_hash("t1", &[b"msg"]);
        let sig = a.sign(&d);
        assert!(verify(&a.node_id(), &d, &sig));
        assert!(!verify(&b.node_id(), &d, &sig));
        assert!(!verify(&a.node_id(), &tagged_hash("t2", &[b"msg"]), &sig));
        let again = Identity::from_secret(a.secret()).unwrap();
        assert_eq!(again.node_id(), a.node_id());
        assert!(!verify(&[0xff; 32], &d, &sig), "not a curve point");
    }
}
