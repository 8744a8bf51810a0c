//! A node's signed record: who it is, its mode, its fee schedule and when
//! it signed. A node re-signs its record every advert interval; routes to
//! a node live only as long as its newest record is younger than the
//! route expiry, so a node that falls silent drops out of every table.

use crate::entity::EntityCert;
use crate::identity::{tagged_hash, verify, Identity};
use crate::wire::{Reader, WireError, Writer};
use mesh_api::{MeshMode, NodeId, TrafficClass};

const TAG: &str = "commons-mesh/v1/record";

/// What a destination charges for paid traffic (part 2 uses it for real;
/// part 1 quotes it in "payment required" answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeeSchedule {
    pub base_sats: u64,
    pub per_router_sats: u64,
    pub per_kib_sats: u64,
}

impl FeeSchedule {
    /// F for a packet of `payload_len` bytes over `routers` routers; free
    /// classes cost nothing.
    pub fn fee(&self, class: TrafficClass, routers: usize, payload_len: usize) -> u64 {
        if class != TrafficClass::Paid {
            return 0;
        }
        let kib = payload_len.div_ceil(1024) as u64;
        self.base_sats.saturating_add(self.per_router_sats.saturating_mul(routers as u64)).saturating_add(self.per_kib_sats.saturating_mul(kib))
    }
}

pub fn mode_to_u8(m: MeshMode) -> u8 {
    match m {
        MeshMode::BitcoinOnly => 0,
        MeshMode::PaymentGated => 1,
        MeshMode::Open => 2,
    }
}

pub fn mode_from_u8(v: u8) -> Result<MeshMode, WireError> {
    match v {
        0 => Ok(MeshMode::BitcoinOnly),
        1 => Ok(MeshMode::PaymentGated),
        2 => Ok(MeshMode::Open),
        _ => Err(WireError::Invalid("mode")),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    pub node_id: NodeId,
    pub mode: MeshMode,
    pub fees: FeeSchedule,
    /// Unix milliseconds when signed; newer replaces older.
    pub signed_ms: u64,
    /// The key of the node's own Lightning node, when its invoices are
    /// issued there rather than with the mesh key (all zero: none).
    pub lightning_key: Option<[u8; 33]>,
    /// An authority's statement of which entity runs this node.
    pub entity_cert: Option<EntityCert>,
    pub sig: [u8; 64],
}

impl NodeRecord {
    fn write_signed(&self, w: &mut Writer) {
        w.raw(&self.node_id).u8(mode_to_u8(self.mode)).u64(self.fees.base_sats).u64(self.fees.per_router_sats).u64(self.fees.per_kib_sats);
        w.u64(self.signed_ms).raw(&self.lightning_key.unwrap_or([0; 33]));
        EntityCert::write(&self.entity_cert, w);
    }

    fn digest(&self) -> [u8; 32] {
        let mut w = Writer::with_capacity(Self::LEN);
        self.write_signed(&mut w);
        tagged_hash(TAG, &[&w.0])
    }

    pub fn sign(id: &Identity, mode: MeshMode, fees: FeeSchedule, lightning_key: Option<[u8; 33]>, entity_cert: Option<EntityCert>, signed_ms: u64) -> NodeRecord {
        let mut r = NodeRecord { node_id: id.node_id(), mode, fees, signed_ms, lightning_key, entity_cert, sig: [0; 64] };
        r.sig = id.sign(&r.digest());
        r
    }

    pub fn verify(&self) -> bool {
        verify(&self.node_id, &self.digest(), &self.sig)
    }

    /// Without an entity certificate (one adds 1 + entity + 96 bytes).
    pub const LEN: usize = 32 + 1 + 8 * 4 + 33 + 1 + 64;

    pub fn write(&self, w: &mut Writer) {
        self.write_signed(w);
        w.raw(&self.sig);
    }

    pub fn read(r: &mut Reader<'_>) -> Result<NodeRecord, WireError> {
        let node_id = r.id("record node id")?;
        let mode = mode_from_u8(r.u8("record mode")?)?;
        let fees = FeeSchedule { base_sats: r.u64("fee")?, per_router_sats: r.u64("fee")?, per_kib_sats: r.u64("fee")? };
        let signed_ms = r.u64("record time")?;
        let key: [u8; 33] = r.take(33, "record lightning key")?.try_into().map_err(|_| WireError::Invalid("lightning key"))?;
        let lightning_key = (key != [0; 33]).then_some(key);
        let entity_cert = EntityCert::read(r)?;
        Ok(NodeRecord { node_id, mode, fees, signed_ms, lightning_key, entity_cert, sig: r.sig("record signature")? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_any_change_breaks_the_signature() {
        let id = Identity::generate().unwrap();
        let rec = NodeRecord::sign(&id, MeshMode::PaymentGated, FeeSchedule { base_sats: 10, per_router_sats: 2, per_kib_sats: 1 }, Some([2; 33]), None, 1234);
        assert!(rec.verify());
        let mut w = Writer::default();
        rec.write(&mut w);
        assert_eq!(w.0.len(), NodeRecord::LEN);
        let back = NodeRecord::read(&mut Reader::new(&w.0)).unwrap();
        assert_eq!(back, rec);
        let mut bad = rec.clone();
        bad.fees.base_sats = 0;
        assert!(!bad.verify());
        let mut bad = rec.clone();
        bad.signed_ms += 1;
        assert!(!bad.verify());
        let mut bad = rec.clone();
        bad.lightning_key = None;
        assert!(!bad.verify(), "the bound Lightning key is signed");
        let authority = Identity::generate().unwrap();
        let mut bad = rec;
        bad.entity_cert = Some(EntityCert::sign(&authority, "acme", &id.node_id()));
        assert!(!bad.verify(), "the certificate is signed into the record");
        let with = NodeRecord::sign(&id, MeshMode::Open, FeeSchedule::default(), None, bad.entity_cert.clone(), 5);
        let mut w = Writer::default();
        with.write(&mut w);
        assert_eq!(NodeRecord::read(&mut Reader::new(&w.0)).unwrap(), with);
    }

    #[test]
    fn fees_apply_to_paid_traffic_only() {
        let f = FeeSchedule { base_sats: 10, per_router_sats: 2, per_kib_sats: 1 };
        assert_eq!(f.fee(TrafficClass::Paid, 2, 1025), 10 + 4 + 2);
        assert_eq!(f.fee(TrafficClass::Bitcoin, 2, 1025), 0);
    }
}
