//! The data path: packets this node originates, forwards or receives,
//! and the ACK/NACK answers that travel back.
//!
//! Every node a DATA packet reaches checks, cheapest first: it is the
//! next hop on the signed path; the link's peer is the hop before; the
//! path fits the hop limit (≤ 10 routers); the ttl has not run out (±
//! clock skew) and is within this node's maximum; the source's signature;
//! not seen before (dedup); the declared class matches the payload bytes;
//! this node's mode lets the class through. The destination also checks
//! the source's sequence window before delivering.

use super::deliver::{self, Item};
use super::state::{Node, Pending};
use super::Ctx;
use commons_mesh::classify::classify;
use commons_mesh::control::Control;
use commons_mesh::mesh_api::{Delivery, InboundPacket, MeshMode, NackReason, NodeId, PacketId, SendPacketRequest, SendPacketResponse, TrafficClass};
use commons_mesh::msg::{data_hop_index_offset, LinkMsg};
use commons_mesh::packet::{DataPacket, FLAG_ACK, MAX_PROTOCOL_ID, MAX_ROUTERS};
use commons_mesh::window::Replay;
use commons_mesh::now_ms;
use hostd_sdk::{ErrorBody, ErrorCode};
use std::sync::MutexGuard;
use std::time::Instant;
use tokio::sync::oneshot;

/// ACKs awaited at once at most; past it packets go out without asking.
const MAX_PENDING: usize = 65_536;

/// The routers between `p`'s source and position `i`, reversed: the way
/// back from the node at `i` to the source.
pub(super) fn way_back(routers: &[NodeId], i: usize) -> Vec<NodeId> {
    routers[..i.min(routers.len())].iter().rev().copied().collect()
}

/// Answer `about` to `to` over `routers` (already reversed), leaving
/// through the neighbour `link_to`; NACKs sent are counted.
pub(super) fn answer(ctx: &Ctx, n: &mut Node, link_to: &NodeId, to: NodeId, about: PacketId, nack: Option<NackReason>, routers: Vec<NodeId>) {
    let is_nack = nack.is_some();
    let c = Control::new(&ctx.id, to, about, nack, routers, now_ms());
    if n.send_to(link_to, LinkMsg::Control(c).encode()) && is_nack {
        n.counters.nacks_sent += 1;
    }
}

/// The policy of this node's mode for `class` from `source`.
fn admit(n: &mut Node, class: TrafficClass, source: &NodeId, bytes: usize, fee: u64) -> Result<(), NackReason> {
    match (n.settings.mode, class) {
        (MeshMode::BitcoinOnly, TrafficClass::Bitcoin) => Ok(()),
        (MeshMode::BitcoinOnly, class) => Err(NackReason::ClassRejected { class }),
        (MeshMode::PaymentGated, TrafficClass::Paid) => Err(NackReason::PaymentRequired { fee_sats: fee }),
        (MeshMode::PaymentGated | MeshMode::Open, _) => {
            if n.charge(source, bytes) {
                Ok(())
            } else {
                Err(NackReason::RateLimited)
            }
        }
    }
}

pub fn on_data(ctx: &Ctx, peer: &NodeId, p: DataPacket, pid: PacketId, raw: &[u8]) {
    let now = now_ms();
    let me = ctx.id.node_id();
    let i = p.hop_index as usize;
    let (max_ttl, skew) = {
        let n = ctx.node();
        (n.settings.max_ttl_secs, n.settings.clock_skew_ms)
    };
    let until = p.created_ms.saturating_add(u64::from(p.ttl_secs) * 1000);
    let structural = if p.hop(i) != Some(&me) {
        Some("not_next_hop")
    } else if p.previous(i) != Some(peer) {
        Some("wrong_previous_hop")
    } else if p.routers.len() > p.hop_limit as usize || p.hop_limit as usize > MAX_ROUTERS {
        Some("hop_limit")
    } else if p.ttl_secs > max_ttl || p.created_ms > now + skew || until.saturating_add(skew) < now {
        Some("expired")
    } else {
        None
    };
    if let Some(why) = structural {
        ctx.node().counters.drop(why);
        return;
    }
    // The expensive check, outside the lock.
    let signed = p.verify(&pid);
    let mut n = ctx.node();
    if !signed {
        n.counters.drop("bad_signature");
        return;
    }
    n.counters.verified += 1;
    if !n.dedup.insert(pid, until.saturating_add(skew)) {
        n.counters.duplicates += 1;
        n.counters.drop("duplicate");
        return;
    }
    if classify(&p.payload) != p.class {
        n.counters.drop("class_mismatch");
        return;
    }
    if i < p.routers.len() && super::monopoly::refuses(&mut n, &p.routers) {
        n.counters.drop("monopoly_path");
        answer(ctx, &mut n, peer, p.source, pid, Some(NackReason::Monopoly), way_back(&p.routers, i));
        return;
    }
    if p.class == TrafficClass::Paid && n.settings.mode == MeshMode::PaymentGated {
        return super::paid::on_paid(ctx, n, peer, p, pid, raw, now);
    }
    let own_fee = n.table.record(&p.destination).map_or(0, |r| r.fees.fee(p.class, p.routers.len(), p.payload.len()));
    if let Err(reason) = admit(&mut n, p.class, &p.source, p.payload.len(), own_fee.max(p.fee_sats)) {
        n.counters.drop("refused_by_mode");
        answer(ctx, &mut n, peer, p.source, pid, Some(reason), way_back(&p.routers, i));
        return;
    }
    pass_on(ctx, n, peer, p, pid, raw, now);
}

/// A packet that passed every check here: forward it to the next hop,
/// or, at the destination, check the source's window and deliver it.
pub(super) fn pass_on(ctx: &Ctx, mut n: MutexGuard<'_, Node>, peer: &NodeId, p: DataPacket, pid: PacketId, raw: &[u8], now: u64) {
    let i = p.hop_index as usize;
    let (max_ttl, skew) = (n.settings.max_ttl_secs, n.settings.clock_skew_ms);
    if i < p.routers.len() {
        let Some(next) = p.hop(i + 1).copied() else { return };
        if n.link_to(&next).is_none() {
            n.counters.drop("no_link_to_next_hop");
            answer(ctx, &mut n, peer, p.source, pid, Some(NackReason::NoRoute), way_back(&p.routers, i));
            return;
        }
        // Forward the bytes as received, with the hop index moved on.
        let mut frame = raw.to_vec();
        frame[data_hop_index_offset(&p)] = p.hop_index + 1;
        if n.send_to(&next, frame) {
            n.counters.forwarded += 1;
        }
        return;
    }
    // This node is the destination.
    if !n.windows.contains_key(&p.source) && n.windows.len() >= n.settings.max_sources {
        // Windows idle past any ttl cannot be replayed into: forget them.
        let horizon = now.saturating_sub(u64::from(max_ttl) * 1000 + skew);
        let old: Vec<NodeId> = n.windows.iter().filter(|(_, w)| w.last_ms < horizon).map(|(s, _)| *s).collect();
        for s in old {
            n.windows.remove(&s);
            n.dirty.push(s);
        }
        if n.windows.len() >= n.settings.max_sources {
            n.counters.drop("too_many_sources");
            return;
        }
    }
    match n.windows.entry(p.source).or_default().accept(p.sequence, now) {
        Ok(()) => {}
        Err(r) => {
            n.counters.replays += 1;
            n.counters.drop(match r {
                Replay::Seen => "replay",
                Replay::TooOld => "replay_too_old",
            });
            return;
        }
    }
    n.dirty.push(p.source);
    n.counters.max_routers_seen = n.counters.max_routers_seen.max(p.routers.len() as u64);
    let Some(handler) = n.handlers.get(&p.protocol_id).cloned() else {
        n.counters.drop("no_handler");
        answer(ctx, &mut n, peer, p.source, pid, Some(NackReason::NoHandler), way_back(&p.routers, i));
        return;
    };
    let back = way_back(&p.routers, i);
    let ack = p.wants_ack().then_some((p.source, *peer, back));
    let routers = p.routers.len() as u8;
    let packet = InboundPacket {
        packet_id: pid,
        source: p.source,
        protocol_id: p.protocol_id,
        sequence: p.sequence,
        class: p.class,
        routers,
        created_ms: p.created_ms,
        payload: p.payload,
    };
    drop(n);
    deliver::enqueue(ctx, Item { handler, packet, ack });
}

pub fn on_control(ctx: &Ctx, link: u64, peer: &NodeId, mut c: Control) {
    let me = ctx.id.node_id();
    let i = c.hop_index as usize;
    let mut n = ctx.node();
    if !n.allow_control(link) {
        return;
    }
    if c.hop(i) != Some(&me) || c.previous(i) != Some(peer) {
        n.counters.drop("control_misrouted");
        return;
    }
    if i < c.routers.len() {
        let Some(next) = c.hop(i + 1).copied() else { return };
        c.hop_index += 1;
        n.send_to(&next, LinkMsg::Control(c).encode());
        return;
    }
    drop(n);
    if !c.verify() {
        ctx.node().counters.drop("control_bad_signature");
        return;
    }
    let mut n = ctx.node();
    let Some(pending) = n.pending.remove(&c.about) else {
        n.counters.drop("control_unsolicited");
        return;
    };
    let entitled = match &c.nack {
        None => c.from == pending.destination,
        Some(_) => c.from == pending.destination || pending.routers.contains(&c.from),
    };
    if !entitled {
        n.counters.drop("control_not_on_path");
        n.pending.insert(c.about, pending);
        return;
    }
    let delivery = match c.nack {
        None => {
            let rtt_us = pending.sent.elapsed().as_micros() as u64;
            n.counters.acked += 1;
            n.table.note_acked(&pending.destination, &pending.routers, rtt_us);
            Delivery::Acked { rtt_us }
        }
        Some(reason) => {
            n.counters.nacked += 1;
            Delivery::Nacked { by: c.from, reason }
        }
    };
    if let Some(w) = pending.waiter {
        let _ = w.send(delivery);
    }
}

/// Answers past their packet's ttl will not come.
pub fn expire_pending(n: &mut Node, now: u64) {
    let late: Vec<PacketId> = n.pending.iter().filter(|(_, p)| p.until_ms < now).map(|(id, _)| *id).collect();
    for id in late {
        if let Some(p) = n.pending.remove(&id) {
            n.table.note_lost(&p.destination, &p.routers);
            if let Some(w) = p.waiter {
                let _ = w.send(Delivery::NoAnswer);
            }
        }
    }
}

fn invalid(msg: String) -> ErrorBody {
    ErrorBody::new(ErrorCode::InvalidArgument, msg)
}

/// A packet this node signed and is about to send.
pub struct Outgoing {
    pub packet: DataPacket,
    pub pid: PacketId,
    pub link: u64,
    pub max_frame: usize,
    pub wants_ack: bool,
    pub confirm: bool,
    pub ttl: u64,
    pub response: SendPacketResponse,
    /// Some node on the path takes payment for it.
    pub needs_payment: bool,
}

/// Whether a payee on the path (its routers, then `dest`) takes payment
/// for `class`: paid traffic through a payment-gated node, as its signed
/// record says (a node whose record is unknown is assumed to). Never for
/// a path through a `bitcoin_only` node: it refuses paid traffic anyway,
/// so the packet goes unpaid and comes back with a typed refusal.
fn payment_needed(n: &Node, class: TrafficClass, routers: &[NodeId], dest: &NodeId) -> bool {
    let modes = || routers.iter().chain(std::iter::once(dest)).map(|id| n.table.record(id).map(|r| r.mode));
    class == TrafficClass::Paid && !modes().any(|m| m == Some(MeshMode::BitcoinOnly)) && modes().any(|m| m.is_none_or(|m| m == MeshMode::PaymentGated))
}

/// Prepare a packet from this node: pick the best path, sign. `Err`
/// for a bad request; `Ok(Err(response))` when this node's own mode
/// refuses it.
pub fn prepare(ctx: &Ctx, req: &SendPacketRequest) -> Result<Result<Outgoing, SendPacketResponse>, ErrorBody> {
    let now = now_ms();
    let me = ctx.id.node_id();
    let protocol_id = req.protocol_id.clone().unwrap_or_default();
    if protocol_id.len() > MAX_PROTOCOL_ID {
        return Err(invalid(format!("protocol_id is {} bytes; at most {MAX_PROTOCOL_ID}", protocol_id.len())));
    }
    if req.destination == me {
        return Err(invalid("the destination is this node".into()));
    }
    if req.payment_proof.is_some() {
        return Err(ErrorBody::new(
            ErrorCode::Unsupported,
            "payment_proof must be empty: a proof binds to the packet this node signs, so the node quotes and pays itself within the caller's budget ([mesh] pay_budget_sats / pay_budgets)",
        ));
    }
    let class = classify(&req.payload);
    let mut n = ctx.node();
    let ttl = req.ttl.unwrap_or(u64::from(n.settings.default_ttl_secs));
    if ttl == 0 || ttl > u64::from(n.settings.max_ttl_secs) {
        return Err(invalid(format!("ttl {ttl} s: between 1 and max_ttl_secs ({})", n.settings.max_ttl_secs)));
    }
    let paths = n.table.paths(&req.destination, now);
    if paths.is_empty() {
        return Err(ErrorBody::new(ErrorCode::NotFound, format!("no route to {}: call discover_route first", commons_mesh::mesh_api::hex(&req.destination))));
    }
    let path = match super::monopoly::choose_path(&mut n, paths, req.payload.len(), now) {
        Ok(p) => p,
        Err(why) => {
            drop(n);
            super::discovery::route_failed(ctx, req.destination, why.clone());
            return Err(ErrorBody::new(ErrorCode::NotFound, format!("no compliant route to {}: {why} ([mesh] anti_monopoly = \"strict\")", commons_mesh::mesh_api::hex(&req.destination))));
        }
    };
    let fee = n.table.record(&req.destination).map_or(0, |r| r.fees.fee(class, path.routers.len(), req.payload.len()));
    let response = SendPacketResponse {
        success: false,
        packet_id: [0; 32],
        route_length: path.routers.len() as u32 + 1,
        estimated_cost_sats: fee,
        error: None,
        delivery: Delivery::Unconfirmed,
    };
    if n.settings.mode == MeshMode::BitcoinOnly && class != TrafficClass::Bitcoin {
        let reason = NackReason::ClassRejected { class };
        n.counters.nacked += 1;
        return Ok(Err(SendPacketResponse { error: Some(reason.to_string()), delivery: Delivery::Nacked { by: me, reason }, ..response }));
    }
    if n.next_seq > n.seq_reserved {
        return Err(ErrorBody::new(ErrorCode::Busy, "waiting for the next block of sequence numbers to be stored"));
    }
    let sequence = n.next_seq;
    n.next_seq += 1;
    if n.next_seq == n.seq_reserved - super::store::SEQ_BLOCK / 2 {
        tokio::spawn(super::store::extend_sequence(ctx.clone()));
    }
    n.sends += 1;
    let wants_ack = (req.confirm || n.sends % n.settings.ack_every == 1) && n.pending.len() < MAX_PENDING;
    if req.confirm && !wants_ack {
        return Err(ErrorBody::new(ErrorCode::Busy, format!("{MAX_PENDING} packets already await answers")));
    }
    let first = path.routers.first().copied().unwrap_or(req.destination);
    let Some(link) = n.link_to(&first) else {
        return Err(ErrorBody::new(ErrorCode::NotFound, "the first hop's link just went down; try again"));
    };
    let max_frame = n.links.get(&link).map_or(0, |l| l.max_frame as usize);
    let needs_payment = payment_needed(&n, class, &path.routers, &req.destination);
    let mut packet = DataPacket {
        flags: if wants_ack { FLAG_ACK } else { 0 },
        source: me,
        destination: req.destination,
        sequence,
        created_ms: now,
        ttl_secs: ttl as u32,
        hop_limit: MAX_ROUTERS as u8,
        class,
        fee_sats: fee,
        routers: path.routers,
        protocol_id,
        payload: req.payload.clone(),
        sig: [0; 64],
        hop_index: 0,
        payment: Vec::new(),
    };
    drop(n);
    let pid = packet.sign(&ctx.id);
    Ok(Ok(Outgoing { packet, pid, link, max_frame, wants_ack, confirm: req.confirm, ttl, response, needs_payment }))
}

/// The answer to a confirmed send, or NoAnswer after `confirm_timeout_ms`.
pub async fn delivery(ctx: &Ctx, rx: oneshot::Receiver<Delivery>) -> Delivery {
    let wait = std::time::Duration::from_millis(ctx.node().settings.confirm_timeout_ms);
    tokio::time::timeout(wait, rx).await.ok().and_then(Result::ok).unwrap_or(Delivery::NoAnswer)
}

/// Queue a prepared packet on its first hop's link. With `confirm`, also
/// the receiver of its answer.
pub fn launch(ctx: &Ctx, o: Outgoing) -> Result<(SendPacketResponse, Option<oneshot::Receiver<Delivery>>), ErrorBody> {
    let Outgoing { packet, pid, link, max_frame, wants_ack, confirm, ttl, response, .. } = o;
    let (destination, routers) = (packet.destination, packet.routers.clone());
    let frame = LinkMsg::Data(Box::new(packet), pid).encode();
    if frame.len() > max_frame {
        return Err(invalid(format!("the packet is {} bytes; the first link carries at most {max_frame}", frame.len())));
    }
    let mut n = ctx.node();
    let mut rx = None;
    if wants_ack {
        let (tx, r) = oneshot::channel();
        if confirm {
            rx = Some(r);
        }
        let until_ms = now_ms() + (ttl * 1000).min(n.settings.confirm_timeout_ms.max(1000));
        n.table.note_sent(&destination, &routers);
        n.pending.insert(pid, Pending { destination, routers, sent: Instant::now(), until_ms, waiter: Some(tx) });
    }
    if !n.send(link, frame) {
        n.pending.remove(&pid);
        return Err(ErrorBody::new(ErrorCode::Busy, "the first hop's queue is full"));
    }
    n.counters.sent += 1;
    Ok((SendPacketResponse { success: true, packet_id: pid, ..response }, rx))
}
