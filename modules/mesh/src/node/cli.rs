//! `hostd module commons-mesh <command>`: status, peers, routes (JSON, for
//! people and scripts alike), send, discover, and the operator's entity map.

use super::{api, discovery, monopoly, pay, Ctx};
use commons_mesh::mesh_api::{hex, parse_node_id, SendPacketRequest};
use commons_mesh::now_ms;
use hostd_sdk::{CliArg, CliCommand, CliSpec, ErrorBody, ErrorCode, Invocation, InvocationCall};
use serde_json::json;

pub fn spec() -> CliSpec {
    let arg = |name: &str, help: &str, required: bool| CliArg { name: name.into(), help: help.into(), required };
    let cmd = |name: &str, about: &str, args: Vec<CliArg>| CliCommand { name: name.into(), about: about.into(), args };
    CliSpec {
        about: "Commons Mesh: signed packets routed across hostd mesh links".into(),
        commands: vec![
            cmd("status", "Node id, mode, counters, drops by reason, handlers (JSON)", vec![]),
            cmd("peers", "Authenticated neighbours and their links (JSON)", vec![]),
            cmd("routes", "Destinations and their paths, best first (JSON)", vec![]),
            cmd(
                "send",
                "Send one packet and wait for its ACK or NACK",
                vec![arg("destination", "NodeId (hex)", true), arg("protocol", "protocol id", true), arg("text", "payload (UTF-8)", true), arg("ttl", "seconds", false)],
            ),
            cmd("discover", "Find a route", vec![arg("destination", "NodeId (hex)", true), arg("max_hops", "routers at most", false), arg("timeout", "seconds", false)]),
            cmd(
                "entity",
                "Set which operator runs a node (anti-monopoly), or clear it with -; kept across restarts",
                vec![arg("node", "NodeId (hex)", true), arg("entity", "name, or - to clear", true)],
            ),
        ],
    }
}

fn status(ctx: &Ctx) -> serde_json::Value {
    let s = api::stats(ctx);
    let n = ctx.node();
    let c = &n.counters;
    json!({
        "node_id": hex(&n.me),
        "enabled": n.settings.enabled,
        "mode": n.settings.mode.as_str(),
        "listen_addr": n.settings.listen_addr,
        "neighbours": s.routing.neighbours,
        "links": n.links.len(),
        "destinations": s.routing.destinations,
        "paths": s.routing.paths,
        "sent": c.sent, "forwarded": c.forwarded, "delivered": c.delivered, "verified": c.verified,
        "acked": c.acked, "nacked": c.nacked, "nacks_sent": c.nacks_sent,
        "adverts_in": c.adverts_in, "adverts_out": c.adverts_out,
        "discoveries": c.discoveries, "discovery_failures": c.discovery_failures,
        "max_routers_seen": c.max_routers_seen,
        "replay": { "sources": s.replay.sources, "replays_dropped": s.replay.replays_dropped, "dedup_entries": s.replay.dedup_entries, "duplicates_dropped": s.replay.duplicates_dropped },
        "dropped": c.dropped,
        "handlers": n.handlers.iter().map(|(p, h)| (p.clone(), json!({"module": h.module, "method": h.method}))).collect::<serde_json::Map<_, _>>(),
        "pending_answers": n.pending.len(),
        "next_sequence": n.next_seq,
        "payments": {
            "backend": s.payments.backend, "network": s.payments.network, "treasury_address": s.payments.treasury_address,
            "ledger": { "paid_sats": s.payments.ledger.paid_sats, "received_sats": s.payments.ledger.received_sats,
                        "treasury_due_sats": s.payments.ledger.treasury_due_sats, "packets_paid": s.payments.ledger.packets_paid,
                        "packets_verified": s.payments.ledger.packets_verified },
            "replay_entries": s.payments.replay_entries, "replay_pruned": n.pay.pruned,
            "refused": s.payments.refused.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "budgets": s.payments.budgets.iter().map(|(m, spent, budget)| (m.clone(), json!({"spent_sats": spent, "budget_sats": budget}))).collect::<serde_json::Map<_, _>>(),
            "pending_quotes": n.pay.quotes.len(), "stub_preimages_released": n.pay.stub_released,
        },
        "monopoly": {
            "mode": s.monopoly.mode, "cap": s.monopoly.cap, "relaxed": s.monopoly.relaxed, "failed": s.monopoly.failed,
            "paths_refused": s.monopoly.paths_refused, "operator_entities": n.entities.len(),
            "entities": s.monopoly.entities.iter().map(|e| (e.entity.clone(), json!({"share": e.share, "coverage": e.coverage}))).collect::<serde_json::Map<_, _>>(),
        },
    })
}

fn peers(ctx: &Ctx) -> serde_json::Value {
    let n = ctx.node();
    let mut out: Vec<_> = n
        .links
        .iter()
        .map(|(id, l)| {
            json!({"link": id, "addr": l.peer_addr, "inbound": l.inbound, "node_id": l.peer.map(|p| hex(&p)),
                   "rtt_us": l.rtt_us, "frames_in": l.frames_in, "frames_out": l.frames_out, "dropped_queue_full": l.dropped_full})
        })
        .collect();
    out.sort_by_key(|v| v["link"].as_u64());
    json!(out)
}

fn routes(ctx: &Ctx) -> serde_json::Value {
    let now = now_ms();
    let n = ctx.node();
    let out: Vec<_> = n
        .table
        .destinations()
        .iter()
        .map(|d| {
            let rec = n.table.record(d);
            let paths: Vec<_> = n
                .table
                .paths(d, now)
                .iter()
                .map(|p| json!({"routers": p.routers.iter().map(|r| hex(r)).collect::<Vec<_>>(), "score": p.score, "sent": p.quality.sent, "acked": p.quality.acked, "lost": p.quality.lost, "rtt_us": p.quality.rtt_us}))
                .collect();
            json!({"destination": hex(d), "mode": rec.map(|r| r.mode.as_str()), "record_age_ms": rec.map(|r| now.saturating_sub(r.signed_ms)), "paths": paths})
        })
        .collect();
    json!(out)
}

async fn command(ctx: &Ctx, command: &str, args: &[String]) -> Result<String, ErrorBody> {
    let bad = |m: String| ErrorBody::new(ErrorCode::InvalidArgument, m);
    let dest = || args.first().ok_or_else(|| bad("a destination NodeId is needed".into())).and_then(|a| parse_node_id(a).map_err(bad));
    let out = match command {
        "status" => status(ctx),
        "peers" => peers(ctx),
        "routes" => routes(ctx),
        "send" => {
            let destination = dest()?;
            let (Some(proto), Some(text)) = (args.get(1), args.get(2)) else { return Err(bad("send <destination> <protocol> <text> [ttl]".into())) };
            let ttl = args.get(3).map(|t| t.parse::<u64>().map_err(|_| bad(format!("ttl {t:?} is not a number")))).transpose()?;
            let req = SendPacketRequest { destination, payload: text.as_bytes().to_vec(), payment_proof: None, protocol_id: Some(proto.clone()), ttl, confirm: true };
            let (mut resp, rx) = pay::send(ctx, pay::OPERATOR, &req).await?;
            if let Some(rx) = rx {
                resp.delivery = super::forward::delivery(ctx, rx).await;
            }
            json!({"success": resp.success, "packet_id": hex(&resp.packet_id), "route_length": resp.route_length,
                   "cost_sats": resp.estimated_cost_sats, "error": resp.error, "delivery": format!("{:?}", resp.delivery)})
        }
        "discover" => {
            let destination = dest()?;
            let num = |i: usize| args.get(i).map(|a| a.parse::<u64>().map_err(|_| bad(format!("{a:?} is not a number")))).transpose();
            let max_hops = num(1)?.map(|h| h.min(255) as u8);
            let r = discovery::discover(ctx, destination, max_hops, num(2)?).await?;
            json!({"route": r.route.map(|r| r.iter().map(|n| hex(n)).collect::<Vec<_>>()), "cost_sats": r.route_cost_sats, "discovery_time_ms": r.discovery_time_ms})
        }
        "entity" => {
            let node = dest()?;
            let name = args.get(1).ok_or_else(|| bad("entity <node> <name|->".into()))?;
            let name = (name != "-").then(|| name.clone());
            if let Some(n) = &name {
                commons_mesh::monopoly_settings::check_entity(n).map_err(bad)?;
            }
            monopoly::set_entity(ctx, node, name.clone()).await.map_err(|e| ErrorBody::new(ErrorCode::QuotaExceeded, e))?;
            json!({"node": hex(&node), "entity": name})
        }
        other => return Err(ErrorBody::new(ErrorCode::NotFound, format!("unknown command {other:?}"))),
    };
    Ok(format!("{out:#}\n"))
}

pub async fn on_call(ctx: &Ctx, call: InvocationCall) {
    let Invocation::Cli { command: c, args } = call.invocation.clone() else { return };
    let r = command(ctx, &c, &args).await;
    call.reply(r.map(String::into_bytes));
}
