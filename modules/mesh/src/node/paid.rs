//! A paid packet at a payment-gated node: the fee is at least the
//! destination's schedule, this node's entry of the bundle proves payment
//! of its share for this very packet (a paid invoice, or a CTV template
//! whose funding output the node backend confirms), and its payment hash
//! (for CTV: its funding outpoint) was never used here. The hash is then
//! written durably (with the ledger) before the packet goes on, and a
//! PaymentVerified event names the payment.

use super::forward::{answer, pass_on, way_back};
use super::state::Node;
use super::{paystore, store, Ctx};
use commons_mesh::mesh_api::{encode, NackReason, NodeId, PacketId, PaymentEvent, PaymentFault};
use commons_mesh::now_ms;
use commons_mesh::packet::DataPacket;
use commons_mesh::proof::{payee_share, shares, verify, Expected, Proven};
use hostd_sdk::EventType;
use std::sync::MutexGuard;

fn refuse(ctx: &Ctx, n: &mut Node, peer: &NodeId, p: &DataPacket, pid: PacketId, fault: PaymentFault) {
    *n.pay.refused.entry(fault.as_str()).or_default() += 1;
    n.counters.drop("payment_refused");
    answer(ctx, n, peer, p.source, pid, Some(NackReason::PaymentInvalid { fault }), way_back(&p.routers, p.hop_index as usize));
}

fn storage_failed(ctx: &Ctx, n: &mut Node, peer: &NodeId, p: &DataPacket, pid: PacketId, why: &'static str) {
    n.counters.drop(why);
    answer(ctx, n, peer, p.source, pid, Some(NackReason::StorageFailed), way_back(&p.routers, p.hop_index as usize));
}

pub fn on_paid(ctx: &Ctx, mut n: MutexGuard<'_, Node>, peer: &NodeId, p: DataPacket, pid: PacketId, raw: &[u8], now: u64) {
    let i = p.hop_index as usize;
    let me = n.me;
    // F must meet the destination's schedule: the destination knows its
    // own; a router knows it from the destination's signed record.
    let required = if i == p.routers.len() { Some(n.settings.fees) } else { n.table.record(&p.destination).map(|r| r.fees) }.map_or(0, |f| f.fee(p.class, p.routers.len(), p.payload.len()));
    if p.fee_sats < required {
        n.counters.drop("fee_below_schedule");
        answer(ctx, &mut n, peer, p.source, pid, Some(NackReason::PaymentRequired { fee_sats: required }), way_back(&p.routers, i));
        return;
    }
    if p.payment.is_empty() {
        n.counters.drop("refused_by_mode");
        answer(ctx, &mut n, peer, p.source, pid, Some(NackReason::PaymentRequired { fee_sats: required.max(p.fee_sats) }), way_back(&p.routers, i));
        return;
    }
    let (role, share) = payee_share(&shares(p.fee_sats, &p.routers), i);
    if share == 0 {
        return pass_on(ctx, n, peer, p, pid, raw, now);
    }
    let ps = &n.settings.payments;
    let e = Expected {
        packet_id: &pid,
        payee: &me,
        lightning_key: ps.lightning_key.as_ref(),
        role,
        share_sats: share,
        created_ms: p.created_ms,
        skew_ms: n.settings.clock_skew_ms,
        currency: ps.network,
        max_expiry_secs: ps.max_invoice_expiry_secs,
    };
    let proven = match verify(&p.payment, i, &e) {
        Ok(v) => v,
        Err(fault) => return refuse(ctx, &mut n, peer, &p, pid, fault),
    };
    let (retention_ms, reach_ms) = (ps.replay_retention_secs * 1000, u64::from(n.settings.max_ttl_secs) * 1000 + n.settings.clock_skew_ms);
    let min_conf = ps.ctv_min_confirmations;
    let (key, sats, keep_until) = match &proven {
        // Kept until no packet could carry this invoice any more: the
        // retention, or the invoice's expiry plus a packet's ttl and skew.
        Proven::Invoice(c) => (c.payment_hash, c.amount_sats, (now + retention_ms).max(c.expires_at * 1000 + reach_ms)),
        Proven::Ctv(c) => (c.replay_key, c.amount_sats, now + retention_ms),
    };
    if n.pay.in_flight.contains(&key) {
        return refuse(ctx, &mut n, peer, &p, pid, PaymentFault::Replayed);
    }
    if n.pay.replay_count >= ps.max_replay_entries as u64 {
        return storage_failed(ctx, &mut n, peer, &p, pid, "replay_store_full");
    }
    n.pay.in_flight.insert(key);
    drop(n);
    let (ctx, peer, raw) = (ctx.clone(), *peer, raw.to_vec());
    tokio::spawn(async move {
        let stored = store_payment(&ctx, &proven, key, sats, keep_until, min_conf).await;
        let mut n = ctx.node();
        n.pay.in_flight.remove(&key);
        match stored {
            Err(Refusal::Fault(fault)) => refuse(&ctx, &mut n, &peer, &p, pid, fault),
            Err(Refusal::Storage(why)) => storage_failed(&ctx, &mut n, &peer, &p, pid, why),
            Ok(()) => {
                let event = PaymentEvent { role: role.as_str().to_string(), sats, payment_hash: key, packet_id: pid };
                let publisher = ctx.clone();
                tokio::spawn(async move {
                    if let Err(e) = publisher.client.publish_event(EventType::PaymentVerified, encode(&event)).await {
                        publisher.client.warn(&format!("publishing PaymentVerified: {e}"));
                    }
                });
                pass_on(&ctx, n, &peer, p, pid, &raw, now_ms());
            }
        }
    });
}

/// Why a verified proof still does not let its packet through.
enum Refusal {
    Fault(PaymentFault),
    /// The replay store could not be read or written (a drop counter).
    Storage(&'static str),
}

/// The part that waits: a CTV proof's funding on chain, the durable
/// replay store's verdict on `key`, then `key` stored with the ledger
/// credited `sats`. The caller holds `key` in flight meanwhile.
async fn store_payment(ctx: &Ctx, proven: &Proven, key: [u8; 32], sats: u64, keep_until: u64, min_conf: u64) -> Result<(), Refusal> {
    if let Proven::Ctv(c) = proven {
        funded(ctx, c, min_conf).await.map_err(Refusal::Fault)?;
    }
    match paystore::seen(&ctx.client, &key).await {
        Ok(false) => {}
        Ok(true) => return Err(Refusal::Fault(PaymentFault::Replayed)),
        Err(_) => return Err(Refusal::Storage("replay_store_error")),
    }
    let ops = {
        let mut n = ctx.node();
        n.pay.replay_count += 1;
        n.pay.ledger.received_sats = n.pay.ledger.received_sats.saturating_add(sats);
        n.pay.ledger.packets_verified += 1;
        paystore::record_ops(&key, keep_until, &n.pay.ledger, n.pay.replay_count)
    };
    if let Err(e) = ctx.client.storage_batch(store::TREE, ops).await {
        ctx.client.error(&format!("storing payment hash {}: {e}; the packet is refused", commons_mesh::mesh_api::hex(&key)));
        let mut n = ctx.node();
        n.pay.replay_count -= 1;
        n.pay.ledger.received_sats -= sats;
        n.pay.ledger.packets_verified -= 1;
        return Err(Refusal::Storage("replay_store_error"));
    }
    Ok(())
}

/// A CTV proof's funding output, as the node backend sees it: the
/// template's `<H> OP_CTV` script with `min_conf` confirmations. Without
/// a node (hostd answers NoNodeAttached or cannot reach it) nothing can
/// be confirmed, and the proof is refused.
async fn funded(ctx: &Ctx, c: &commons_mesh::ctv::Pending, min_conf: u64) -> Result<(), PaymentFault> {
    let utxo = match ctx.client.get_utxo(c.funding_txid, c.funding_vout).await {
        Ok(u) => u,
        Err(e) => {
            // Once per run: any peer can send CTV proofs, and each refusal
            // is counted (refused.ctv_without_node) anyway.
            static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                ctx.client.warn(&format!("a CTV proof needs the chain, which hostd cannot give: {e} (further ones are only counted)"));
            }
            return Err(PaymentFault::CtvWithoutNode);
        }
    };
    let tip = ctx.client.get_block_height().await.map_err(|_| PaymentFault::CtvWithoutNode)?;
    match utxo {
        Some(u) if u.script_pubkey == c.script && u.height > 0 && tip + 1 >= u.height + min_conf => Ok(()),
        _ => Err(PaymentFault::CtvUnfunded),
    }
}
