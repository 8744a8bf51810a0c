//! The module side of `daemon-bench` and `fairness-bench`: a `bench`
//! module that measures request round trips and pipelined throughput from
//! inside its sandbox and publishes events, `sink` modules that count the
//! events they receive, and `flood` modules that send everything they can.
//! Every figure goes back to the bench as the JSON output of a CLI command.

use hostd_sdk::{CliCommand, CliSpec, Client, ErrorBody, ErrorCode, EventPayload, EventType, Incoming, IncomingStream, Invocation};
use std::time::Instant;

/// CLOCK_MONOTONIC in ns: comparable across processes on one machine,
/// unlike `Instant`, whose origin is private to the process.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

async fn register(client: &Client, commands: &[&str]) {
    let spec = CliSpec {
        about: "benchmark module".into(),
        commands: commands
            .iter()
            .map(|c| CliCommand {
                name: c.to_string(),
                about: String::new(),
                // hostd checks arguments against the spec: up to three, all optional.
                args: (1..=3).map(|i| hostd_sdk::CliArg { name: format!("arg{i}"), help: String::new(), required: false }).collect(),
            })
            .collect(),
    };
    if let Err(e) = client.register_cli_spec(spec).await {
        eprintln!("bench module: registering CLI commands: {e}");
        std::process::exit(3);
    }
}

fn arg(args: &[String], i: usize, default: u64) -> u64 {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

/// Run `total` requests from `window` concurrent tasks; returns (ok, failed).
async fn pipelined(client: &Client, total: u64, window: u64, publish: bool) -> (u64, u64) {
    let window = window.clamp(1, total.max(1));
    let mut tasks = Vec::new();
    for w in 0..window {
        let client = client.clone();
        let share = total / window + u64::from(w < total % window);
        tasks.push((share, tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, 0u64);
            for i in 0..share {
                let r = if publish {
                    client.publish_event(EventType::Custom, (w << 32 | i).to_le_bytes().to_vec()).await
                } else {
                    client.report_metric("bench", i as f64, &[]).await
                };
                if r.is_ok() {
                    ok += 1;
                } else {
                    failed += 1;
                }
            }
            (ok, failed)
        })));
    }
    let (mut ok, mut failed) = (0, 0);
    for (share, t) in tasks {
        // A task that panicked lost its whole share.
        let (o, f) = t.await.unwrap_or((0, share));
        ok += o;
        failed += f;
    }
    (ok, failed)
}

async fn bench_command(client: &Client, command: &str, args: &[String]) -> Result<String, String> {
    match command {
        // Sequential small requests: ReportMetric runs in a hub handler and
        // answers Ack, so this is the IPC path and nothing else.
        // `rtt <n> [pause_us]`: with a pause between requests, a module
        // that stays within its rate limit, as an honest one does.
        "rtt" => {
            let (n, pause) = (arg(args, 0, 1000), std::time::Duration::from_micros(arg(args, 1, 0)));
            let mut samples = Vec::with_capacity(n as usize);
            for i in 0..n {
                let t = Instant::now();
                client.report_metric("bench", i as f64, &[]).await.map_err(|e| e.to_string())?;
                samples.push(t.elapsed().as_nanos() as u64);
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
            Ok(serde_json::json!({ "samples_ns": samples }).to_string())
        }
        "pipeline" | "publish" => {
            let (n, window) = (arg(args, 0, 100_000), arg(args, 1, 256));
            let start_ns = monotonic_ns();
            let (ok, failed) = pipelined(client, n, window, command == "publish").await;
            let end_ns = monotonic_ns();
            Ok(serde_json::json!({ "ok": ok, "failed": failed, "start_ns": start_ns, "end_ns": end_ns }).to_string())
        }
        other => Err(format!("unknown command {other}")),
    }
}

/// The `bench` role: answers rtt / pipeline / publish.
pub async fn serve(client: Client, mut incoming: IncomingStream) {
    register(&client, &["rtt", "pipeline", "publish"]).await;
    while let Some(msg) = incoming.next().await {
        match msg {
            Incoming::Invoke(call) => {
                let result = match &call.invocation {
                    Invocation::Cli { command, args } => bench_command(&client, command, args).await,
                    _ => Err("not a CLI invocation".to_string()),
                };
                call.reply(result.map(String::into_bytes).map_err(|m| ErrorBody::new(ErrorCode::InvalidArgument, m)));
            }
            Incoming::Shutdown { .. } => break,
            _ => {}
        }
    }
}

/// The `sink` role: counts Custom events; `received` reports and resets.
pub async fn sink(client: Client, mut incoming: IncomingStream) {
    register(&client, &["received"]).await;
    if let Err(e) = client.subscribe_events(vec![EventType::Custom]).await {
        eprintln!("sink: subscribe: {e}");
        std::process::exit(3);
    }
    let (mut count, mut first_ns, mut last_ns) = (0u64, 0u64, 0u64);
    while let Some(msg) = incoming.next().await {
        match msg {
            Incoming::Event(ev) => {
                if matches!(ev.payload, EventPayload::Data(_)) {
                    last_ns = monotonic_ns();
                    if count == 0 {
                        first_ns = last_ns;
                    }
                    count += 1;
                }
            }
            Incoming::Invoke(call) => {
                let out = serde_json::json!({
                    "count": count, "first_ns": first_ns, "last_ns": last_ns, "sdk_dropped": client.dropped_events(),
                });
                (count, first_ns, last_ns) = (0, 0, 0);
                call.reply(Ok(out.to_string().into_bytes()));
            }
            Incoming::Shutdown { .. } => break,
            _ => {}
        }
    }
}

/// A flood never outlives this, whether or not it is stopped.
const FLOOD_MAX: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Default)]
struct FloodCounts {
    stop: std::sync::atomic::AtomicBool,
    requests: std::sync::atomic::AtomicU64,
    events: std::sync::atomic::AtomicU64,
    calls: std::sync::atomic::AtomicU64,
    logs: std::sync::atomic::AtomicU64,
    errors: std::sync::atomic::AtomicU64,
}

/// Loops that send one kind of frame as fast as the host takes them,
/// until stopped (or [`FLOOD_MAX`]).
fn spawn_flood(client: &Client, counts: &std::sync::Arc<FloodCounts>, target: &str) {
    use std::sync::atomic::Ordering::Relaxed;
    let deadline = Instant::now() + FLOOD_MAX;
    // (kind, concurrent loops): requests, published events, calls, logs.
    for (kind, loops) in [(0u8, 64), (1, 16), (2, 8), (3, 1)] {
        for _ in 0..loops {
            let (client, counts, target) = (client.clone(), counts.clone(), target.to_string());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !counts.stop.load(Relaxed) && Instant::now() < deadline {
                    i += 1;
                    let (ok, counter) = match kind {
                        0 => (client.report_metric("flood", i as f64, &[]).await.is_ok(), &counts.requests),
                        1 => (client.publish_event(EventType::Custom, i.to_le_bytes().to_vec()).await.is_ok(), &counts.events),
                        2 => (client.call_module(&target, "ping", vec![]).await.is_ok(), &counts.calls),
                        _ => {
                            // Fire and forget: as fast as the queue to
                            // hostd has room, pausing when it has none.
                            let dropped = client.dropped_logs();
                            client.info("flood: a log line nobody asked for");
                            if client.dropped_logs() > dropped {
                                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                                continue;
                            }
                            tokio::task::yield_now().await;
                            (true, &counts.logs)
                        }
                    };
                    counter.fetch_add(1, Relaxed);
                    if !ok {
                        counts.errors.fetch_add(1, Relaxed);
                    }
                }
            });
        }
    }
}

/// The `flood` role: `flood <target>` starts flooding and returns; `stop`
/// stops and reports what was sent; it answers `ping` calls and counts
/// Custom events, so it can also be the flood's target.
pub async fn flood(client: Client, mut incoming: IncomingStream) {
    use std::sync::atomic::Ordering::Relaxed;
    register(&client, &["flood", "stop"]).await;
    if let Err(e) = client.register_module_api(&["ping"]).await {
        eprintln!("flood: register api: {e}");
        std::process::exit(3);
    }
    let _ = client.subscribe_events(vec![EventType::Custom]).await;
    let mut counts = std::sync::Arc::new(FloodCounts::default());
    let mut started = Instant::now();
    while let Some(msg) = incoming.next().await {
        match msg {
            Incoming::Invoke(call) => {
                let reply = match &call.invocation {
                    Invocation::Cli { command, args } if command == "flood" => {
                        counts = std::sync::Arc::new(FloodCounts::default());
                        started = Instant::now();
                        spawn_flood(&client, &counts, args.first().map_or("", String::as_str));
                        Ok(r#"{"flooding": true}"#.to_string())
                    }
                    Invocation::Cli { command, .. } if command == "stop" => {
                        counts.stop.store(true, Relaxed);
                        let secs = started.elapsed().as_secs_f64();
                        Ok(serde_json::json!({
                            "secs": secs,
                            "requests": counts.requests.load(Relaxed),
                            "events": counts.events.load(Relaxed),
                            "calls": counts.calls.load(Relaxed),
                            "logs": counts.logs.load(Relaxed),
                            "errors": counts.errors.load(Relaxed),
                        })
                        .to_string())
                    }
                    Invocation::Api { .. } => Ok("pong".to_string()),
                    _ => Err("unknown command".to_string()),
                };
                call.reply(reply.map(String::into_bytes).map_err(|m| ErrorBody::new(ErrorCode::InvalidArgument, m)));
            }
            Incoming::Shutdown { .. } => break,
            _ => {}
        }
    }
}
