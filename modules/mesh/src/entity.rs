//! Entity certificates: an operator's authority key states "node N is run
//! by entity E". A node carries its certificate in its signed record; a
//! node that trusts the authority (`entity_authorities`) counts N as E for
//! anti-monopoly. Unlike network groups, this costs a sybil an authority
//! the verifier chose to trust.
//!
//! Text form (config `entity_certificate`): `<entity>:<authority x-only hex>:<signature hex>`.
//! Wire form (in a record): `len u8 (0: none) | entity | authority [32] | signature [64]`.

use crate::identity::{tagged_hash, verify, Identity};
use crate::wire::{Reader, WireError, Writer};
use mesh_api::{hex, parse_hex, parse_node_id, NodeId};

pub const MAX_ENTITY: usize = 64;
const TAG: &str = "commons-mesh/v1/entity-cert";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityCert {
    pub entity: String,
    pub authority: NodeId,
    pub sig: [u8; 64],
}

fn digest(entity: &str, node: &NodeId) -> [u8; 32] {
    tagged_hash(TAG, &[entity.as_bytes(), node])
}

impl EntityCert {
    pub fn sign(authority: &Identity, entity: &str, node: &NodeId) -> EntityCert {
        EntityCert { entity: entity.to_string(), authority: authority.node_id(), sig: authority.sign(&digest(entity, node)) }
    }

    /// Whether the authority really certified `node` as this entity.
    pub fn verify(&self, node: &NodeId) -> bool {
        verify(&self.authority, &digest(&self.entity, node), &self.sig)
    }

    pub fn to_text(&self) -> String {
        format!("{}:{}:{}", self.entity, hex(&self.authority), hex(&self.sig))
    }

    pub fn from_text(s: &str) -> Result<EntityCert, String> {
        let mut parts = s.rsplitn(3, ':');
        let (sig, authority, entity) = (parts.next(), parts.next(), parts.next());
        let (Some(sig), Some(authority), Some(entity)) = (sig, authority, entity) else {
            return Err("expected <entity>:<authority hex>:<signature hex>".into());
        };
        crate::monopoly_settings::check_entity(entity)?;
        Ok(EntityCert { entity: entity.to_string(), authority: parse_node_id(authority)?, sig: parse_hex::<64>(sig)? })
    }

    pub fn write(cert: &Option<EntityCert>, w: &mut Writer) {
        match cert {
            None => {
                w.u8(0);
            }
            Some(c) => {
                w.u8(c.entity.len() as u8).raw(c.entity.as_bytes()).raw(&c.authority).raw(&c.sig);
            }
        }
    }

    pub fn read(r: &mut Reader<'_>) -> Result<Option<EntityCert>, WireError> {
        let n = usize::from(r.u8("entity length")?);
        if n == 0 {
            return Ok(None);
        }
        if n > MAX_ENTITY {
            return Err(WireError::TooLong { field: "entity", len: n, max: MAX_ENTITY });
        }
        let entity = std::str::from_utf8(r.take(n, "entity")?).map_err(|_| WireError::Invalid("entity"))?.to_string();
        Ok(Some(EntityCert { entity, authority: r.id("entity authority")?, sig: r.sig("entity signature")? }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_bind_entity_node_and_authority() {
        let authority = Identity::generate().unwrap();
        let node = Identity::generate().unwrap().node_id();
        let c = EntityCert::sign(&authority, "acme", &node);
        assert!(c.verify(&node));
        assert!(!c.verify(&[1; 32]), "another node");
        assert!(!EntityCert { entity: "other".into(), ..c.clone() }.verify(&node), "another entity");
        assert_eq!(EntityCert::from_text(&c.to_text()), Ok(c.clone()));
        let mut w = Writer::default();
        EntityCert::write(&Some(c.clone()), &mut w);
        assert_eq!(EntityCert::read(&mut Reader::new(&w.0)), Ok(Some(c)));
        assert!(EntityCert::from_text("acme:zz:00").is_err());
    }
}
