//! Links: the hello/auth handshake that proves each side's NodeId,
//! keepalives, dispatch of what arrives, and link loss.
//!
//! Handshake: each side sends Hello with a fresh nonce; on the peer's
//! Hello it answers Auth: its signed record and a signature over (the
//! peer's nonce ‖ its own nonce ‖ its NodeId). A bad signature, this
//! node's own NodeId, a NodeId already linked, or anything but Hello/Auth
//! before the peer is proven closes the link.

use super::state::Link;
use super::{adverts, discovery, forward, Ctx};
use commons_mesh::identity::{random_bytes, verify};
use commons_mesh::mesh_api::hex;
use commons_mesh::msg::{auth_digest, LinkMsg, LINK_VERSION};
use commons_mesh::now_ms;
use hostd_sdk::LinkInfo;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub fn on_up(ctx: &Ctx, info: LinkInfo) {
    let Ok(nonce) = random_bytes::<32>() else {
        close(ctx, info.id, "no randomness for the handshake");
        return;
    };
    let mut n = ctx.node();
    if !n.settings.enabled || n.links.len() >= n.settings.max_links {
        n.counters.drop("link_refused_max_links");
        drop(n);
        close(ctx, info.id, "at max_links (or disabled)");
        return;
    }
    let (tx, rx) = mpsc::channel(n.settings.link_queue_frames);
    let link = Link {
        peer_addr: info.peer.clone(),
        peer_ip: info.peer.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()),
        inbound: info.inbound,
        max_frame: info.max_frame,
        tx,
        our_nonce: nonce,
        peer_nonce: None,
        peer: None,
        last_heard: Instant::now(),
        ping_sent: None,
        rtt_us: 0,
        control_window: (0, 0),
        advert_window: (0, 0),
        quote_window: (0, 0),
        frames_in: 0,
        frames_out: 0,
        dropped_full: 0,
    };
    n.links.insert(info.id, link);
    n.send(info.id, LinkMsg::Hello { version: LINK_VERSION, nonce }.encode());
    drop(n);
    tokio::spawn(pump(ctx.clone(), info.id, rx));
}

/// Hands a link's queued frames to hostd in order, waiting for room.
async fn pump(ctx: Ctx, link: u64, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(frame) = rx.recv().await {
        match ctx.client.mesh_queue(link, frame).await {
            Ok(ack) => {
                let _ = ctx.acks.send(ack);
            }
            Err(_) => break,
        }
    }
}

pub fn close(ctx: &Ctx, link: u64, why: &str) {
    ctx.client.warn(&format!("closing mesh link {link}: {why}"));
    let client = ctx.client.clone();
    tokio::spawn(async move {
        let _ = client.mesh_close(link).await;
    });
}

pub fn on_down(ctx: &Ctx, link: u64, reason: &str) {
    let mut n = ctx.node();
    let Some(l) = n.links.remove(&link) else { return };
    if let Some(peer) = l.peer {
        if n.by_node.get(&peer) == Some(&link) {
            n.by_node.remove(&peer);
            n.table.remove_neighbour(&peer);
            drop(n);
            ctx.client.info(&format!("neighbour {} ({}) gone: {reason}", hex(&peer), l.peer_addr));
            // Withdraw what went through it, now.
            ctx.advert.notify_one();
        }
    }
}

pub fn on_frame(ctx: &Ctx, link: u64, data: &[u8]) {
    let peer = {
        let mut n = ctx.node();
        let Some(l) = n.links.get_mut(&link) else { return };
        l.last_heard = Instant::now();
        l.frames_in += 1;
        l.peer
    };
    let msg = match LinkMsg::decode(data) {
        Ok(m) => m,
        Err(e) => {
            ctx.node().counters.drop("malformed");
            close(ctx, link, &format!("malformed message: {e}"));
            return;
        }
    };
    let Some(peer) = peer else {
        handshake(ctx, link, msg);
        return;
    };
    match msg {
        LinkMsg::Ping(x) => {
            ctx.node().send(link, LinkMsg::Pong(x).encode());
        }
        LinkMsg::Pong(x) => {
            let mut n = ctx.node();
            if let Some(l) = n.links.get_mut(&link) {
                if let Some((sent, at)) = l.ping_sent.take() {
                    if sent == x {
                        l.rtt_us = at.elapsed().as_micros() as u64;
                    }
                }
            }
        }
        LinkMsg::Advert(a) => adverts::on_advert(ctx, link, &peer, a),
        LinkMsg::Data(p, pid) => forward::on_data(ctx, &peer, *p, pid, data),
        LinkMsg::Control(c) => forward::on_control(ctx, link, &peer, c),
        LinkMsg::RouteReq(q) => discovery::on_request(ctx, &peer, q),
        LinkMsg::RouteResp(r) => discovery::on_response(ctx, &peer, r),
        LinkMsg::Settle(s) => super::settle::on_settle(ctx, link, &peer, s),
        LinkMsg::Hello { .. } | LinkMsg::Auth { .. } => {
            ctx.node().counters.drop("handshake_repeated");
            close(ctx, link, "handshake message on an authenticated link");
        }
    }
}

fn handshake(ctx: &Ctx, link: u64, msg: LinkMsg) {
    let now = now_ms();
    let mut n = ctx.node();
    let Some(l) = n.links.get_mut(&link) else { return };
    match msg {
        LinkMsg::Hello { version, nonce } if l.peer_nonce.is_none() => {
            if version != LINK_VERSION {
                drop(n);
                close(ctx, link, &format!("link version {version}, this node speaks {LINK_VERSION}"));
                return;
            }
            l.peer_nonce = Some(nonce);
            let ours = l.our_nonce;
            let me = n.me;
            let record = adverts::own_record(ctx, &mut n, now);
            let sig = ctx.id.sign(&auth_digest(&nonce, &ours, &me));
            n.send(link, LinkMsg::Auth { record, sig }.encode());
        }
        LinkMsg::Auth { record, sig } if l.peer_nonce.is_some() => {
            let (ours, theirs) = (l.our_nonce, l.peer_nonce.unwrap_or_default());
            let peer = record.node_id;
            let why = if !record.verify() || !verify(&peer, &auth_digest(&ours, &theirs, &peer), &sig) {
                Some("bad signature")
            } else if peer == n.me {
                Some("the peer has this node's own NodeId")
            } else if n.by_node.contains_key(&peer) {
                Some("duplicate NodeId: already linked to it")
            } else {
                None
            };
            if let Some(why) = why {
                n.counters.drop("handshake_refused");
                drop(n);
                close(ctx, link, &format!("{why} ({})", hex(&peer)));
                return;
            }
            if let Err(e) = n.table.add_neighbour(peer, &record, now) {
                n.counters.drop(e.as_str());
                drop(n);
                close(ctx, link, &format!("neighbour record refused: {}", e.as_str()));
                return;
            }
            if let Some(l) = n.links.get_mut(&link) {
                l.peer = Some(peer);
            }
            n.by_node.insert(peer, link);
            let addr = n.links.get(&link).map(|l| l.peer_addr.clone()).unwrap_or_default();
            drop(n);
            ctx.client.info(&format!("neighbour {} authenticated on link {link} ({addr})", hex(&peer)));
            adverts::send_full(ctx, link, &peer);
            ctx.advert.notify_one();
        }
        _ => {
            n.counters.drop("handshake_violation");
            drop(n);
            close(ctx, link, "message before the handshake finished");
        }
    }
}

/// Ping every keepalive interval; close links silent for `keepalive_misses` intervals.
pub fn keepalive(ctx: &Ctx) {
    let mut n = ctx.node();
    let every = Duration::from_millis(n.settings.keepalive_ms);
    let dead = every * n.settings.keepalive_misses;
    let mut to_close = Vec::new();
    let mut to_ping = Vec::new();
    for (id, l) in n.links.iter_mut() {
        if l.last_heard.elapsed() > dead {
            to_close.push(*id);
        } else if l.peer.is_some() && l.ping_sent.is_none_or(|(_, at)| at.elapsed() >= every) {
            let x = l.ping_sent.map_or(1, |(x, _)| x + 1);
            l.ping_sent = Some((x, Instant::now()));
            to_ping.push((*id, x));
        }
    }
    for (id, x) in to_ping {
        n.send(id, LinkMsg::Ping(x).encode());
    }
    drop(n);
    for id in to_close {
        close(ctx, id, "keepalive timeout");
    }
}

/// Keep a link to `peer` (from `[mesh] peers`): dial, and dial again
/// with backoff whenever none is up.
pub async fn keep_dialing(ctx: Ctx, peer: String) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let linked = ctx.node().links.values().any(|l| !l.inbound && l.peer_addr == peer);
        if linked {
            backoff = Duration::from_millis(500);
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        match ctx.client.mesh_connect(&peer).await {
            Ok(_) => {
                backoff = Duration::from_millis(500);
                // LinkUp follows the answer; look again once it has come.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                ctx.node().counters.drop("dial_failed");
                ctx.client.warn(&format!("dialing {peer}: {e}; again in {backoff:?}"));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}
