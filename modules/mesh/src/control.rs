//! ACK and NACK: signed by the node that answers, routed back to the
//! source along the reverse of the path the packet took. Routers check
//! only that the path leads through them (a forged answer can fool only
//! its endpoint, and the endpoint verifies the signature).
//!
//! ```text
//! signed: version u8 | kind u8 | from [32] | to [32] | created_ms u64 | about [32]
//!         | reason u8 | reason arg u64 | routers: n u8, n × [32]
//! then:   signature [64] | hop_index u8
//! ```

use crate::identity::{tagged_hash, verify, Identity};
use crate::packet::{class_from_u8, class_to_u8, path_hop, path_previous, MAX_ROUTERS, VERSION};
use crate::wire::{Reader, WireError, Writer};
use mesh_api::{NackReason, NodeId, PacketId, PaymentFault};

const TAG: &str = "commons-mesh/v1/control";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    /// `None`: an ACK.
    pub nack: Option<NackReason>,
    pub from: NodeId,
    pub to: NodeId,
    pub created_ms: u64,
    pub about: PacketId,
    /// Routers from `from` to `to`, in that order.
    pub routers: Vec<NodeId>,
    pub sig: [u8; 64],
    pub hop_index: u8,
}

fn reason_code(r: &Option<NackReason>) -> (u8, u64) {
    match r {
        None => (0, 0),
        Some(NackReason::PaymentRequired { fee_sats }) => (1, *fee_sats),
        Some(NackReason::ClassRejected { class }) => (2, u64::from(class_to_u8(*class))),
        Some(NackReason::NoHandler) => (3, 0),
        Some(NackReason::HandlerBusy) => (4, 0),
        Some(NackReason::NoRoute) => (5, 0),
        Some(NackReason::RateLimited) => (6, 0),
        Some(NackReason::StorageFailed) => (7, 0),
        Some(NackReason::PaymentInvalid { fault }) => (8, PaymentFault::ALL.iter().position(|f| f == fault).unwrap_or(0) as u64),
        Some(NackReason::Monopoly) => (9, 0),
    }
}

fn reason_from(code: u8, arg: u64) -> Result<Option<NackReason>, WireError> {
    Ok(match code {
        0 => None,
        1 => Some(NackReason::PaymentRequired { fee_sats: arg }),
        2 => Some(NackReason::ClassRejected { class: class_from_u8(u8::try_from(arg).map_err(|_| WireError::Invalid("class"))?)? }),
        3 => Some(NackReason::NoHandler),
        4 => Some(NackReason::HandlerBusy),
        5 => Some(NackReason::NoRoute),
        6 => Some(NackReason::RateLimited),
        7 => Some(NackReason::StorageFailed),
        9 => Some(NackReason::Monopoly),
        8 => Some(NackReason::PaymentInvalid { fault: *usize::try_from(arg).ok().and_then(|i| PaymentFault::ALL.get(i)).ok_or(WireError::Invalid("payment fault"))? }),
        _ => return Err(WireError::Invalid("nack reason")),
    })
}

impl Control {
    fn write_signed(&self, w: &mut Writer) {
        let (code, arg) = reason_code(&self.nack);
        w.u8(VERSION).u8(u8::from(self.nack.is_some())).raw(&self.from).raw(&self.to).u64(self.created_ms).raw(&self.about);
        w.u8(code).u64(arg).ids(&self.routers);
    }

    fn digest(&self) -> [u8; 32] {
        let mut w = Writer::with_capacity(200);
        self.write_signed(&mut w);
        tagged_hash(TAG, &[&w.0])
    }

    /// An answer from `id` to `to` about `about`, back over `routers`.
    pub fn new(id: &Identity, to: NodeId, about: PacketId, nack: Option<NackReason>, routers: Vec<NodeId>, now_ms: u64) -> Control {
        let mut c = Control { nack, from: id.node_id(), to, created_ms: now_ms, about, routers, sig: [0; 64], hop_index: 0 };
        c.sig = id.sign(&c.digest());
        c
    }

    pub fn verify(&self) -> bool {
        verify(&self.from, &self.digest(), &self.sig)
    }

    pub fn write(&self, w: &mut Writer) {
        self.write_signed(w);
        w.raw(&self.sig).u8(self.hop_index);
    }

    pub fn read(r: &mut Reader<'_>) -> Result<Control, WireError> {
        let version = r.u8("version")?;
        if version != VERSION {
            return Err(WireError::BadVersion(version));
        }
        let kind = r.u8("control kind")?;
        let from = r.id("from")?;
        let to = r.id("to")?;
        let created_ms = r.u64("created")?;
        let about = r.id("about")?;
        let nack = reason_from(r.u8("reason")?, r.u64("reason arg")?)?;
        if kind != u8::from(nack.is_some()) {
            return Err(WireError::Invalid("control kind"));
        }
        let routers = r.ids("routers", MAX_ROUTERS)?;
        Ok(Control { nack, from, to, created_ms, about, routers, sig: r.sig("signature")?, hop_index: r.u8("hop index")? })
    }

    pub fn hop(&self, i: usize) -> Option<&NodeId> {
        path_hop(&self.routers, &self.to, i)
    }

    pub fn previous(&self, i: usize) -> Option<&NodeId> {
        path_previous(&self.from, &self.routers, &self.to, i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_api::TrafficClass;

    #[test]
    fn every_reason_round_trips_through_its_code() {
        let mut all = vec![
            None,
            Some(NackReason::PaymentRequired { fee_sats: 42 }),
            Some(NackReason::ClassRejected { class: TrafficClass::StratumV2 }),
            Some(NackReason::NoHandler),
            Some(NackReason::HandlerBusy),
            Some(NackReason::NoRoute),
            Some(NackReason::RateLimited),
            Some(NackReason::StorageFailed),
            Some(NackReason::Monopoly),
        ];
        all.extend(PaymentFault::ALL.iter().map(|f| Some(NackReason::PaymentInvalid { fault: *f })));
        for r in all {
            let (code, arg) = reason_code(&r);
            assert_eq!(reason_from(code, arg), Ok(r));
        }
        assert!(reason_from(8, PaymentFault::ALL.len() as u64).is_err());
    }
}
