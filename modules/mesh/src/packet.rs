//! DATA packets: the canonical layout, the packet id and the source's
//! signature. Layout (big-endian):
//!
//! ```text
//! signed:   version u8 | flags u8 | source [32] | destination [32] | sequence u64
//!           | created_ms u64 | ttl_secs u32 | hop_limit u8 | class u8 | fee_sats u64
//!           | routers: n u8, n × [32] | protocol_id: len u8, bytes | payload: len u32, bytes
//! then:     signature [64] | hop_index u8 | payment: len u32, bytes
//! ```
//!
//! `packet_id` = tagged_hash("commons-mesh/v1/packet", signed bytes); the
//! source signs it. Only the hop index (which router is next) and the
//! payment bundle (part 2) change on the way, so they sit outside.

use crate::identity::{tagged_hash, verify, Identity};
use crate::wire::{Reader, WireError, Writer};
use mesh_api::{NodeId, PacketId, TrafficClass};

pub const VERSION: u8 = 1;
const TAG: &str = "commons-mesh/v1/packet";
/// Seed 003: at most 10 routers between source and destination.
pub const MAX_ROUTERS: usize = 10;
pub const MAX_PROTOCOL_ID: usize = 64;
/// The layout's own ceiling; a link's `max_frame` is usually lower.
pub const MAX_PAYLOAD: usize = 1 << 20;
pub const MAX_PAYMENT: usize = 16 << 10;
/// Bit 0 of `flags`: the source wants an ACK.
pub const FLAG_ACK: u8 = 1;

pub fn class_to_u8(c: TrafficClass) -> u8 {
    match c {
        TrafficClass::Bitcoin => 0,
        TrafficClass::Governance => 1,
        TrafficClass::StratumV2 => 2,
        TrafficClass::Paid => 3,
    }
}

pub fn class_from_u8(v: u8) -> Result<TrafficClass, WireError> {
    match v {
        0 => Ok(TrafficClass::Bitcoin),
        1 => Ok(TrafficClass::Governance),
        2 => Ok(TrafficClass::StratumV2),
        3 => Ok(TrafficClass::Paid),
        _ => Err(WireError::Invalid("traffic class")),
    }
}

/// Position `i` of `routers ++ [end]`, the nodes a source-routed message
/// is addressed to in turn.
pub fn path_hop<'a>(routers: &'a [NodeId], end: &'a NodeId, i: usize) -> Option<&'a NodeId> {
    match i.cmp(&routers.len()) {
        std::cmp::Ordering::Less => routers.get(i),
        std::cmp::Ordering::Equal => Some(end),
        std::cmp::Ordering::Greater => None,
    }
}

/// Who must have sent the copy addressed to position `i`: `start` for the
/// first, else the position before.
pub fn path_previous<'a>(start: &'a NodeId, routers: &'a [NodeId], end: &'a NodeId, i: usize) -> Option<&'a NodeId> {
    if i == 0 {
        Some(start)
    } else {
        path_hop(routers, end, i - 1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPacket {
    pub flags: u8,
    pub source: NodeId,
    pub destination: NodeId,
    pub sequence: u64,
    pub created_ms: u64,
    pub ttl_secs: u32,
    pub hop_limit: u8,
    pub class: TrafficClass,
    pub fee_sats: u64,
    /// The routers in order; the destination follows the last.
    pub routers: Vec<NodeId>,
    pub protocol_id: String,
    pub payload: Vec<u8>,
    pub sig: [u8; 64],
    /// Index into routers ++ [destination] of the node this copy is for.
    pub hop_index: u8,
    pub payment: Vec<u8>,
}

impl DataPacket {
    fn write_signed(&self, w: &mut Writer) {
        w.u8(VERSION).u8(self.flags).raw(&self.source).raw(&self.destination).u64(self.sequence).u64(self.created_ms);
        w.u32(self.ttl_secs).u8(self.hop_limit).u8(class_to_u8(self.class)).u64(self.fee_sats).ids(&self.routers);
        w.short(self.protocol_id.as_bytes()).long(&self.payload);
    }

    pub fn id(&self) -> PacketId {
        let mut w = Writer::with_capacity(160 + self.payload.len());
        self.write_signed(&mut w);
        tagged_hash(TAG, &[&w.0])
    }

    /// Sign as the source (which must be `id`'s node).
    pub fn sign(&mut self, id: &Identity) -> PacketId {
        let pid = self.id();
        self.sig = id.sign(&pid);
        pid
    }

    /// The source's signature over the packet id.
    pub fn verify(&self, pid: &PacketId) -> bool {
        verify(&self.source, pid, &self.sig)
    }

    pub fn write(&self, w: &mut Writer) {
        self.write_signed(w);
        w.raw(&self.sig).u8(self.hop_index).long(&self.payment);
    }

    /// Decode, returning the packet and its id (hashed from the bytes as received).
    pub fn read(r: &mut Reader<'_>, buf: &[u8]) -> Result<(DataPacket, PacketId), WireError> {
        let start = r.pos();
        let version = r.u8("version")?;
        if version != VERSION {
            return Err(WireError::BadVersion(version));
        }
        let flags = r.u8("flags")?;
        let source = r.id("source")?;
        let destination = r.id("destination")?;
        let sequence = r.u64("sequence")?;
        let created_ms = r.u64("created")?;
        let ttl_secs = r.u32("ttl")?;
        let hop_limit = r.u8("hop limit")?;
        let class = class_from_u8(r.u8("class")?)?;
        let fee_sats = r.u64("fee")?;
        // Up to 255 decode, so a node can refuse a longer path as a hop
        // limit violation (counted) rather than as a malformed frame.
        let routers = r.ids("routers", u8::MAX as usize)?;
        let protocol_id = String::from_utf8(r.short("protocol id", MAX_PROTOCOL_ID)?.to_vec()).map_err(|_| WireError::Invalid("protocol id"))?;
        let payload = r.long("payload", MAX_PAYLOAD)?.to_vec();
        let pid = tagged_hash(TAG, &[&buf[start..r.pos()]]);
        let sig = r.sig("signature")?;
        let hop_index = r.u8("hop index")?;
        let payment = r.long("payment", MAX_PAYMENT)?.to_vec();
        let p = DataPacket { flags, source, destination, sequence, created_ms, ttl_secs, hop_limit, class, fee_sats, routers, protocol_id, payload, sig, hop_index, payment };
        Ok((p, pid))
    }

    /// The node at position `i` of routers ++ [destination].
    pub fn hop(&self, i: usize) -> Option<&NodeId> {
        path_hop(&self.routers, &self.destination, i)
    }

    /// The node that should have sent the copy addressed to position `i`.
    pub fn previous(&self, i: usize) -> Option<&NodeId> {
        path_previous(&self.source, &self.routers, &self.destination, i)
    }

    pub fn wants_ack(&self) -> bool {
        self.flags & FLAG_ACK != 0
    }
}
