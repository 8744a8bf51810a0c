//! Adverts: this node's routes, signed, to each neighbour — all of them
//! every advert interval (with a freshly signed own record, which keeps
//! routes to this node alive elsewhere) and again soon after any change
//! of a best path (new neighbour, withdrawal, expiry).

use super::state::Node;
use super::Ctx;
use commons_mesh::mesh_api::NodeId;
use commons_mesh::msg::{Advert, AdvertEntry, LinkMsg, MAX_ADVERT_ENTRIES};
use commons_mesh::now_ms;
use commons_mesh::record::NodeRecord;
use commons_mesh::routing::Refused;
use std::time::Duration;

/// Adverts one link may send per second before the rest are dropped.
const ADVERTS_PER_SEC: u32 = 50;
/// Triggered updates wait this long so a burst of changes goes out once.
const DEBOUNCE: Duration = Duration::from_millis(30);

/// This node's record, signed within the last advert interval.
pub fn own_record(ctx: &Ctx, n: &mut Node, now: u64) -> NodeRecord {
    match &n.own_record {
        Some(r) if r.signed_ms + n.settings.advert_interval_ms > now => r.clone(),
        _ => {
            let r = NodeRecord::sign(&ctx.id, n.settings.mode, n.settings.fees, n.settings.payments.lightning_key, n.settings.monopoly.certificate.clone(), now);
            n.own_record = Some(r.clone());
            r
        }
    }
}

/// Everything this node advertises to `to`, signed, in frames.
pub fn send_full(ctx: &Ctx, link: u64, to: &NodeId) {
    let now = now_ms();
    let mut n = ctx.node();
    let own = own_record(ctx, &mut n, now);
    let mut entries = vec![AdvertEntry { destination: n.me, route: Some((Vec::new(), own)) }];
    entries.extend(n.table.advert_for(to, now));
    for chunk in entries.chunks(MAX_ADVERT_ENTRIES) {
        n.advert_seq += 1;
        let advert = Advert::new(&ctx.id, n.advert_seq, chunk.to_vec());
        if n.send(link, LinkMsg::Advert(advert).encode()) {
            n.counters.adverts_out += 1;
        }
    }
}

fn send_all(ctx: &Ctx) {
    let neighbours: Vec<(u64, NodeId)> = ctx.node().by_node.iter().map(|(p, l)| (*l, *p)).collect();
    for (link, peer) in neighbours {
        send_full(ctx, link, &peer);
    }
}

pub async fn advertiser(ctx: Ctx) {
    let interval = Duration::from_millis(ctx.node().settings.advert_interval_ms);
    let mut periodic = tokio::time::interval(interval);
    periodic.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = periodic.tick() => {
                let now = now_ms();
                {
                    let mut n = ctx.node();
                    n.own_record = None;
                    own_record(&ctx, &mut n, now);
                }
                send_all(&ctx);
            }
            _ = ctx.advert.notified() => {
                tokio::time::sleep(DEBOUNCE).await;
                send_all(&ctx);
            }
        }
    }
}

pub fn on_advert(ctx: &Ctx, link: u64, peer: &NodeId, a: Advert) {
    let now = now_ms();
    let mut n = ctx.node();
    n.counters.adverts_in += 1;
    let over = match n.links.get_mut(&link) {
        Some(l) => !super::state::within(&mut l.advert_window, ADVERTS_PER_SEC),
        None => return,
    };
    if over {
        n.counters.drop("advert_rate");
        return;
    }
    if a.sender != *peer || !a.verify() {
        n.counters.drop("advert_bad_signature");
        return;
    }
    let mut changed = false;
    for e in &a.entries {
        let before = n.table.best(&e.destination, now).map(|p| p.routers);
        match n.table.apply(peer, e, now) {
            Ok(()) => {}
            // A record that does not verify can only be forged (honest
            // nodes pass records on unchanged): stop reading, close the
            // link, so one hostile neighbour costs one failed check per
            // link, not a verification per entry.
            Err(Refused::BadRecord) => {
                n.counters.drop(Refused::BadRecord.as_str());
                drop(n);
                super::links::close(ctx, link, "forged record in an advert");
                if changed {
                    ctx.advert.notify_one();
                }
                return;
            }
            Err(why) => n.counters.drop(why.as_str()),
        }
        changed |= n.table.best(&e.destination, now).map(|p| p.routers) != before;
    }
    drop(n);
    if changed {
        ctx.advert.notify_one();
    }
}
