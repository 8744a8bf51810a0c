//! The mesh ModuleAPI (seed 004) as hostd inter-module calls. hostd
//! stamps each call's caller; handlers are bound to that name, one owner
//! per protocol id, and dropped when their module unloads or crashes (or
//! no longer answers the method).

use super::state::Handler;
use super::{discovery, pay, store, Ctx};
use commons_mesh::mesh_api::{self as api, decode, encode, method};
use commons_mesh::now_ms;
use hostd_sdk::{ErrorBody, ErrorCode, Invocation, InvocationCall};

fn bad(e: String) -> ErrorBody {
    ErrorBody::new(ErrorCode::InvalidArgument, format!("request body: {e}"))
}

/// Protocol ids: 1–64 printable ASCII bytes without spaces.
fn check_protocol_id(p: &str) -> Result<(), ErrorBody> {
    if p.is_empty() || p.len() > commons_mesh::packet::MAX_PROTOCOL_ID || !p.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ErrorBody::new(ErrorCode::InvalidArgument, format!("protocol id {p:?}: 1–64 printable ASCII characters, no spaces")));
    }
    Ok(())
}

/// Handler methods follow hostd's API method names: 1–64 of [a-z0-9_-].
fn check_method(m: &str) -> Result<(), ErrorBody> {
    if m.is_empty() || m.len() > 64 || !m.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-') {
        return Err(ErrorBody::new(ErrorCode::InvalidArgument, format!("handler method {m:?}: 1–64 of a-z, 0-9, _ and -")));
    }
    Ok(())
}

pub fn on_call(ctx: &Ctx, call: InvocationCall) {
    let Invocation::Api { caller, method: m, params } = &call.invocation else { return };
    if !ctx.node().settings.enabled {
        call.reply(Err(ErrorBody::new(ErrorCode::Unsupported, "Commons Mesh is disabled ([mesh] enabled = false)")));
        return;
    }
    let (caller, m, params) = (caller.clone(), m.clone(), params.clone());
    match m.as_str() {
        method::SEND_PACKET => {
            let req: api::SendPacketRequest = match decode(&params) {
                Ok(r) => r,
                Err(e) => return call.reply(Err(bad(e))),
            };
            match pay::begin(ctx, &req) {
                Err(e) => call.reply(Err(e)),
                Ok(pay::Begun::Done(resp, None)) => call.reply(Ok(encode(&resp))),
                Ok(pay::Begun::Done(resp, Some(rx))) => {
                    tokio::spawn(answer_when_confirmed(ctx.clone(), call, resp, rx));
                }
                Ok(pay::Begun::Paying(o)) => {
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        match pay::paid(&ctx, &caller, *o).await {
                            Err(e) => call.reply(Err(e)),
                            Ok((resp, None)) => call.reply(Ok(encode(&resp))),
                            Ok((resp, Some(rx))) => answer_when_confirmed(ctx, call, resp, rx).await,
                        }
                    });
                }
            }
        }
        method::DISCOVER_ROUTE => {
            let req: api::DiscoverRouteRequest = match decode(&params) {
                Ok(r) => r,
                Err(e) => return call.reply(Err(bad(e))),
            };
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let r = discovery::discover(&ctx, req.destination, req.max_hops, req.timeout_seconds).await;
                call.reply(r.map(|r| encode(&r)));
            });
        }
        method::REGISTER_PROTOCOL_HANDLER | method::UNREGISTER_PROTOCOL_HANDLER => {
            let req: api::RegisterProtocolRequest = match decode(&params) {
                Ok(r) => r,
                Err(e) => return call.reply(Err(bad(e))),
            };
            let ctx = ctx.clone();
            let register = m == method::REGISTER_PROTOCOL_HANDLER;
            tokio::spawn(async move {
                let r = if register { register_handler(&ctx, &caller, req).await } else { unregister_handler(&ctx, &caller, &req.protocol_id).await };
                call.reply(r.map(|()| encode(&api::RegisterProtocolResponse { success: true })));
            });
        }
        method::GET_ROUTING_STATS => call.reply(Ok(encode(&stats(ctx)))),
        method::GET_NODE_ID => call.reply(Ok(encode(&ctx.id.node_id()))),
        other => call.reply(Err(ErrorBody::new(ErrorCode::NotFound, format!("commons-mesh has no method {other:?}")))),
    }
}

/// Reply to a confirmed send once its ACK or NACK is in (or not, in time).
async fn answer_when_confirmed(ctx: Ctx, call: InvocationCall, mut resp: api::SendPacketResponse, rx: tokio::sync::oneshot::Receiver<api::Delivery>) {
    resp.delivery = super::forward::delivery(&ctx, rx).await;
    if let api::Delivery::Nacked { reason, .. } = &resp.delivery {
        resp.success = false;
        resp.error = Some(reason.to_string());
    }
    call.reply(Ok(encode(&resp)));
}

async fn register_handler(ctx: &Ctx, caller: &str, req: api::RegisterProtocolRequest) -> Result<(), ErrorBody> {
    check_protocol_id(&req.protocol_id)?;
    check_method(&req.handler_method)?;
    let h = Handler { module: caller.to_string(), method: req.handler_method };
    {
        let n = ctx.node();
        match n.handlers.get(&req.protocol_id) {
            Some(old) if old.module != caller => {
                return Err(ErrorBody::new(ErrorCode::AlreadyExists, format!("protocol id {:?} is handled by module {}", req.protocol_id, old.module)));
            }
            Some(old) if *old == h => return Ok(()),
            Some(_) => {}
            None if n.handlers.len() >= n.settings.max_handlers => {
                return Err(ErrorBody::new(ErrorCode::QuotaExceeded, format!("at most {} protocol handlers ([mesh] max_handlers)", n.settings.max_handlers)));
            }
            None => {}
        }
    }
    store::handler_put(&ctx.client, &req.protocol_id, &h).await.map_err(|e| ErrorBody::new(ErrorCode::Internal, format!("storing the handler: {e}")))?;
    let mut n = ctx.node();
    // Another caller may have won the id while the write was in flight.
    match n.handlers.get(&req.protocol_id) {
        Some(old) if old.module != caller => Err(ErrorBody::new(ErrorCode::AlreadyExists, format!("protocol id {:?} is handled by module {}", req.protocol_id, old.module))),
        _ => {
            n.handlers.insert(req.protocol_id.clone(), h);
            drop(n);
            ctx.client.info(&format!("protocol {:?} → module {caller}", req.protocol_id));
            Ok(())
        }
    }
}

async fn unregister_handler(ctx: &Ctx, caller: &str, proto: &str) -> Result<(), ErrorBody> {
    let owner = ctx.node().handlers.get(proto).map(|h| h.module.clone());
    match owner {
        None => Err(ErrorBody::new(ErrorCode::NotFound, format!("no handler for protocol id {proto:?}"))),
        Some(m) if m != caller => Err(ErrorBody::new(ErrorCode::Forbidden, format!("protocol id {proto:?} belongs to module {m}"))),
        Some(_) => {
            ctx.node().handlers.remove(proto);
            store::handler_delete(&ctx.client, proto).await.map_err(|e| ErrorBody::new(ErrorCode::Internal, format!("removing the handler: {e}")))
        }
    }
}

/// Remove `proto`'s handler if it is still `h`.
pub async fn drop_handler(ctx: &Ctx, proto: &str, h: &Handler) {
    let removed = {
        let mut n = ctx.node();
        if n.handlers.get(proto) == Some(h) {
            n.handlers.remove(proto);
            true
        } else {
            false
        }
    };
    if removed {
        ctx.client.warn(&format!("dropping handler {proto:?} → {}.{}: the call failed with NotFound", h.module, h.method));
        let _ = store::handler_delete(&ctx.client, proto).await;
    }
}

/// A module unloaded or crashed: its handlers go (it registers again when it starts).
pub async fn drop_handlers_of(ctx: &Ctx, module: &str) {
    let gone: Vec<String> = {
        let mut n = ctx.node();
        let gone: Vec<String> = n.handlers.iter().filter(|(_, h)| h.module == module).map(|(p, _)| p.clone()).collect();
        for p in &gone {
            n.handlers.remove(p);
        }
        gone
    };
    for p in gone {
        ctx.client.info(&format!("module {module} stopped: protocol {p:?} has no handler now"));
        let _ = store::handler_delete(&ctx.client, &p).await;
    }
}

pub fn stats(ctx: &Ctx) -> api::MeshStats {
    let now = now_ms();
    let n = ctx.node();
    let c = &n.counters;
    api::MeshStats {
        enabled: n.settings.enabled,
        mode: n.settings.mode,
        node_id: n.me,
        routing: api::RoutingStats {
            neighbours: n.by_node.len() as u32,
            destinations: n.table.destinations().iter().filter(|d| n.table.best(d, now).is_some()).count() as u32,
            paths: n.table.path_count(now) as u32,
            sent: c.sent,
            forwarded: c.forwarded,
            delivered: c.delivered,
            acked: c.acked,
            nacked: c.nacked,
            discoveries: c.discoveries,
            discovery_failures: c.discovery_failures,
            dropped: c.dropped.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        },
        replay: api::ReplayStats { sources: n.windows.len() as u32, replays_dropped: c.replays, dedup_entries: n.dedup.len() as u32, duplicates_dropped: c.duplicates },
        payments: payment_stats(&n),
        monopoly: super::monopoly::stats(&n, now),
    }
}

pub fn payment_stats(n: &super::state::Node) -> api::PaymentStats {
    let p = &n.settings.payments;
    let mut budgets: Vec<(String, u64, u64)> = n.pay.spent.iter().map(|(m, (_, spent))| (m.clone(), *spent, p.budget_of(m))).collect();
    for (m, b) in &p.budgets {
        if !n.pay.spent.contains_key(m) {
            budgets.push((m.clone(), 0, *b));
        }
    }
    budgets.sort();
    api::PaymentStats {
        backend: p.backend.as_str().to_string(),
        network: commons_mesh::pay_settings::network_name(p.network).to_string(),
        treasury_address: p.treasury_address.clone(),
        ledger: n.pay.ledger.clone(),
        replay_entries: n.pay.replay_count.min(u64::from(u32::MAX)) as u32,
        refused: n.pay.refused.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        budgets,
    }
}
