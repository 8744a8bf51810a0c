//! The quote and (stub) payment round trips that come before a paid
//! packet, source-routed along the packet's own path:
//!
//! - QUOTE out: each payee (routers in order, then the destination)
//!   appends its invoice for its share of this packet; the destination
//!   turns the message around and it travels back to the source, which so
//!   gets every payee's invoice at once.
//! - PAY out (stub backend only): the source sends the invoices again;
//!   each payee records the credit and appends the preimage of its own;
//!   back the same way. With the Lightning backend the source pays each
//!   invoice through the Lightning module instead.
//!
//! Not signed: every invoice is signed by its payee and checked by the
//! source, and every preimage is checked against its invoice's hash, so a
//! node that alters the message can only make the round trip fail.
//!
//! ```text
//! version u8 | stage u8 | back u8 | source [32] | destination [32] | routers: n u8, n × [32]
//! | hop_index u8 | packet_id [32] | fee_sats u64 | created_ms u64
//! | invoices: n u8, n × (len u16, ascii) | preimages: n u8, n × [32]
//! ```

use crate::bolt11::MAX_INVOICE;
use crate::packet::{path_hop, path_previous, DataPacket, MAX_ROUTERS, VERSION};
use crate::wire::{Reader, WireError, Writer};
use mesh_api::{NodeId, PacketId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Quote,
    Pay,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settle {
    pub stage: Stage,
    /// On the way back to the source.
    pub back: bool,
    pub source: NodeId,
    pub destination: NodeId,
    /// Routers from source to destination.
    pub routers: Vec<NodeId>,
    /// Out: position in `routers ++ [destination]`; back: in
    /// `reversed(routers) ++ [source]`.
    pub hop_index: u8,
    pub packet_id: PacketId,
    pub fee_sats: u64,
    /// The packet's creation time (payees check invoice validity against it).
    pub created_ms: u64,
    /// Payees' invoices in path order ("" where a share is zero).
    pub invoices: Vec<String>,
    /// Released preimages in path order (PAY only).
    pub preimages: Vec<[u8; 32]>,
}

impl Settle {
    /// `stage` for `packet` (id `packet_id`), leaving its source.
    pub fn outbound(stage: Stage, packet: &DataPacket, packet_id: PacketId, invoices: Vec<String>) -> Settle {
        Settle {
            stage,
            back: false,
            source: packet.source,
            destination: packet.destination,
            routers: packet.routers.clone(),
            hop_index: 0,
            packet_id,
            fee_sats: packet.fee_sats,
            created_ms: packet.created_ms,
            invoices,
            preimages: Vec::new(),
        }
    }

    /// The node position `i` of this copy's way is addressed to.
    pub fn hop(&self, i: usize) -> Option<&NodeId> {
        if !self.back {
            return path_hop(&self.routers, &self.destination, i);
        }
        let n = self.routers.len();
        match i.cmp(&n) {
            std::cmp::Ordering::Less => self.routers.get(n - 1 - i),
            std::cmp::Ordering::Equal => Some(&self.source),
            std::cmp::Ordering::Greater => None,
        }
    }

    /// Who must have sent the copy addressed to position `i`.
    pub fn previous(&self, i: usize) -> Option<&NodeId> {
        match (self.back, i) {
            (false, _) => path_previous(&self.source, &self.routers, &self.destination, i),
            (true, 0) => Some(&self.destination),
            (true, _) => self.hop(i - 1),
        }
    }

    pub fn write(&self, w: &mut Writer) {
        let stage = match self.stage {
            Stage::Quote => 1,
            Stage::Pay => 2,
        };
        w.u8(VERSION).u8(stage).u8(u8::from(self.back)).raw(&self.source).raw(&self.destination).ids(&self.routers);
        w.u8(self.hop_index).raw(&self.packet_id).u64(self.fee_sats).u64(self.created_ms);
        w.u8(self.invoices.len() as u8);
        for inv in &self.invoices {
            w.u16(inv.len() as u16).raw(inv.as_bytes());
        }
        w.ids(&self.preimages);
    }

    pub fn read(r: &mut Reader<'_>) -> Result<Settle, WireError> {
        let version = r.u8("version")?;
        if version != VERSION {
            return Err(WireError::BadVersion(version));
        }
        let stage = match r.u8("stage")? {
            1 => Stage::Quote,
            2 => Stage::Pay,
            _ => return Err(WireError::Invalid("stage")),
        };
        let back = match r.u8("direction")? {
            0 => false,
            1 => true,
            _ => return Err(WireError::Invalid("direction")),
        };
        let source = r.id("source")?;
        let destination = r.id("destination")?;
        let routers = r.ids("routers", MAX_ROUTERS)?;
        let hop_index = r.u8("hop index")?;
        let packet_id = r.id("packet id")?;
        let fee_sats = r.u64("fee")?;
        let created_ms = r.u64("created")?;
        let n = usize::from(r.u8("invoices")?);
        if n > routers.len() + 1 {
            return Err(WireError::TooLong { field: "invoices", len: n, max: routers.len() + 1 });
        }
        let mut invoices = Vec::with_capacity(n);
        for _ in 0..n {
            let len = usize::from(r.u16("invoice length")?);
            if len > MAX_INVOICE {
                return Err(WireError::TooLong { field: "invoice", len, max: MAX_INVOICE });
            }
            invoices.push(std::str::from_utf8(r.take(len, "invoice")?).map_err(|_| WireError::Invalid("invoice text"))?.to_string());
        }
        let preimages = r.ids("preimages", MAX_ROUTERS + 1)?;
        Ok(Settle { stage, back, source, destination, routers, hop_index, packet_id, fee_sats, created_ms, invoices, preimages })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settle_messages_round_trip_and_walk_the_path_both_ways() {
        let s = Settle {
            stage: Stage::Pay,
            back: false,
            source: [1; 32],
            destination: [4; 32],
            routers: vec![[2; 32], [3; 32]],
            hop_index: 0,
            packet_id: [9; 32],
            fee_sats: 100,
            created_ms: 5,
            invoices: vec!["lnbcrt1".into(), String::new()],
            preimages: vec![[7; 32]],
        };
        let mut w = Writer::default();
        s.write(&mut w);
        let mut r = Reader::new(&w.0);
        assert_eq!(Settle::read(&mut r).unwrap(), s);
        r.finish().unwrap();
        let out: Vec<_> = (0..4).map(|i| (s.previous(i).copied(), s.hop(i).copied())).collect();
        assert_eq!(out, vec![(Some([1; 32]), Some([2; 32])), (Some([2; 32]), Some([3; 32])), (Some([3; 32]), Some([4; 32])), (Some([4; 32]), None)]);
        let back = Settle { back: true, ..s };
        let out: Vec<_> = (0..4).map(|i| (back.previous(i).copied(), back.hop(i).copied())).collect();
        assert_eq!(out, vec![(Some([4; 32]), Some([3; 32])), (Some([3; 32]), Some([2; 32])), (Some([2; 32]), Some([1; 32])), (Some([1; 32]), None)]);
    }
}
