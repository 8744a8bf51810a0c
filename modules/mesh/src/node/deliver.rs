//! Delivery at the destination: an accepted packet beyond its source's
//! durable sequence reservation waits until a new reservation is stored
//! (one storage batch for everything accepted meanwhile), then goes to its
//! protocol handler through hostd's inter-module call, at most
//! `handler_in_flight` at once per handler module and `handler_queue`
//! waiting; past that the source gets a HandlerBusy NACK.

use super::forward::answer;
use super::state::{Handler, Node};
use super::{store, Ctx};
use commons_mesh::mesh_api::{encode, InboundPacket, NackReason, NodeId};
use commons_mesh::window::WINDOW;
use hostd_sdk::ErrorCode;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Semaphore;

pub struct Item {
    pub handler: Handler,
    pub packet: InboundPacket,
    /// (source, previous hop, routers back) when the source wants an ACK.
    pub ack: Option<(NodeId, NodeId, Vec<NodeId>)>,
}

#[derive(Default)]
pub struct Queue {
    waiting: Vec<Item>,
    /// Per handler module: items waiting or being delivered.
    queued: HashMap<String, usize>,
    slots: HashMap<String, Arc<Semaphore>>,
}

fn queue(ctx: &Ctx) -> std::sync::MutexGuard<'_, Queue> {
    ctx.deliveries.lock().unwrap_or_else(|p| p.into_inner())
}

fn nack(ctx: &Ctx, item: &Item, reason: NackReason) {
    if let Some((source, prev, back)) = &item.ack {
        answer(ctx, &mut ctx.node(), prev, *source, item.packet.packet_id, Some(reason), back.clone());
    }
}

pub fn enqueue(ctx: &Ctx, item: Item) {
    let limit = ctx.node().settings.handler_queue;
    {
        let mut q = queue(ctx);
        let count = q.queued.entry(item.handler.module.clone()).or_default();
        if *count < limit {
            *count += 1;
            q.waiting.push(item);
            drop(q);
            ctx.commit.notify_one();
            return;
        }
    }
    ctx.node().counters.drop("handler_queue_full");
    nack(ctx, &item, NackReason::HandlerBusy);
}

/// Sequences reserved per durable write and source: at most this many of
/// a source's packets are refused after a crash; one write covers them.
const RESERVE: u64 = WINDOW;

/// The reservation marks `items` need, and whether any item lies beyond
/// what is durably reserved (then delivery waits for the write).
fn reservations(n: &Node, items: &[Item]) -> (bool, HashMap<NodeId, u64>) {
    let mut planned: HashMap<NodeId, u64> = HashMap::new();
    let mut must = false;
    for it in items {
        let (src, seq) = (it.packet.source, it.packet.sequence);
        let r = n.reserved.get(&src).copied().unwrap_or(0);
        // Extend ahead (half a block early) so the write rarely holds delivery up.
        if seq.saturating_add(RESERVE / 2) > r {
            let e = planned.entry(src).or_insert(r);
            *e = (*e).max(seq.saturating_add(RESERVE));
            must |= seq > r;
        }
    }
    (must, planned)
}

async fn reserve(ctx: &Ctx, marks: &HashMap<NodeId, u64>) -> Result<(), String> {
    let ops = marks.iter().map(|(s, r)| store::reserve_put(s, *r)).collect();
    ctx.client.storage_batch(store::TREE, ops).await.map_err(|e| e.to_string())?;
    let mut n = ctx.node();
    for (s, r) in marks {
        let e = n.reserved.entry(*s).or_default();
        *e = (*e).max(*r);
    }
    Ok(())
}

/// Reserve and deliver until nothing waits; then sleep until woken.
/// A packet past its source's durable reservation is delivered only once
/// the new reservation is stored: a crash can lose it, never repeat it.
pub async fn committer(ctx: Ctx) {
    loop {
        ctx.commit.notified().await;
        loop {
            let items = std::mem::take(&mut queue(&ctx).waiting);
            if items.is_empty() {
                break;
            }
            let (must, marks) = reservations(&ctx.node(), &items);
            if must {
                if let Err(e) = reserve(&ctx, &marks).await {
                    ctx.node().counters.drop("storage_failed");
                    ctx.client.error(&format!("storing sequence reservations failed: {e} ({} packets not delivered)", items.len()));
                    for item in &items {
                        release(&ctx, &item.handler.module);
                        nack(&ctx, item, NackReason::StorageFailed);
                    }
                    continue;
                }
            }
            for item in items {
                tokio::spawn(dispatch(ctx.clone(), item));
            }
            if !must && !marks.is_empty() {
                if let Err(e) = reserve(&ctx, &marks).await {
                    ctx.client.warn(&format!("extending sequence reservations: {e} (retried with the next packets)"));
                }
            }
        }
    }
}

/// Write the exact windows that changed (and forget pruned sources).
async fn write_windows(ctx: &Ctx, clean: bool) -> Result<(), String> {
    let ops: Vec<_> = {
        let mut n = ctx.node();
        let mut dirty = std::mem::take(&mut n.dirty);
        dirty.sort();
        dirty.dedup();
        let mut ops = Vec::with_capacity(dirty.len() + 1);
        for s in &dirty {
            match n.windows.get(s) {
                Some(w) => ops.push(store::window_put(s, w)),
                None => {
                    n.reserved.remove(s);
                    ops.push(store::window_delete(s));
                    ops.push(store::reserve_delete(s));
                }
            }
        }
        if clean {
            ops.push(store::clean_marker());
        }
        ops
    };
    if ops.is_empty() {
        return Ok(());
    }
    ctx.client.storage_batch(store::TREE, ops).await.map_err(|e| e.to_string())
}

/// Every second, the windows that changed (a clean restart then loses nothing).
pub async fn flusher(ctx: Ctx) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(e) = write_windows(&ctx, false).await {
            ctx.client.warn(&format!("writing replay windows: {e}"));
        }
    }
}

/// At shutdown: the exact windows, then the clean-shutdown marker.
pub async fn flush(ctx: &Ctx) {
    if let Err(e) = write_windows(ctx, true).await {
        ctx.client.error(&format!("storing replay windows at shutdown: {e} (the next start treats reserved sequences as seen)"));
    }
}

fn release(ctx: &Ctx, module: &str) {
    if let Some(c) = queue(ctx).queued.get_mut(module) {
        *c = c.saturating_sub(1);
    }
}

async fn dispatch(ctx: Ctx, item: Item) {
    let in_flight = ctx.node().settings.handler_in_flight;
    let slots = queue(&ctx).slots.entry(item.handler.module.clone()).or_insert_with(|| Arc::new(Semaphore::new(in_flight))).clone();
    let Ok(_slot) = slots.acquire_owned().await else { return };
    let result = ctx.client.call_module(&item.handler.module, &item.handler.method, encode(&item.packet)).await;
    release(&ctx, &item.handler.module);
    match result {
        Ok(_) => {
            ctx.node().counters.delivered += 1;
            if let Some((source, prev, back)) = &item.ack {
                answer(&ctx, &mut ctx.node(), prev, *source, item.packet.packet_id, None, back.clone());
            }
        }
        Err(e) => {
            let reason = match e.code() {
                Some(ErrorCode::NotFound) => {
                    // The module is gone or no longer has the method.
                    super::api::drop_handler(&ctx, &item.packet.protocol_id, &item.handler).await;
                    NackReason::NoHandler
                }
                _ => NackReason::HandlerBusy,
            };
            ctx.node().counters.drop("handler_failed");
            nack(&ctx, &item, reason);
        }
    }
}
