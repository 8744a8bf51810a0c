//! Delivery at the destination: accepted packets wait until their
//! sources' replay windows are durably stored (one storage batch for
//! everything accepted meanwhile: group commit), then go to their
//! protocol handler through hostd's inter-module call, at most
//! `handler_in_flight` at once per handler module and `handler_queue`
//! waiting; past that the source gets a HandlerBusy NACK.

use super::state::Handler;
use super::{store, Ctx};
use commons_mesh::control::Control;
use commons_mesh::mesh_api::{encode, InboundPacket, NackReason, NodeId};
use commons_mesh::msg::LinkMsg;
use commons_mesh::now_ms;
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

fn answer(ctx: &Ctx, source: NodeId, prev: &NodeId, back: Vec<NodeId>, about: [u8; 32], nack: Option<NackReason>) {
    let c = Control::new(&ctx.id, source, about, nack, back, now_ms());
    ctx.node().send_to(prev, LinkMsg::Control(c).encode());
}

fn nack(ctx: &Ctx, item: &Item, reason: NackReason) {
    if let Some((source, prev, back)) = &item.ack {
        answer(ctx, *source, prev, back.clone(), item.packet.packet_id, Some(reason));
        ctx.node().counters.nacks_sent += 1;
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

/// Write the changed windows; the items accepted before the write.
async fn commit(ctx: &Ctx) -> Option<Result<Vec<Item>, String>> {
    let items = std::mem::take(&mut queue(ctx).waiting);
    let ops: Vec<_> = {
        let mut n = ctx.node();
        let mut dirty = std::mem::take(&mut n.dirty);
        dirty.sort();
        dirty.dedup();
        dirty.iter().map(|s| n.windows.get(s).map_or_else(|| store::window_delete(s), |w| store::window_put(s, w))).collect()
    };
    if items.is_empty() && ops.is_empty() {
        return None;
    }
    if !ops.is_empty() {
        if let Err(e) = ctx.client.storage_batch(store::TREE, ops).await {
            for item in &items {
                release(ctx, &item.handler.module);
                nack(ctx, item, NackReason::StorageFailed);
            }
            return Some(Err(format!("{e} ({} packets not delivered)", items.len())));
        }
    }
    Some(Ok(items))
}

/// Persist and deliver until nothing waits; then sleep until woken.
pub async fn committer(ctx: Ctx) {
    loop {
        ctx.commit.notified().await;
        while let Some(r) = commit(&ctx).await {
            match r {
                Ok(items) => {
                    for item in items {
                        tokio::spawn(dispatch(ctx.clone(), item));
                    }
                }
                Err(e) => {
                    ctx.node().counters.drop("storage_failed");
                    ctx.client.error(&format!("storing replay windows failed: {e}"));
                }
            }
        }
    }
}

/// At shutdown: store what is accepted (delivery is up to the next start's sources).
pub async fn flush(ctx: &Ctx) {
    if let Some(Err(e)) = commit(ctx).await {
        ctx.client.error(&format!("storing replay windows at shutdown: {e}"));
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
                answer(&ctx, *source, prev, back.clone(), item.packet.packet_id, None);
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
