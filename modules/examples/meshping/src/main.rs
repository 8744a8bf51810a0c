//! Example module `meshping`: Commons Mesh packets through `MeshClient`,
//! built only on the SDK and the mesh API crate (no crypto of its own).
//! It registers a handler for its protocol id and checks every packet
//! that arrives. CLI (`hostd module meshping …`):
//!
//! - `id`: the mesh node's id; `report`: what arrived and what was sent;
//! - `send <dest> <count> <size> [ttl] [per_sec]`: numbered packets;
//! - `send-hex <dest> <hex> [confirm]`: one packet of exactly these bytes;
//! - `discover <dest> [max_hops] [timeout]`; `register <protocol>`;
//! - `events`: RouteDiscovered/RouteFailed/PaymentVerified seen, with their publisher;
//! - `bench <dest> <count> <size> <in_flight>`: round trips against a
//!   peer with `echo = true`: packets/s, MB/s, p50/p99.

mod payload;

use hostd_sdk::{CliArg, CliCommand, CliSpec, ErrorBody, ErrorCode, EventPayload, EventType, Incoming, Invocation, SdkError};
use mesh_api::{decode, hex, parse_node_id, MeshClient, NodeId, PaymentEvent, RouteEvent, SendPacketRequest};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Semaphore};

const HANDLER: &str = "on_packet";
/// Retries of a send answered Busy (backing off from 0.2 ms to ~13 ms).
const BUSY_RETRIES: u32 = 20;
/// (source, seq) pairs remembered to spot a packet delivered twice.
const SEEN_MAX: usize = 1 << 20;

#[derive(Default)]
struct Bench {
    expected: u64,
    rtts_us: Vec<u64>,
    window: Option<Arc<Semaphore>>,
    done: Option<oneshot::Sender<()>>,
}

#[derive(Default)]
struct State {
    received: u64,
    ok: u64,
    bad: u64,
    duplicates: u64,
    not_from_mesh: u64,
    seen: HashSet<(NodeId, u64)>,
    per_source: BTreeMap<String, u64>,
    max_routers: u8,
    sent: u64,
    send_errors: u64,
    last_error: String,
    registered: Option<Result<(), String>>,
    events: Vec<String>,
    bench: Bench,
    next_seq: u64,
}

type Shared = Arc<Mutex<State>>;

fn st(s: &Shared) -> std::sync::MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("meshping: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), SdkError> {
    let name = std::env::var("HOSTD_MODULE").unwrap_or_else(|_| "meshping".into());
    let (client, mut incoming) = hostd_sdk::connect(&name, env!("CARGO_PKG_VERSION")).await?;
    client.register_cli_spec(cli_spec()).await?;
    let config = client.config()?;
    let text = |k: &str, d: &str| config.get(k).and_then(|v| v.as_str()).unwrap_or(d).to_string();
    let protocol = text("protocol", "ping-v1");
    let mesh_module = text("mesh_module", mesh_api::DEFAULT_MODULE);
    let echo = config.get("echo").and_then(|v| v.as_bool()).unwrap_or(false);
    let mesh = MeshClient::new(client.clone(), mesh_module.clone());
    let state: Shared = Arc::default();
    client.register_module_api(&[HANDLER]).await?;
    client.subscribe_events(vec![EventType::RouteDiscovered, EventType::RouteFailed, EventType::PaymentVerified, EventType::ModuleLoaded]).await?;
    tokio::spawn(register(mesh.clone(), state.clone(), protocol.clone()));
    let clock = Instant::now();
    while let Some(msg) = incoming.next().await {
        match msg {
            Incoming::Invoke(call) => match &call.invocation {
                Invocation::Api { .. } => {
                    let r = on_packet(&mesh, &state, &call.invocation, echo, clock);
                    call.reply(r);
                }
                Invocation::Cli { command, args } => {
                    let (mesh, state, protocol, command, args) = (mesh.clone(), state.clone(), protocol.clone(), command.clone(), args.clone());
                    tokio::spawn(async move {
                        let r = command_line(&mesh, &state, &protocol, &command, &args, clock).await;
                        call.reply(r.map(String::into_bytes).map_err(|m| ErrorBody::new(ErrorCode::InvalidArgument, m)));
                    });
                }
                _ => call.reply(Err(ErrorBody::new(ErrorCode::Unsupported, "meshping serves its handler and CLI"))),
            },
            Incoming::Event(ev) => match (ev.event_type, ev.payload) {
                (EventType::ModuleLoaded, EventPayload::ModuleLoaded { module_name, .. }) if module_name == mesh_module => {
                    tokio::spawn(register(mesh.clone(), state.clone(), protocol.clone()));
                }
                (t @ (EventType::RouteDiscovered | EventType::RouteFailed), EventPayload::Data(body)) => {
                    let line = match decode::<RouteEvent>(&body) {
                        Ok(e) => format!(
                            "{t} publisher={} destination={} route={} cost={} ms={} reason={}",
                            ev.publisher.as_deref().unwrap_or("-"),
                            hex(&e.destination),
                            e.route.map(|r| r.iter().map(|n| hex(n)).collect::<Vec<_>>().join(",")).unwrap_or_else(|| "-".into()),
                            e.cost_sats,
                            e.discovery_time_ms,
                            e.reason.unwrap_or_default().replace(' ', "_")
                        ),
                        Err(e) => format!("{t} publisher={} undecodable: {e}", ev.publisher.as_deref().unwrap_or("-")),
                    };
                    push_event(&state, line);
                }
                (EventType::PaymentVerified, EventPayload::Data(body)) => {
                    let line = match decode::<PaymentEvent>(&body) {
                        Ok(e) => format!(
                            "PaymentVerified publisher={} role={} sats={} hash={} packet={}",
                            ev.publisher.as_deref().unwrap_or("-"),
                            e.role,
                            e.sats,
                            hex(&e.payment_hash),
                            hex(&e.packet_id)
                        ),
                        Err(e) => format!("PaymentVerified publisher={} undecodable: {e}", ev.publisher.as_deref().unwrap_or("-")),
                    };
                    push_event(&state, line);
                }
                _ => {}
            },
            Incoming::Shutdown { .. } => break,
            _ => {}
        }
    }
    Ok(())
}

/// Register the handler, retrying while the mesh module is not up yet.
/// Keep the first 1000 event lines.
fn push_event(state: &Shared, line: String) {
    let mut s = st(state);
    if s.events.len() < 1000 {
        s.events.push(line);
    }
}

async fn register(mesh: MeshClient, state: Shared, protocol: String) {
    for _ in 0..120 {
        match mesh.register_protocol_handler(&protocol, HANDLER).await {
            Ok(_) => {
                st(&state).registered = Some(Ok(()));
                return;
            }
            Err(e) if e.code() == Some(ErrorCode::AlreadyExists) || e.code() == Some(ErrorCode::PermissionDenied) => {
                st(&state).registered = Some(Err(format!("{:?}: {e}", e.code())));
                return;
            }
            Err(e) => st(&state).registered = Some(Err(format!("{:?}: {e}", e.code()))),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn on_packet(mesh: &MeshClient, state: &Shared, inv: &Invocation, echo: bool, clock: Instant) -> Result<Vec<u8>, ErrorBody> {
    let Some(packet) = mesh.inbound(inv, HANDLER) else {
        st(state).not_from_mesh += 1;
        return Err(ErrorBody::new(ErrorCode::Forbidden, "packets are accepted from the mesh module only"));
    };
    let p = packet.map_err(|e| ErrorBody::new(ErrorCode::InvalidArgument, e))?;
    let mut s = st(state);
    s.received += 1;
    s.max_routers = s.max_routers.max(p.routers);
    *s.per_source.entry(hex(&p.source)[..16].to_string()).or_default() += 1;
    if s.seen.len() < SEEN_MAX && !s.seen.insert((p.source, p.sequence)) {
        s.duplicates += 1;
    }
    match payload::check(&p.payload) {
        Some((payload::ECHO, _, sent_us)) => {
            let now = clock.elapsed().as_micros() as u64;
            let b = &mut s.bench;
            b.rtts_us.push(now.saturating_sub(sent_us));
            if let Some(w) = &b.window {
                w.add_permits(1);
            }
            if b.rtts_us.len() as u64 >= b.expected {
                if let Some(done) = b.done.take() {
                    let _ = done.send(());
                }
            }
            s.ok += 1;
        }
        Some((kind, _, _)) => {
            s.ok += 1;
            if kind == payload::PROBE && echo {
                if let Some(back) = payload::echo_of(&p.payload) {
                    let (mesh, state) = (mesh.clone(), state.clone());
                    let req = SendPacketRequest { destination: p.source, payload: back, payment_proof: None, protocol_id: Some(p.protocol_id), ttl: None, confirm: false };
                    tokio::spawn(async move { send_one(&mesh, &state, &req).await });
                }
            }
        }
        None => s.bad += 1,
    }
    Ok(Vec::new())
}

/// Send, retrying while hostd or the mesh module answers Busy (too many
/// calls pending at the mesh module, or its first hop's queue full).
async fn send_one(mesh: &MeshClient, state: &Shared, req: &SendPacketRequest) -> Result<mesh_api::SendPacketResponse, String> {
    let mut r = mesh.send_packet(req).await;
    for attempt in 0..BUSY_RETRIES {
        match &r {
            Err(e) if e.code() == Some(ErrorCode::Busy) => {
                tokio::time::sleep(Duration::from_micros(200 << attempt.min(6))).await;
                r = mesh.send_packet(req).await;
            }
            _ => break,
        }
    }
    let mut s = st(state);
    match r {
        Ok(resp) if resp.success => {
            s.sent += 1;
            Ok(resp)
        }
        Ok(resp) => {
            s.send_errors += 1;
            s.last_error = resp.error.clone().unwrap_or_default();
            Ok(resp)
        }
        Err(e) => {
            s.send_errors += 1;
            s.last_error = format!("{:?}: {e}", e.code());
            Err(s.last_error.clone())
        }
    }
}

fn num(args: &[String], i: usize, default: u64) -> Result<u64, String> {
    args.get(i).map_or(Ok(default), |a| a.parse().map_err(|_| format!("argument {} ({a:?}) is not a number", i + 1)))
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if s.len() % 2 != 0 {
        return Err("odd number of hex digits".into());
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| format!("{s:?} is not hex"))).collect()
}

async fn command_line(mesh: &MeshClient, state: &Shared, protocol: &str, command: &str, args: &[String], clock: Instant) -> Result<String, String> {
    let dest = || args.first().ok_or_else(|| "a destination NodeId (hex) is needed".to_string()).and_then(|a| parse_node_id(a));
    let err = |e: mesh_api::MeshError| format!("error {:?}: {e}", e.code());
    match command {
        "id" => Ok(format!("{}\n", hex(&mesh.get_node_id().await.map_err(err)?))),
        "report" => {
            let s = st(state);
            Ok(format!(
                "received={} ok={} bad={} duplicates={} not_from_mesh={} sources={} max_routers={} sent={} send_errors={} registered={} last_error={}\n",
                s.received,
                s.ok,
                s.bad,
                s.duplicates,
                s.not_from_mesh,
                s.per_source.len(),
                s.max_routers,
                s.sent,
                s.send_errors,
                match &s.registered {
                    Some(Ok(())) => "yes".to_string(),
                    Some(Err(e)) => e.replace(' ', "_"),
                    None => "pending".into(),
                },
                s.last_error.replace(' ', "_")
            ))
        }
        "events" => Ok(st(state).events.iter().map(|e| format!("{e}\n")).collect()),
        "stats" => Ok(format!("{:#?}\n", mesh.get_routing_stats().await.map_err(err)?)),
        "register" => {
            let p = args.first().ok_or("register <protocol>")?;
            mesh.register_protocol_handler(p, HANDLER).await.map_err(err)?;
            Ok(format!("registered {p}\n"))
        }
        "discover" => {
            let r = mesh.discover_route(dest()?, args.get(1).map(|_| num(args, 1, 10)).transpose()?.map(|h| h.min(255) as u8), args.get(2).map(|_| num(args, 2, 30)).transpose()?).await.map_err(err)?;
            let route = r.route.map(|r| r.iter().map(|n| hex(n)).collect::<Vec<_>>().join(",")).unwrap_or_else(|| "-".into());
            Ok(format!("route={route} cost={} ms={}\n", r.route_cost_sats, r.discovery_time_ms))
        }
        "send-hex" => {
            let payload = unhex(args.get(1).ok_or("send-hex <dest> <hex> [confirm]")?)?;
            let req = SendPacketRequest { destination: dest()?, payload, payment_proof: None, protocol_id: Some(protocol.into()), ttl: None, confirm: args.get(2).is_some_and(|c| c == "confirm") };
            let r = send_one(mesh, state, &req).await?;
            Ok(format!("success={} route_length={} cost={} delivery={:?} error={}\n", r.success, r.route_length, r.estimated_cost_sats, r.delivery, r.error.unwrap_or_default().replace(' ', "_")))
        }
        "send" => {
            let destination = dest()?;
            let (count, size, ttl, per_sec) = (num(args, 1, 100)?, num(args, 2, 1024)? as usize, num(args, 3, 0)?, num(args, 4, 0)?);
            let first = {
                let mut s = st(state);
                let f = s.next_seq;
                s.next_seq += count;
                f
            };
            let (mesh, state, protocol) = (mesh.clone(), state.clone(), protocol.to_string());
            tokio::spawn(async move {
                let start = Instant::now();
                for (i, seq) in (first..first + count).enumerate() {
                    if per_sec > 0 {
                        let due = start + Duration::from_secs_f64(i as f64 / per_sec as f64);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let req = SendPacketRequest {
                        destination,
                        payload: payload::make(payload::DATA, seq, 0, size),
                        payment_proof: None,
                        protocol_id: Some(protocol.clone()),
                        ttl: (ttl > 0).then_some(ttl),
                        confirm: false,
                    };
                    let _ = send_one(&mesh, &state, &req).await;
                }
            });
            Ok(format!("sending {count} packets of {size} bytes\n"))
        }
        "bench" => bench(mesh, state, protocol, dest()?, num(args, 1, 1000)?, num(args, 2, 1024)? as usize, num(args, 3, 1)?, clock).await,
        other => Err(format!("unknown command {other:?}")),
    }
}

/// `count` probes with at most `in_flight` unanswered, against a peer that echoes.
#[allow(clippy::too_many_arguments)]
async fn bench(mesh: &MeshClient, state: &Shared, protocol: &str, dest: NodeId, count: u64, size: usize, in_flight: u64, clock: Instant) -> Result<String, String> {
    let window = Arc::new(Semaphore::new(in_flight.clamp(1, 4096) as usize));
    let (done_tx, done_rx) = oneshot::channel();
    {
        let mut s = st(state);
        if s.bench.done.is_some() {
            return Err("a benchmark is already running".into());
        }
        s.bench = Bench { expected: count, rtts_us: Vec::with_capacity(count as usize), window: Some(window.clone()), done: Some(done_tx) };
    }
    // Calls to the mesh module in flight at once (each answers in ~100 µs).
    let calls = Arc::new(Semaphore::new(32));
    let started = Instant::now();
    for seq in 0..count {
        match window.acquire().await {
            Ok(p) => p.forget(),
            Err(_) => break,
        }
        let Ok(call) = calls.clone().acquire_owned().await else { break };
        let req = SendPacketRequest {
            destination: dest,
            payload: payload::make(payload::PROBE, seq, clock.elapsed().as_micros() as u64, size),
            payment_proof: None,
            protocol_id: Some(protocol.to_string()),
            ttl: None,
            confirm: false,
        };
        let (mesh, state) = (mesh.clone(), state.clone());
        tokio::spawn(async move {
            let _call = call;
            let _ = send_one(&mesh, &state, &req).await;
        });
    }
    let finished = tokio::time::timeout(Duration::from_secs(120), done_rx).await.is_ok();
    let secs = started.elapsed().as_secs_f64();
    let mut rtts = std::mem::take(&mut st(state).bench).rtts_us;
    if !finished {
        return Err(format!("only {} of {count} probes came back within 120 s", rtts.len()));
    }
    rtts.sort_unstable();
    let n = rtts.len() as f64;
    Ok(format!(
        "packets={} secs={secs:.3} pps={:.0} mbps={:.2} p50_us={} p99_us={}\n",
        rtts.len(),
        n / secs,
        n * size as f64 / secs / 1e6,
        payload::quantile(&rtts, 0.50),
        payload::quantile(&rtts, 0.99)
    ))
}

fn cli_spec() -> CliSpec {
    let arg = |name: &str, help: &str| CliArg { name: name.into(), help: help.into(), required: false };
    let cmd = |name: &str, about: &str, args: Vec<CliArg>| CliCommand { name: name.into(), about: about.into(), args };
    let dest = || arg("destination", "NodeId (hex)");
    CliSpec {
        about: "Commons Mesh packets through MeshClient".into(),
        commands: vec![
            cmd("id", "The mesh node's id", vec![]),
            cmd("report", "What arrived (checked) and what was sent", vec![]),
            cmd("events", "RouteDiscovered / RouteFailed / PaymentVerified events seen", vec![]),
            cmd("stats", "The mesh module's routing stats", vec![]),
            cmd("register", "Register another protocol id", vec![arg("protocol", "protocol id")]),
            cmd("discover", "Find a route", vec![dest(), arg("max_hops", "routers at most"), arg("timeout", "seconds")]),
            cmd("send", "Numbered packets", vec![dest(), arg("count", "packets"), arg("size", "bytes"), arg("ttl", "seconds"), arg("per_sec", "rate")]),
            cmd("send-hex", "One packet of these bytes", vec![dest(), arg("hex", "payload"), arg("confirm", "\"confirm\" to wait for the answer")]),
            cmd("bench", "Round trips against an echoing peer", vec![dest(), arg("count", "probes"), arg("size", "bytes"), arg("in_flight", "unanswered at most")]),
        ],
    }
}
