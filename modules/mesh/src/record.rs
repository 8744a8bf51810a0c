//! A node's signed record: who it is, its mode, its fee schedule and when
//! it signed. A node re-signs its record every advert interval; routes to
//! a node live only as long as its newest record is younger than the
//! route expiry, so a node that falls silent drops out of every table.

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
    pub sig: [u8; 64],
}

impl NodeRecord {
    fn digest(node_id: &NodeId, mode: MeshMode, fees: &FeeSchedule, signed_ms: u64) -> [u8; 32] {
        let mut w = Writer::with_capacity(72);
        w.raw(node_id).u8(mode_to_u8(mode)).u64(fees.base_sats).u64(fees.per_router_sats).u64(fees.per_kib_sats).u64(signed_ms);
        tagged_hash(TAG, &[&w.0])
    }

    pub fn sign(id: &Identity, mode: MeshMode, fees: FeeSchedule, signed_ms: u64) -> NodeRecord {
        let node_id = id.node_id();
        let sig = id.sign(&NodeRecord::digest(&node_id, mode, &fees, signed_ms));
        NodeRecord { node_id, mode, fees, signed_ms, sig }
    }

    pub fn verify(&self) -> bool {
        verify(&self.node_id, &NodeRecord::digest(&self.node_id, self.mode, &self.fees, self.signed_ms), &self.sig)
    }

    pub const LEN: usize = 32 + 1 + 8 * 4 + 64;

    pub fn write(&self, w: &mut Writer) {
        w.raw(&self.node_id).u8(mode_to_u8(self.mode)).u64(self.fees.base_sats).u64(self.fees.per_router_sats).u64(self.fees.per_kib_sats);
        w.u64(self.signed_ms).raw(&self.sig);
    }

    pub fn read(r: &mut Reader<'_>) -> Result<NodeRecord, WireError> {
        let node_id = r.id("record node id")?;
        let mode = mode_from_u8(r.u8("record mode")?)?;
        let fees = FeeSchedule { base_sats: r.u64("fee")?, per_router_sats: r.u64("fee")?, per_kib_sats: r.u64("fee")? };
        Ok(NodeRecord { node_id, mode, fees, signed_ms: r.u64("record time")?, sig: r.sig("record signature")? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_any_change_breaks_the_signature() {
        let id = Identity::generate().unwrap();
        let rec = NodeRecord::sign(&id, MeshMode::PaymentGated, FeeSchedule { base_sats: 10, per_router_sats: 2, per_kib_sats: 1 }, 1234);
        assert!(rec.verify());
        let mut w = Writer::default();
        rec.write(&mut w);
        assert_eq!(w.0.len(), NodeRecord::LEN);
        let back = NodeRecord::read(&mut Reader::new(&w.0)).unwrap();
        assert_eq!(back, rec);
        let mut bad = rec.clone();
        bad.fees.base_sats = 0;
        assert!(!bad.verify());
        let mut bad = rec;
        bad.signed_ms += 1;
        assert!(!bad.verify());
    }

    #[test]
    fn fees_apply_to_paid_traffic_only() {
        let f = FeeSchedule { base_sats: 10, per_router_sats: 2, per_kib_sats: 1 };
        assert_eq!(f.fee(TrafficClass::Paid, 2, 1025), 10 + 4 + 2);
        assert_eq!(f.fee(TrafficClass::Bitcoin, 2, 1025), 0);
    }
}
