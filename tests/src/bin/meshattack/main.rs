//! A hostile Commons Mesh node, run as a real sandboxed module: it links
//! to honest nodes through hostd, proves its own key like any node, and
//! then sends packets built to break one rule each. The tests read the
//! honest nodes' drop counters to see which check caught each.
//!
//! CLI `attack <kind> <destination> <routers|-> [victim]`:
//! `valid`, `expired`, `long-path`, `tamper-hop`, `tamper-payload`,
//! `forge-source`, `lockout` (forged source with sequence u64::MAX),
//! `bad-class`, `replay-same` (the last valid packet's exact bytes
//! again), `replay-resigned` (its sequence again, freshly signed),
//! `valid-far` (a sequence far ahead), `forged-advert` (a route to the
//! victim with a record the attacker signed in the victim's name).
//! `paid-*` kinds (paid.rs): a real quote and payment, then one thing
//! in the bundle broken. `peers`: link → NodeId; `nacks`: the answers
//! (ACK or typed NACK) that came back, one per line. Config: `dial =
//! ["ip:port", …]`, `fee_sats` (paid attacks), `ln_secret` (hex: the
//! Lightning key a destination binds), `network` (default regtest).

mod burst;
mod paid;

use commons_mesh::bolt11::Currency;
use commons_mesh::identity::{random_bytes, Identity};
use commons_mesh::mesh_api::{hex, parse_node_id, MeshMode, NodeId, TrafficClass};
use commons_mesh::msg::{auth_digest, LinkMsg, LINK_VERSION};
use commons_mesh::packet::{DataPacket, MAX_ROUTERS};
use commons_mesh::record::{FeeSchedule, NodeRecord};
use commons_mesh::now_ms;
use hostd_sdk::{ErrorBody, ErrorCode, Incoming, Invocation, InvocationCall};
use std::collections::HashMap;
use std::time::Duration;

struct Link {
    /// Outbound links: the address to dial again when it drops.
    redial: Option<String>,
    nonce: [u8; 32],
    peer: Option<NodeId>,
}

struct Attacker {
    id: Identity,
    links: HashMap<u64, Link>,
    seq: u64,
    /// The last valid packet: its bytes and fields.
    last: Option<(Vec<u8>, DataPacket)>,
    /// The last valid paid packet's bundle.
    last_bundle: Option<Vec<u8>>,
    /// A paid attack waiting for a round trip, and the CLI call to answer.
    paid: Option<(paid::PaidRun, InvocationCall)>,
    /// "<from> ACK" / "<from> <reason>" for every answer addressed here.
    answers: Vec<String>,
    /// The benchmark's prepared frames.
    burst: burst::Burst,
}

impl Attacker {
    fn link_to(&self, node: &NodeId) -> Option<u64> {
        self.links.iter().find(|(_, l)| l.peer == Some(*node)).map(|(k, _)| *k)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let name = std::env::var("HOSTD_MODULE").unwrap_or_else(|_| "meshattack".into());
    let Ok((client, mut incoming)) = hostd_sdk::connect(&name, "1.0.0").await else { std::process::exit(1) };
    let cmd = |name: &str, args: &[&str]| hostd_sdk::CliCommand {
        name: name.into(),
        about: name.into(),
        args: args.iter().map(|a| hostd_sdk::CliArg { name: a.to_string(), help: a.to_string(), required: false }).collect(),
    };
    let spec = hostd_sdk::CliSpec { about: "hostile mesh node".into(), commands: vec![cmd("peers", &[]), cmd("nacks", &[]), cmd("attack", &["kind", "destination", "routers", "victim"])] };
    if client.register_cli_spec(spec).await.is_err() {
        std::process::exit(1);
    }
    let config = client.config().unwrap_or_default();
    let dial: Vec<String> = config.get("dial").and_then(|v| v.as_array()).map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default();
    let Ok(id) = Identity::generate() else { std::process::exit(1) };
    let mut a = Attacker { id, links: HashMap::new(), seq: 0, last: None, last_bundle: None, paid: None, answers: Vec::new(), burst: burst::Burst::default() };
    let fee_sats = config.get("fee_sats").and_then(|v| v.as_integer()).unwrap_or(0) as u64;
    let lightning = config.get("ln_secret").and_then(|v| v.as_str()).and_then(|h| parse_node_id(h).ok()).and_then(|s| Identity::from_secret(s).ok());
    let currency = match config.get("network").and_then(|v| v.as_str()).unwrap_or("regtest") {
        "mainnet" => Currency::Bitcoin,
        "testnet" => Currency::Testnet,
        "signet" => Currency::Signet,
        _ => Currency::Regtest,
    };
    for d in dial {
        tokio::spawn(dial_until_up(client.clone(), d));
    }
    while let Some(msg) = incoming.next().await {
        match msg {
            Incoming::LinkUp(info) => {
                let nonce = random_bytes::<32>().unwrap_or([7; 32]);
                a.links.insert(info.id, Link { redial: (!info.inbound).then(|| info.peer.clone()), nonce, peer: None });
                let _ = client.mesh_queue(info.id, LinkMsg::Hello { version: LINK_VERSION, nonce }.encode()).await;
            }
            Incoming::LinkDown { link, .. } => {
                if let Some(addr) = a.links.remove(&link).and_then(|l| l.redial) {
                    tokio::spawn(dial_until_up(client.clone(), addr));
                }
            }
            Incoming::Frame { link, data } => match LinkMsg::decode(&data) {
                Ok(LinkMsg::Hello { nonce, .. }) => {
                    let Some(l) = a.links.get(&link) else { continue };
                    let record = NodeRecord::sign(&a.id, MeshMode::Open, FeeSchedule::default(), None, None, now_ms());
                    let sig = a.id.sign(&auth_digest(&nonce, &l.nonce, &a.id.node_id()));
                    let _ = client.mesh_queue(link, LinkMsg::Auth { record, sig }.encode()).await;
                }
                Ok(LinkMsg::Auth { record, .. }) => {
                    if let Some(l) = a.links.get_mut(&link) {
                        l.peer = Some(record.node_id);
                    }
                }
                Ok(LinkMsg::Ping(x)) => {
                    let _ = client.mesh_queue(link, LinkMsg::Pong(x).encode()).await;
                }
                Ok(LinkMsg::Control(c)) if c.to == a.id.node_id() && c.verify() => {
                    a.answers.push(format!("{} {}", hex(&c.from), c.nack.map_or("ACK".to_string(), |r| format!("{r:?}"))));
                }
                Ok(LinkMsg::Settle(s)) if s.back && a.paid.as_ref().is_some_and(|(r, _)| r.pid == s.packet_id) => {
                    let Some((mut run, call)) = a.paid.take() else { continue };
                    let keys = paid::Keys { attacker: &a.id, lightning: lightning.as_ref(), currency };
                    let step = paid::advance(&mut run, s, &keys);
                    let first = run.packet.routers.first().copied().unwrap_or(run.packet.destination);
                    match step {
                        Ok(step) => {
                            let done = matches!(step, paid::Step::Packet(..));
                            // Preparing a burst, a finished packet is kept, not sent.
                            let r = if done && a.burst.left > 0 { Ok(()) } else { send_step(&client, &a, &first, step).await };
                            if done && a.burst.left > 0 {
                                // Preparing a burst: keep the packet, pay for the next.
                                a.burst.frames.push(LinkMsg::Data(Box::new(run.packet.clone()), run.pid).encode());
                                a.burst.left -= 1;
                                if a.burst.left == 0 {
                                    call.reply(Ok(format!("prepared {}\n", a.burst.frames.len()).into_bytes()));
                                    continue;
                                }
                                a.seq += 1;
                                let size = run.packet.payload.len();
                                match paid::start("paid-valid", &a.id, a.seq, paid::Target { dest: run.packet.destination, routers: run.packet.routers.clone(), fee_sats, payload_len: size }, None) {
                                    Ok((step, Some(next))) => match send_step(&client, &a, &first, step).await {
                                        Ok(()) => a.paid = Some((next, call)),
                                        Err(e) => {
                                            a.burst.left = 0;
                                            call.reply(Err(ErrorBody::new(ErrorCode::InvalidArgument, e)));
                                        }
                                    },
                                    other => {
                                        a.burst.left = 0;
                                        call.reply(Err(ErrorBody::new(ErrorCode::Internal, format!("the next paid run did not start: {:?}", other.err()))));
                                    }
                                }
                                continue;
                            }
                            if done || r.is_err() {
                                if done && run.kind == "paid-valid" {
                                    a.last_bundle = Some(run.packet.payment.clone());
                                    a.last = Some((LinkMsg::Data(Box::new(run.packet.clone()), run.pid).encode(), run.packet.clone()));
                                }
                                call.reply(r.map(|()| format!("sent {} {}\n", run.kind, hex(&run.pid)).into_bytes()).map_err(|m| ErrorBody::new(ErrorCode::InvalidArgument, m)));
                            } else {
                                a.paid = Some((run, call));
                            }
                        }
                        Err(e) => call.reply(Err(ErrorBody::new(ErrorCode::InvalidArgument, e))),
                    }
                }
                _ => {}
            },
            Incoming::Invoke(call) if matches!(&call.invocation, Invocation::Cli { command, args } if command == "attack" && args.first().is_some_and(|k| k.starts_with("burst-"))) => {
                let Invocation::Cli { args, .. } = call.invocation.clone() else { continue };
                match burst_command(&client, &mut a, &args, fee_sats).await {
                    Ok(Ok(text)) => call.reply(Ok(text.into_bytes())),
                    Ok(Err(run)) => a.paid = Some((run, call)),
                    Err(e) => call.reply(Err(ErrorBody::new(ErrorCode::InvalidArgument, e))),
                }
            }
            Incoming::Invoke(call) if matches!(&call.invocation, Invocation::Cli { command, args } if command == "attack" && args.first().is_some_and(|k| k.starts_with("paid-"))) => {
                let Invocation::Cli { args, .. } = call.invocation.clone() else { continue };
                if a.paid.is_some() {
                    call.reply(Err(ErrorBody::new(ErrorCode::Busy, "a paid attack is still running")));
                    continue;
                }
                let parsed = (|| -> Result<(NodeId, Vec<NodeId>), String> {
                    let dest = parse_node_id(args.get(1).ok_or("destination")?)?;
                    let routers = match args.get(2).map(String::as_str) {
                        None | Some("-") => Vec::new(),
                        Some(list) => list.split(',').map(parse_node_id).collect::<Result<_, _>>()?,
                    };
                    Ok((dest, routers))
                })();
                let started = parsed.and_then(|(dest, routers)| {
                    a.seq += 1;
                    paid::start(&args[0], &a.id, a.seq, paid::Target { dest, routers, fee_sats, payload_len: 0 }, a.last_bundle.as_ref())
                });
                match started {
                    Err(e) => call.reply(Err(ErrorBody::new(ErrorCode::InvalidArgument, e))),
                    Ok((step, run)) => {
                        let (first, pid) = match &step {
                            paid::Step::Settle(s) => (s.routers.first().copied().unwrap_or(s.destination), s.packet_id),
                            paid::Step::Packet(p, pid) => (p.routers.first().copied().unwrap_or(p.destination), *pid),
                        };
                        let r = send_step(&client, &a, &first, step).await;
                        match (r, run) {
                            (Ok(()), Some(run)) => a.paid = Some((run, call)),
                            (r, _) => call.reply(r.map(|()| format!("sent {} {}\n", args[0], hex(&pid)).into_bytes()).map_err(|m| ErrorBody::new(ErrorCode::InvalidArgument, m))),
                        }
                    }
                }
            }
            Incoming::Invoke(call) => {
                let r = match &call.invocation {
                    Invocation::Cli { command, .. } if command == "nacks" => Ok(a.answers.iter().map(|l| format!("{l}\n")).collect::<String>()),
                    Invocation::Cli { command, .. } if command == "peers" => {
                        Ok(a.links.iter().map(|(l, p)| format!("{l} {}\n", p.peer.map(|n| hex(&n)).unwrap_or_default())).collect::<String>())
                    }
                    Invocation::Cli { command, args } if command == "attack" => match attack(&mut a, args) {
                        Ok((first_hop, frame)) => match a.links.iter().find(|(_, l)| l.peer == Some(first_hop)) {
                            Some((link, _)) => {
                                let link = *link;
                                match client.mesh_send(link, frame).await {
                                    Ok(()) => Ok(format!("sent on link {link}\n")),
                                    Err(e) => Err(format!("send: {e}")),
                                }
                            }
                            None => Err(format!("no authenticated link to {}", hex(&first_hop))),
                        },
                        Err(e) => Err(e),
                    },
                    other => Err(format!("unknown {other:?}")),
                };
                call.reply(r.map(String::into_bytes).map_err(|m| ErrorBody::new(ErrorCode::InvalidArgument, m)));
            }
            Incoming::Shutdown { .. } => break,
            _ => {}
        }
    }
}

/// `burst-free|burst-paid|burst-quotes <dest> <routers> <n>` prepare n frames (1 KiB packets, or quote requests)
/// (`Ok(Err(run))`: a paid preparation is under way and answers when done);
/// `burst-fire <first hop>` sends them all.
async fn burst_command(client: &hostd_sdk::Client, a: &mut Attacker, args: &[String], fee_sats: u64) -> Result<Result<String, paid::PaidRun>, String> {
    const SIZE: usize = 1024;
    if args[0] == "burst-fire" {
        let first = parse_node_id(args.get(1).ok_or("burst-fire <first hop>")?)?;
        let link = a.link_to(&first).ok_or("no link to the first hop")?;
        let (n, secs) = burst::fire(client, link, std::mem::take(&mut a.burst.frames), 256).await?;
        return Ok(Ok(format!("fired {n} in {:.0} us\n", secs * 1e6)));
    }
    if a.paid.is_some() || a.burst.left > 0 {
        return Err("a paid run is under way".into());
    }
    let dest = parse_node_id(args.get(1).ok_or("destination")?)?;
    let routers: Vec<NodeId> = match args.get(2).map(String::as_str) {
        None | Some("-") => Vec::new(),
        Some(list) => list.split(',').map(parse_node_id).collect::<Result<_, _>>()?,
    };
    let n: u64 = args.get(3).and_then(|v| v.parse().ok()).ok_or("a count is needed")?;
    a.burst.frames.clear();
    if args[0] == "burst-quotes" {
        // Quote requests for n distinct packets, never paid: what a peer
        // flooding payees with invoice requests sends.
        for _ in 0..n {
            a.seq += 1;
            let target = paid::Target { dest, routers: routers.clone(), fee_sats, payload_len: 0 };
            if let (paid::Step::Settle(q), _) = paid::start("paid-valid", &a.id, a.seq, target, None)? {
                a.burst.frames.push(LinkMsg::Settle(q).encode());
            }
        }
        return Ok(Ok(format!("prepared {n}\n")));
    }
    if args[0] == "burst-free" {
        a.burst.frames = burst::free(&a.id, &mut a.seq, dest, &routers, n, SIZE)?;
        return Ok(Ok(format!("prepared {n}\n")));
    }
    a.burst.left = n;
    a.seq += 1;
    let first = routers.first().copied().unwrap_or(dest);
    let (step, run) = paid::start("paid-valid", &a.id, a.seq, paid::Target { dest, routers, fee_sats, payload_len: SIZE }, None)?;
    send_step(client, a, &first, step).await?;
    run.map(Err).ok_or_else(|| "no round trip".to_string())
}

/// An unsigned paid-class packet from `id` over `routers` to `dest`, ttl
/// 60 s, created now, for protocol ping-v1; each attack sets what it needs.
pub fn packet(id: &Identity, dest: NodeId, routers: Vec<NodeId>) -> DataPacket {
    DataPacket {
        flags: 0,
        source: id.node_id(),
        destination: dest,
        sequence: 0,
        created_ms: now_ms(),
        ttl_secs: 60,
        hop_limit: MAX_ROUTERS as u8,
        class: TrafficClass::Paid,
        fee_sats: 0,
        routers,
        protocol_id: "ping-v1".into(),
        payload: Vec::new(),
        sig: [0; 64],
        hop_index: 0,
        payment: Vec::new(),
    }
}

/// Send one step of a paid attack to `first` (the first hop).
async fn send_step(client: &hostd_sdk::Client, a: &Attacker, first: &NodeId, step: paid::Step) -> Result<(), String> {
    let link = a.link_to(first).ok_or_else(|| format!("no authenticated link to {}", hex(first)))?;
    let frame = match step {
        paid::Step::Settle(s) => LinkMsg::Settle(s).encode(),
        paid::Step::Packet(p, pid) => LinkMsg::Data(p, pid).encode(),
    };
    client.mesh_send(link, frame).await.map_err(|e| format!("send: {e}"))
}

/// Keep trying while the honest node's hostd is (re)starting.
async fn dial_until_up(c: hostd_sdk::Client, addr: String) {
    for _ in 0..600 {
        if c.mesh_connect(&addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Build one hostile frame: (first hop, bytes).
fn attack(a: &mut Attacker, args: &[String]) -> Result<(NodeId, Vec<u8>), String> {
    let kind = args.first().ok_or("attack <kind> <destination> <routers|-> [victim]")?.as_str();
    let dest = parse_node_id(args.get(1).ok_or("destination")?)?;
    let routers: Vec<NodeId> = match args.get(2).map(String::as_str) {
        None | Some("-") => Vec::new(),
        Some(list) => list.split(',').map(parse_node_id).collect::<Result<_, _>>()?,
    };
    let first = routers.first().copied().unwrap_or(dest);
    if kind.starts_with("replay") {
        let (bytes, p) = a.last.clone().ok_or("no valid packet sent yet")?;
        if kind == "replay-same" {
            return Ok((p.routers.first().copied().unwrap_or(p.destination), bytes));
        }
        let mut q = p.clone();
        q.created_ms = now_ms();
        let pid = q.sign(&a.id);
        return Ok((q.routers.first().copied().unwrap_or(q.destination), LinkMsg::Data(Box::new(q), pid).encode()));
    }
    if kind == "forged-advert" {
        // A route to the victim carrying a record "signed" by the victim,
        // really by the attacker: whoever checks it closes the link.
        let victim = parse_node_id(args.get(3).ok_or("victim NodeId needed")?)?;
        let mut record = NodeRecord::sign(&a.id, MeshMode::Open, FeeSchedule::default(), None, None, now_ms());
        record.node_id = victim;
        let entry = commons_mesh::msg::AdvertEntry { destination: victim, route: Some((Vec::new(), record)) };
        a.seq += 1;
        let advert = commons_mesh::msg::Advert::new(&a.id, a.seq, vec![entry]);
        return Ok((first, LinkMsg::Advert(advert).encode()));
    }
    // "valid-far": a sequence far past anything reserved so far.
    a.seq += if kind == "valid-far" { 1_000_000 } else { 1 };
    let payload = b"\x00hostile-but-signed".to_vec();
    let mut p = DataPacket { sequence: a.seq, payload, ..packet(&a.id, dest, routers) };
    let victim = || args.get(3).ok_or("victim NodeId needed").and_then(|v| parse_node_id(v).map_err(|_| "victim"));
    match kind {
        "valid" | "valid-far" => {}
        "expired" => p.created_ms -= 3_600_000,
        "long-path" => {
            p.routers.extend((0..=MAX_ROUTERS).map(|i| [i as u8 + 1; 32]));
            p.routers.truncate(MAX_ROUTERS + 1);
            p.hop_limit = (MAX_ROUTERS + 1) as u8;
        }
        "tamper-hop" => {}
        "tamper-payload" => {}
        // Posing as a router that relays the victim's packet (the only
        // way past the previous-hop check): the signature must give it away.
        "forge-source" | "lockout" => {
            p.source = victim()?;
            p.routers = vec![a.id.node_id()];
            if kind == "lockout" {
                p.sequence = u64::MAX;
            }
        }
        "bad-class" => p.class = TrafficClass::Bitcoin,
        other => return Err(format!("unknown attack {other:?}")),
    }
    let pid = p.sign(&a.id);
    match kind {
        "tamper-hop" | "forge-source" | "lockout" => p.hop_index = 1,
        "tamper-payload" => p.payload[1] ^= 1,
        _ => {}
    }
    let bytes = LinkMsg::Data(Box::new(p.clone()), pid).encode();
    if kind.starts_with("valid") {
        a.last = Some((bytes.clone(), p));
    }
    let first = if kind == "forge-source" || kind == "lockout" { dest } else { first };
    Ok((first, bytes))
}
