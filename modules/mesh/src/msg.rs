//! What travels on a link: one message per mesh frame, its first byte the
//! type. Hello and Auth authenticate the link; Ping/Pong keep it alive;
//! Advert carries routes; Data and Control are routed packets; RouteReq
//! and RouteResp are discovery; Settle is the quote/payment round trip
//! before a paid packet.

use crate::control::Control;
use crate::identity::{tagged_hash, verify, Identity};
use crate::packet::{DataPacket, MAX_ROUTERS};
use crate::record::NodeRecord;
use crate::settle::Settle;
use crate::wire::{Reader, WireError, Writer};
use mesh_api::{NodeId, PacketId};

pub const LINK_VERSION: u8 = 1;
/// Entries one advert carries at most (bigger tables go in several).
pub const MAX_ADVERT_ENTRIES: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertEntry {
    pub destination: NodeId,
    /// `None`: withdrawn (or poisoned: "not through me").
    pub route: Option<(Vec<NodeId>, NodeRecord)>,
}

/// A neighbour's routes: for each destination the routers between the
/// sender and it, and its newest signed record. Signed by the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    pub sender: NodeId,
    pub seq: u64,
    pub entries: Vec<AdvertEntry>,
    pub sig: [u8; 64],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteReq {
    pub origin: NodeId,
    pub req_id: u64,
    pub target: NodeId,
    pub max_hops: u8,
    pub created_ms: u64,
    pub sig: [u8; 64],
    /// Who forwarded it so far, in order (not signed: each forwarder
    /// appends itself, and the target signs the trail it answers with).
    pub trail: Vec<NodeId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteResp {
    pub origin: NodeId,
    pub req_id: u64,
    /// Routers from origin to target.
    pub routers: Vec<NodeId>,
    pub record: NodeRecord,
    pub sig: [u8; 64],
    /// Position in reversed(routers) ++ [origin] of the node this copy is for.
    pub hop_index: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkMsg {
    Hello { version: u8, nonce: [u8; 32] },
    /// `sig` signs (peer's nonce ‖ own nonce ‖ node id) with the record's key.
    Auth { record: NodeRecord, sig: [u8; 64] },
    Ping(u64),
    Pong(u64),
    Advert(Advert),
    Data(Box<DataPacket>, PacketId),
    Control(Control),
    RouteReq(RouteReq),
    RouteResp(RouteResp),
    Settle(Settle),
}

const T_HELLO: u8 = 1;
const T_AUTH: u8 = 2;
const T_PING: u8 = 3;
const T_PONG: u8 = 4;
const T_ADVERT: u8 = 5;
const T_DATA: u8 = 6;
const T_CONTROL: u8 = 7;
const T_ROUTE_REQ: u8 = 8;
const T_ROUTE_RESP: u8 = 9;
const T_SETTLE: u8 = 10;

pub fn auth_digest(peer_nonce: &[u8; 32], own_nonce: &[u8; 32], node: &NodeId) -> [u8; 32] {
    tagged_hash("commons-mesh/v1/link-auth", &[peer_nonce, own_nonce, node])
}

impl Advert {
    fn write_signed(&self, w: &mut Writer) {
        w.raw(&self.sender).u64(self.seq).u16(self.entries.len() as u16);
        for e in &self.entries {
            w.raw(&e.destination);
            match &e.route {
                None => {
                    w.u8(0);
                }
                Some((path, rec)) => {
                    w.u8(1).ids(path);
                    rec.write(w);
                }
            }
        }
    }

    fn digest(&self) -> [u8; 32] {
        let mut w = Writer::default();
        self.write_signed(&mut w);
        tagged_hash("commons-mesh/v1/advert", &[&w.0])
    }

    pub fn new(id: &Identity, seq: u64, entries: Vec<AdvertEntry>) -> Advert {
        let mut a = Advert { sender: id.node_id(), seq, entries, sig: [0; 64] };
        a.sig = id.sign(&a.digest());
        a
    }

    pub fn verify(&self) -> bool {
        verify(&self.sender, &self.digest(), &self.sig)
    }
}

impl RouteReq {
    fn digest(origin: &NodeId, req_id: u64, target: &NodeId, max_hops: u8, created_ms: u64) -> [u8; 32] {
        let mut w = Writer::default();
        w.raw(origin).u64(req_id).raw(target).u8(max_hops).u64(created_ms);
        tagged_hash("commons-mesh/v1/route-req", &[&w.0])
    }

    pub fn new(id: &Identity, req_id: u64, target: NodeId, max_hops: u8, created_ms: u64) -> RouteReq {
        let sig = id.sign(&RouteReq::digest(&id.node_id(), req_id, &target, max_hops, created_ms));
        RouteReq { origin: id.node_id(), req_id, target, max_hops, created_ms, sig, trail: Vec::new() }
    }

    pub fn verify(&self) -> bool {
        verify(&self.origin, &RouteReq::digest(&self.origin, self.req_id, &self.target, self.max_hops, self.created_ms), &self.sig)
    }
}

impl RouteResp {
    fn digest(origin: &NodeId, req_id: u64, routers: &[NodeId], record: &NodeRecord) -> [u8; 32] {
        let mut w = Writer::default();
        w.raw(origin).u64(req_id).ids(routers);
        record.write(&mut w);
        tagged_hash("commons-mesh/v1/route-resp", &[&w.0])
    }

    /// The target's answer to `req`, with its own fresh `record`.
    pub fn new(id: &Identity, req: &RouteReq, record: NodeRecord) -> RouteResp {
        let sig = id.sign(&RouteResp::digest(&req.origin, req.req_id, &req.trail, &record));
        RouteResp { origin: req.origin, req_id: req.req_id, routers: req.trail.clone(), record, sig, hop_index: 0 }
    }

    /// Signed by the node its record names, and the record itself valid.
    pub fn verify(&self) -> bool {
        self.record.verify() && verify(&self.record.node_id, &RouteResp::digest(&self.origin, self.req_id, &self.routers, &self.record), &self.sig)
    }

    /// Position `i` of the way back: reversed routers, then the origin.
    pub fn hop(&self, i: usize) -> Option<&NodeId> {
        let n = self.routers.len();
        if i < n {
            self.routers.get(n - 1 - i)
        } else if i == n {
            Some(&self.origin)
        } else {
            None
        }
    }

    pub fn previous(&self, i: usize) -> Option<&NodeId> {
        if i == 0 {
            Some(&self.record.node_id)
        } else {
            self.hop(i - 1)
        }
    }
}

impl LinkMsg {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(match self {
            LinkMsg::Data(p, _) => 700 + p.payload.len(),
            _ => 256,
        });
        match self {
            LinkMsg::Hello { version, nonce } => {
                w.u8(T_HELLO).u8(*version).raw(nonce);
            }
            LinkMsg::Auth { record, sig } => {
                w.u8(T_AUTH);
                record.write(&mut w);
                w.raw(sig);
            }
            LinkMsg::Ping(n) => {
                w.u8(T_PING).u64(*n);
            }
            LinkMsg::Pong(n) => {
                w.u8(T_PONG).u64(*n);
            }
            LinkMsg::Advert(a) => {
                w.u8(T_ADVERT);
                a.write_signed(&mut w);
                w.raw(&a.sig);
            }
            LinkMsg::Data(p, _) => {
                w.u8(T_DATA);
                p.write(&mut w);
            }
            LinkMsg::Control(c) => {
                w.u8(T_CONTROL);
                c.write(&mut w);
            }
            LinkMsg::RouteReq(q) => {
                w.u8(T_ROUTE_REQ).raw(&q.origin).u64(q.req_id).raw(&q.target).u8(q.max_hops).u64(q.created_ms).raw(&q.sig).ids(&q.trail);
            }
            LinkMsg::RouteResp(s) => {
                w.u8(T_ROUTE_RESP).raw(&s.origin).u64(s.req_id).ids(&s.routers);
                s.record.write(&mut w);
                w.raw(&s.sig).u8(s.hop_index);
            }
            LinkMsg::Settle(s) => {
                w.u8(T_SETTLE);
                s.write(&mut w);
            }
        }
        w.0
    }

    pub fn decode(buf: &[u8]) -> Result<LinkMsg, WireError> {
        let mut r = Reader::new(buf);
        let msg = match r.u8("type")? {
            T_HELLO => LinkMsg::Hello { version: r.u8("version")?, nonce: r.id("nonce")? },
            T_AUTH => LinkMsg::Auth { record: NodeRecord::read(&mut r)?, sig: r.sig("auth signature")? },
            T_PING => LinkMsg::Ping(r.u64("ping")?),
            T_PONG => LinkMsg::Pong(r.u64("pong")?),
            T_ADVERT => {
                let sender = r.id("advert sender")?;
                let seq = r.u64("advert seq")?;
                let n = r.u16("advert entries")? as usize;
                if n > MAX_ADVERT_ENTRIES {
                    return Err(WireError::TooLong { field: "advert entries", len: n, max: MAX_ADVERT_ENTRIES });
                }
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let destination = r.id("advert destination")?;
                    let route = match r.u8("advert flag")? {
                        0 => None,
                        1 => Some((r.ids("advert path", MAX_ROUTERS)?, NodeRecord::read(&mut r)?)),
                        _ => return Err(WireError::Invalid("advert flag")),
                    };
                    entries.push(AdvertEntry { destination, route });
                }
                LinkMsg::Advert(Advert { sender, seq, entries, sig: r.sig("advert signature")? })
            }
            T_DATA => {
                let (p, pid) = DataPacket::read(&mut r, buf)?;
                LinkMsg::Data(Box::new(p), pid)
            }
            T_CONTROL => LinkMsg::Control(Control::read(&mut r)?),
            T_ROUTE_REQ => LinkMsg::RouteReq(RouteReq {
                origin: r.id("origin")?,
                req_id: r.u64("request id")?,
                target: r.id("target")?,
                max_hops: r.u8("max hops")?,
                created_ms: r.u64("created")?,
                sig: r.sig("signature")?,
                trail: r.ids("trail", MAX_ROUTERS)?,
            }),
            T_ROUTE_RESP => LinkMsg::RouteResp(RouteResp {
                origin: r.id("origin")?,
                req_id: r.u64("request id")?,
                routers: r.ids("routers", MAX_ROUTERS)?,
                record: NodeRecord::read(&mut r)?,
                sig: r.sig("signature")?,
                hop_index: r.u8("hop index")?,
            }),
            T_SETTLE => LinkMsg::Settle(Settle::read(&mut r)?),
            t => return Err(WireError::UnknownType(t)),
        };
        r.finish()?;
        Ok(msg)
    }
}

/// Byte offset of a DATA frame's hop index (after the type byte and the
/// signed part and signature), so a router can forward the frame it
/// received with one byte changed instead of re-encoding it.
pub fn data_hop_index_offset(p: &DataPacket) -> usize {
    1 + 1 + 1 + 32 + 32 + 8 + 8 + 4 + 1 + 1 + 8 + 1 + 32 * p.routers.len() + 1 + p.protocol_id.len() + 4 + p.payload.len() + 64
}
