//! Example module `meshecho`: mesh links through hostd, built only on the
//! SDK. What arrives on a link is checked (`sink`, the default), sent back
//! (`echo`) or forwarded to every other link (`relay`). CLI:
//!
//! - `connect <ip:port> [keep]`: open a link (`keep`: reopen it when it drops);
//! - `mode <sink|echo|relay>`; `links`; `report`; `reset`;
//! - `send <link|any> <count> <size>`: numbered frames the far end can check;
//! - `bench <link|any> <count> <size> <in-flight>`: round trips against an
//!   echoing peer: frames/s, MB/s, p50/p99.

mod traffic;

use hostd_sdk::{CliArg, CliCommand, CliSpec, Client, ErrorBody, ErrorCode, Incoming, Invocation, MeshAck, SdkError};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Semaphore};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Sink,
    Echo,
    Relay,
}

/// Per link: what arrived, checked in order.
#[derive(Default)]
struct Received {
    next_seq: u64,
    ok: u64,
    bad: u64,
}

struct Bench {
    expected: u64,
    rtts_us: Vec<u64>,
    in_flight: Arc<Semaphore>,
    done: Option<oneshot::Sender<()>>,
}

#[derive(Default)]
struct State {
    links: BTreeMap<u64, String>,
    received: BTreeMap<u64, Received>,
    tx_seq: BTreeMap<u64, u64>,
    keep: BTreeSet<String>,
    frames: u64,
    bytes: u64,
    sent: u64,
    send_errors: u64,
    ups: u64,
    downs: u64,
    last_down: String,
    bench: Option<Bench>,
}

type Shared = Arc<Mutex<State>>;

fn st(s: &Shared) -> std::sync::MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("meshecho: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), SdkError> {
    let (client, mut incoming) = hostd_sdk::connect("meshecho", env!("CARGO_PKG_VERSION")).await?;
    client.register_cli_spec(cli_spec()).await?;
    let mut mode = match client.config()?.get("mode").and_then(|v| v.as_str()) {
        Some("echo") => Mode::Echo,
        Some("relay") => Mode::Relay,
        _ => Mode::Sink,
    };
    let state: Shared = Arc::default();
    let clock = Instant::now();
    // Answers to queued frames, counted in the order they were queued.
    let (acks_tx, mut acks_rx) = mpsc::unbounded_channel::<MeshAck>();
    tokio::spawn({
        let state = state.clone();
        async move {
            while let Some(ack) = acks_rx.recv().await {
                let ok = ack.wait().await.is_ok();
                let mut s = st(&state);
                if ok { s.sent += 1 } else { s.send_errors += 1 }
            }
        }
    });
    let sender = Sender { client: client.clone(), acks: acks_tx };
    while let Some(msg) = incoming.next().await {
        match msg {
            Incoming::Frame { link, data } => on_frame(&sender, &state, mode, link, data, clock).await,
            Incoming::LinkUp(info) => {
                let mut s = st(&state);
                s.ups += 1;
                s.links.insert(info.id, info.peer);
            }
            Incoming::LinkDown { link, reason } => {
                let peer = {
                    let mut s = st(&state);
                    s.downs += 1;
                    s.last_down = reason;
                    s.links.remove(&link)
                };
                if let Some(peer) = peer.filter(|p| st(&state).keep.contains(p)) {
                    tokio::spawn(reconnect(client.clone(), state.clone(), peer));
                }
            }
            Incoming::Invoke(call) => {
                let Invocation::Cli { command, args } = call.invocation.clone() else {
                    call.reply(Err(ErrorBody::new(ErrorCode::Unsupported, "CLI only")));
                    continue;
                };
                if command == "mode" {
                    let r = match args.first().map(String::as_str) {
                        Some("sink") => Ok(Mode::Sink),
                        Some("echo") => Ok(Mode::Echo),
                        Some("relay") => Ok(Mode::Relay),
                        other => Err(ErrorBody::new(ErrorCode::InvalidArgument, format!("mode {other:?}: sink, echo or relay"))),
                    };
                    call.reply(r.map(|m| {
                        mode = m;
                        format!("mode {m:?}\n").into_bytes()
                    }));
                    continue;
                }
                // Commands that wait (connect, bench) must not hold up the
                // frames this loop delivers.
                let (sender, state) = (sender.clone(), state.clone());
                tokio::spawn(async move {
                    let r = command_line(&sender, &state, &command, &args, clock).await;
                    call.reply(r.map(String::into_bytes).map_err(|m| ErrorBody::new(ErrorCode::InvalidArgument, m)));
                });
            }
            Incoming::Shutdown { .. } => break,
            _ => {}
        }
    }
    Ok(())
}

/// Queues frames in order and hands their answers to the counter.
#[derive(Clone)]
struct Sender {
    client: Client,
    acks: mpsc::UnboundedSender<MeshAck>,
}

impl Sender {
    async fn queue(&self, link: u64, data: Vec<u8>) -> bool {
        match self.client.mesh_queue(link, data).await {
            Ok(ack) => self.acks.send(ack).is_ok(),
            Err(_) => false,
        }
    }
}

async fn on_frame(sender: &Sender, state: &Shared, mode: Mode, link: u64, data: Vec<u8>, clock: Instant) {
    let others: Vec<u64> = {
        let mut s = st(state);
        s.frames += 1;
        s.bytes += data.len() as u64;
        match mode {
            Mode::Relay => s.links.keys().copied().filter(|l| *l != link).collect(),
            Mode::Echo => vec![link],
            Mode::Sink => {
                if let Some(age) = traffic::probe_age_us(&data, clock) {
                    if let Some(b) = s.bench.as_mut() {
                        b.rtts_us.push(age);
                        b.in_flight.add_permits(1);
                        if b.rtts_us.len() as u64 >= b.expected {
                            if let Some(done) = b.done.take() {
                                let _ = done.send(());
                            }
                        }
                    }
                } else {
                    let r = s.received.entry(link).or_default();
                    match traffic::check_data(&data) {
                        Some(seq) if seq == r.next_seq => {
                            r.ok += 1;
                            r.next_seq += 1;
                        }
                        // A gap, a repeat or a damaged frame: counted once,
                        // then checked on from there.
                        Some(seq) => {
                            r.bad += 1;
                            r.next_seq = seq + 1;
                        }
                        None => r.bad += 1,
                    }
                }
                Vec::new()
            }
        }
    };
    for to in others {
        if !sender.queue(to, data.clone()).await {
            st(state).send_errors += 1;
        }
    }
}

async fn reconnect(client: Client, state: Shared, peer: String) {
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if !st(&state).keep.contains(&peer) {
            return;
        }
        if client.mesh_connect(&peer).await.is_ok() {
            return;
        }
    }
}

fn pick_link(state: &Shared, arg: Option<&String>) -> Result<u64, String> {
    let s = st(state);
    match arg.map(String::as_str) {
        Some("any") | None => s.links.keys().next().copied().ok_or_else(|| "no link is up".to_string()),
        Some(n) => n.parse().map_err(|_| format!("link {n:?} is not a number or \"any\"")),
    }
}

fn num(args: &[String], i: usize, default: u64) -> Result<u64, String> {
    args.get(i).map_or(Ok(default), |a| a.parse().map_err(|_| format!("argument {} ({a:?}) is not a number", i + 1)))
}

async fn command_line(sender: &Sender, state: &Shared, command: &str, args: &[String], clock: Instant) -> Result<String, String> {
    match command {
        "connect" => {
            let addr = args.first().ok_or("connect <ip:port> [keep]")?;
            if args.get(1).is_some_and(|k| k == "keep") {
                st(state).keep.insert(addr.clone());
            }
            let info = sender.client.mesh_connect(addr).await.map_err(|e| format!("error {:?}: {e}", e.code()))?;
            Ok(format!("link {} to {}\n", info.id, info.peer))
        }
        "links" => {
            let links = sender.client.mesh_links().await.map_err(|e| format!("error {:?}: {e}", e.code()))?;
            Ok(links.iter().map(|l| format!("{} {} {}\n", l.id, l.peer, if l.inbound { "inbound" } else { "outbound" })).collect())
        }
        "report" => {
            let s = st(state);
            let ok: u64 = s.received.values().map(|r| r.ok).sum();
            let bad: u64 = s.received.values().map(|r| r.bad).sum();
            Ok(format!(
                "received={} ok={ok} bad={bad} bytes={} sent={} send_errors={} ups={} downs={} links={} last_down={}\n",
                s.frames, s.bytes, s.sent, s.send_errors, s.ups, s.downs, s.links.len(), s.last_down
            ))
        }
        "reset" => {
            let mut s = st(state);
            let keep = (std::mem::take(&mut s.links), std::mem::take(&mut s.keep));
            *s = State { links: keep.0, keep: keep.1, ..State::default() };
            Ok("reset\n".into())
        }
        "send" => {
            let link = pick_link(state, args.first())?;
            let (count, size) = (num(args, 1, 1000)?, num(args, 2, 1024)? as usize);
            let first = {
                let mut s = st(state);
                let seq = s.tx_seq.entry(link).or_default();
                let first = *seq;
                *seq += count;
                first
            };
            let sender = sender.clone();
            tokio::spawn(async move {
                for seq in first..first + count {
                    if !sender.queue(link, traffic::data(seq, size)).await {
                        break;
                    }
                }
            });
            Ok(format!("sending {count} frames of {size} bytes on link {link}\n"))
        }
        "bench" => bench(sender, state, pick_link(state, args.first())?, num(args, 1, 1000)?, num(args, 2, 1024)? as usize, num(args, 3, 1)?, clock).await,
        other => Err(format!("unknown command {other:?}")),
    }
}

/// `count` probes of `size` bytes with at most `in_flight` unanswered,
/// against a peer in echo mode.
async fn bench(sender: &Sender, state: &Shared, link: u64, count: u64, size: usize, in_flight: u64, clock: Instant) -> Result<String, String> {
    let (done_tx, done_rx) = oneshot::channel();
    let window = Arc::new(Semaphore::new(in_flight.clamp(1, 1 << 16) as usize));
    {
        let mut s = st(state);
        if s.bench.is_some() {
            return Err("a benchmark is already running".into());
        }
        s.bench = Some(Bench { expected: count, rtts_us: Vec::with_capacity(count as usize), in_flight: window.clone(), done: Some(done_tx) });
    }
    let started = Instant::now();
    for seq in 0..count {
        match window.acquire().await {
            Ok(p) => p.forget(),
            Err(_) => break,
        }
        if !sender.queue(link, traffic::probe(seq, size, clock)).await {
            break;
        }
    }
    let finished = tokio::time::timeout(Duration::from_secs(120), done_rx).await.is_ok();
    let secs = started.elapsed().as_secs_f64();
    let mut rtts = st(state).bench.take().map(|b| b.rtts_us).unwrap_or_default();
    if !finished {
        return Err(format!("only {} of {count} probes came back within 120 s", rtts.len()));
    }
    rtts.sort_unstable();
    let n = rtts.len() as f64;
    Ok(format!(
        "frames={} secs={secs:.3} fps={:.0} mbps={:.1} p50_us={} p99_us={}\n",
        rtts.len(),
        n / secs,
        n * size as f64 / secs / 1e6,
        traffic::quantile(&rtts, 0.50),
        traffic::quantile(&rtts, 0.99)
    ))
}

fn cli_spec() -> CliSpec {
    let arg = |name: &str, help: &str| CliArg { name: name.into(), help: help.into(), required: false };
    let cmd = |name: &str, about: &str, args: Vec<CliArg>| CliCommand { name: name.into(), about: about.into(), args };
    CliSpec {
        about: "Mesh links through hostd: echo, relay, verify, benchmark".into(),
        commands: vec![
            cmd("connect", "Open a link to ip:port (keep: reopen it when it drops)", vec![arg("addr", "ip:port"), arg("keep", "\"keep\" to reconnect")]),
            cmd("mode", "What to do with arriving frames", vec![arg("mode", "sink, echo or relay")]),
            cmd("links", "The module's links", vec![]),
            cmd("report", "Frames received (checked in order), sent, link ups and downs", vec![]),
            cmd("reset", "Zero the counters", vec![]),
            cmd("send", "Send numbered frames", vec![arg("link", "id or any"), arg("count", "frames"), arg("size", "bytes")]),
            cmd(
                "bench",
                "Round trips against an echoing peer",
                vec![arg("link", "id or any"), arg("count", "probes"), arg("size", "bytes"), arg("in_flight", "unanswered at most")],
            ),
        ],
    }
}
