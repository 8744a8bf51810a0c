//! A node's identity: a BIP-340 key pair whose x-only public key is the
//! 32-byte NodeId, and the tagged hashes everything signed is built from.
//! Same curve and signature scheme as Bitcoin's Taproot and Lightning.

use mesh_api::NodeId;
use secp256k1::{schnorr, Keypair, XOnlyPublicKey};
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
        Ok(Identity { keypair, node_id })
    }

    pub fn secret(&self) -> [u8; 32] {
        self.keypair.to_secret_bytes()
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// A BIP-340 signature of a 32-byte digest.
    pub fn sign(&self, digest: &[u8; 32]) -> [u8; 64] {
        schnorr::sign_no_aux_rand(digest, &self.keypair).to_byte_array()
    }
}

/// Whether `sig` is `node`'s signature of `digest`.
pub fn verify(node: &NodeId, digest: &[u8; 32], sig: &[u8; 64]) -> bool {
    match XOnlyPublicKey::from_byte_array(*node) {
        Ok(key) => schnorr::verify(&schnorr::Signature::from_byte_array(*sig), digest, &key).is_ok(),
        Err(_) => false,
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
