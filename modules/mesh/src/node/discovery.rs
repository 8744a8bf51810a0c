//! Route discovery: a signed ROUTE_REQ flooded to every neighbour (each
//! forwarder appends itself, drops repeats and requests past their hop
//! budget, and limits each origin's rate), answered by the target alone
//! with a signed ROUTE_RESP that walks the trail back. The origin collects
//! answers for `discovery_collect_ms` after the first (within the
//! timeout), keeps the paths, and publishes RouteDiscovered or RouteFailed.

use super::state::Discovery;
use super::Ctx;
use commons_mesh::identity::{random_bytes, sha256};
use commons_mesh::mesh_api::{encode, hex, DiscoverRouteResponse, NodeId, RouteEvent, TrafficClass};
use commons_mesh::msg::{LinkMsg, RouteReq, RouteResp};
use commons_mesh::now_ms;
use commons_mesh::packet::MAX_ROUTERS;
use hostd_sdk::{EventType, ErrorBody, ErrorCode};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

pub fn on_request(ctx: &Ctx, peer: &NodeId, mut q: RouteReq) {
    let now = now_ms();
    let me = ctx.id.node_id();
    {
        let mut n = ctx.node();
        let (timeout, skew) = (n.settings.discovery_timeout_ms, n.settings.clock_skew_ms);
        let structural = q.trail.last().unwrap_or(&q.origin) != peer
            || q.origin == me
            || q.trail.contains(&me)
            || q.trail.len() > q.max_hops as usize
            || q.max_hops as usize > MAX_ROUTERS
            || q.created_ms > now + skew
            || q.created_ms.saturating_add(timeout + skew) < now;
        if structural {
            n.counters.drop("route_req_invalid");
            return;
        }
    }
    if !q.verify() {
        ctx.node().counters.drop("route_req_bad_signature");
        return;
    }
    let mut n = ctx.node();
    let key = sha256(&[&q.origin[..], &q.req_id.to_be_bytes()].concat());
    let until = q.created_ms + n.settings.discovery_timeout_ms + n.settings.clock_skew_ms;
    if !n.seen_requests.insert(key, until) {
        n.counters.drop("route_req_duplicate");
        return;
    }
    let second = now / 1000;
    let limit = n.settings.route_requests_per_sec;
    if !n.request_budget.contains_key(&q.origin) && n.request_budget.len() >= n.settings.max_sources {
        n.request_budget.retain(|_, (s, _)| *s == second);
    }
    let budget = n.request_budget.entry(q.origin).or_insert((second, 0));
    if budget.0 != second {
        *budget = (second, 0);
    }
    budget.1 += 1;
    if budget.1 > limit {
        n.counters.drop("route_req_rate");
        return;
    }
    if q.target == me {
        let record = super::adverts::own_record(ctx, &mut n, now);
        let resp = RouteResp::new(&ctx.id, &q, record);
        n.send_to(peer, LinkMsg::RouteResp(resp).encode());
        return;
    }
    if q.trail.len() >= q.max_hops as usize {
        return;
    }
    q.trail.push(me);
    let frame = LinkMsg::RouteReq(q.clone()).encode();
    let next: Vec<NodeId> = n.by_node.keys().filter(|k| *k != peer && **k != q.origin && !q.trail.contains(k)).copied().collect();
    for k in next {
        n.send_to(&k, frame.clone());
    }
}

pub fn on_response(ctx: &Ctx, peer: &NodeId, mut r: RouteResp) {
    let me = ctx.id.node_id();
    let i = r.hop_index as usize;
    let mut n = ctx.node();
    if r.hop(i) != Some(&me) || r.previous(i) != Some(peer) {
        n.counters.drop("route_resp_misrouted");
        return;
    }
    if i < r.routers.len() {
        let Some(next) = r.hop(i + 1).copied() else { return };
        r.hop_index += 1;
        n.send_to(&next, LinkMsg::RouteResp(r).encode());
        return;
    }
    drop(n);
    if !r.verify() {
        ctx.node().counters.drop("route_resp_bad_signature");
        return;
    }
    let mut n = ctx.node();
    let Some(d) = n.discoveries.get(&r.req_id) else {
        n.counters.drop("route_resp_unsolicited");
        return;
    };
    if d.target != r.record.node_id || r.routers.len() > d.max_hops as usize {
        n.counters.drop("route_resp_wrong");
        return;
    }
    if let Err(e) = n.table.add_discovered(r.routers.clone(), &r.record, now_ms()) {
        n.counters.drop(e.as_str());
        return;
    }
    if let Some(d) = n.discoveries.get_mut(&r.req_id) {
        d.found.push(r.routers);
        if let Some(first) = d.first.take() {
            let _ = first.send(());
        }
    }
}

async fn publish(ctx: &Ctx, ty: EventType, ev: &RouteEvent) {
    if let Err(e) = ctx.client.publish_event(ty, encode(ev)).await {
        ctx.client.warn(&format!("publishing {ty}: {e}"));
    }
}

/// Publish RouteFailed for `dest` (not awaited: the caller holds no lock
/// and need not wait for hostd).
pub fn route_failed(ctx: &Ctx, dest: NodeId, reason: String) {
    let ctx = ctx.clone();
    tokio::spawn(async move { publish(&ctx, EventType::RouteFailed, &RouteEvent { destination: dest, route: None, cost_sats: 0, discovery_time_ms: 0, reason: Some(reason) }).await });
}

/// `discover_route`: a known path within `max_hops` routers answers at
/// once; otherwise flood a request and wait up to `timeout`.
pub async fn discover(ctx: &Ctx, dest: NodeId, max_hops: Option<u8>, timeout_s: Option<u64>) -> Result<DiscoverRouteResponse, ErrorBody> {
    let started = Instant::now();
    let me = ctx.id.node_id();
    if dest == me {
        return Err(ErrorBody::new(ErrorCode::InvalidArgument, "the destination is this node"));
    }
    let (max_hops, timeout, collect) = {
        let n = ctx.node();
        let max = max_hops.unwrap_or(n.settings.max_hops);
        if max == 0 || max as usize > MAX_ROUTERS {
            return Err(ErrorBody::new(ErrorCode::InvalidArgument, format!("max_hops {max}: between 1 and {MAX_ROUTERS} routers")));
        }
        let timeout = timeout_s.map_or(Duration::from_millis(n.settings.discovery_timeout_ms), Duration::from_secs);
        (max, timeout.min(Duration::from_secs(600)), Duration::from_millis(n.settings.discovery_collect_ms))
    };
    let known = {
        let n = ctx.node();
        n.table.paths(&dest, now_ms()).into_iter().find(|p| p.routers.len() <= max_hops as usize).map(|p| p.routers)
    };
    let routers = match known {
        Some(r) => Some(r),
        None => flood(ctx, dest, max_hops, timeout, collect, started).await?,
    };
    let ms = started.elapsed().as_millis() as u64;
    let cost = ctx.node().table.record(&dest).map_or(0, |r| r.fees.fee(TrafficClass::Paid, routers.as_ref().map_or(0, Vec::len), 0));
    let route = routers.map(|mut r| {
        r.push(dest);
        r
    });
    {
        let mut n = ctx.node();
        n.counters.discoveries += 1;
        if route.is_none() {
            n.counters.discovery_failures += 1;
        }
    }
    match &route {
        Some(_) => publish(ctx, EventType::RouteDiscovered, &RouteEvent { destination: dest, route: route.clone(), cost_sats: cost, discovery_time_ms: ms, reason: None }).await,
        None => {
            let reason = format!("no answer within {} ms (max_hops {max_hops})", timeout.as_millis());
            publish(ctx, EventType::RouteFailed, &RouteEvent { destination: dest, route: None, cost_sats: 0, discovery_time_ms: ms, reason: Some(reason) }).await;
        }
    }
    Ok(DiscoverRouteResponse { route, route_cost_sats: cost, discovery_time_ms: ms })
}

async fn flood(ctx: &Ctx, dest: NodeId, max_hops: u8, timeout: Duration, collect: Duration, started: Instant) -> Result<Option<Vec<NodeId>>, ErrorBody> {
    let req_id = u64::from_be_bytes(random_bytes::<8>().map_err(|e| ErrorBody::new(ErrorCode::Internal, e.to_string()))?);
    let (tx, rx) = oneshot::channel();
    {
        let mut n = ctx.node();
        if n.discoveries.len() >= 256 {
            return Err(ErrorBody::new(ErrorCode::Busy, "256 discoveries are already running"));
        }
        n.discoveries.insert(req_id, Discovery { target: dest, max_hops, found: Vec::new(), first: Some(tx) });
        let q = RouteReq::new(&ctx.id, req_id, dest, max_hops, now_ms());
        let frame = LinkMsg::RouteReq(q).encode();
        let neighbours: Vec<NodeId> = n.by_node.keys().copied().collect();
        for k in neighbours {
            n.send_to(&k, frame.clone());
        }
    }
    if tokio::time::timeout(timeout, rx).await.is_ok_and(|r| r.is_ok()) {
        let left = timeout.saturating_sub(started.elapsed());
        tokio::time::sleep(collect.min(left)).await;
    }
    let mut n = ctx.node();
    let found = n.discoveries.remove(&req_id).map(|d| d.found).unwrap_or_default();
    let now = now_ms();
    // The best of what came back, as the table scores it.
    let best = n.table.paths(&dest, now).into_iter().map(|p| p.routers).find(|r| found.contains(r));
    if best.is_none() && !found.is_empty() {
        ctx.client.warn(&format!("routes to {} came back but none is usable now", hex(&dest)));
    }
    Ok(best)
}
