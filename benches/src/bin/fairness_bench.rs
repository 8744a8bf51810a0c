//! Fairness benchmark, one run, figures side by side: a bystander module's
//! request round trip (ReportMetric through a hub handler, sequential)
//! while idle, then while 1, 5 and 20 other modules flood hostd with
//! everything they can send at once — pipelined requests, published
//! events, calls to another module and log records — under hostd's
//! default limits. Target: the bystander's p99 ≤ 2 × its idle p99 in every
//! case. Rounds interleave the cases, idle included, so the machine's drift
//! reaches every case alike.
//!
//! Usage: fairness-bench [rounds=5] [samples=5000] [extra [daemon] TOML].
//! Needs root (real sandboxes).

#[path = "../harness.rs"]
mod harness;

use harness::{percentile, start, us, Bench};
use hostd::daemon::control::{request, ControlRequest};
use hostd_tests::daemon_env::HostdEnv;
use std::time::{Duration, Instant};

const FLOODERS: [usize; 3] = [1, 5, 20];
/// How long the flooders' throttling must stand still after a flood stops.
const SETTLE: Duration = Duration::from_millis(500);
/// The bystander's pause between requests: an honest module, well inside
/// the default rate limit (2,000 frames/s), not a flood of its own.
const PACE_US: u64 = 1000;
/// Round trips per CLI call into the bystander.
const RTT_CHUNK: usize = 1000;
/// Time the floods get to reach full speed before the bystander measures.
const RAMP: Duration = Duration::from_millis(300);

/// One case, accumulated over rounds.
#[derive(Default)]
struct Case {
    rtt: Vec<u64>,
    /// Each round's p99: their median is the case's p99, so one noisy
    /// stretch of this VM does not decide it.
    round_p99: Vec<u64>,
    /// Frames the flooders sent, summed: requests, events, calls, logs.
    sent: [f64; 4],
    flood_secs: f64,
    hostd_cpu_secs: f64,
    secs: f64,
    throttled_ms: u64,
    rss_kib: u64,
}

/// hostd's user+system CPU time so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command: utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

fn throttled_ms(b: &Bench, prefix: &str) -> u64 {
    let st = request(&b.socket, &ControlRequest::Status).map(|r| r.data).unwrap_or_default();
    st["modules"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|m| m["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
                .filter_map(|m| m["throttled_ms"].as_u64())
                .sum()
        })
        .unwrap_or(0)
}

/// Measure one case once and add it to `case`.
fn measure(b: &Bench, samples: usize, flooders: usize, case: &mut Case) {
    let pid = b.env.pid().expect("hostd running");
    for i in 0..flooders {
        b.cli(&format!("x{i}-flood"), "flood", &["t-flood".into()]);
    }
    std::thread::sleep(if flooders > 0 { RAMP } else { Duration::ZERO });
    let (t0, cpu0, thr0) = (Instant::now(), cpu_ticks(pid), throttled_ms(b, "x"));
    // In chunks, each well inside the CLI call timeout.
    let mut taken = 0;
    while taken < samples {
        let v = b.cli("by-bench", "rtt", &[(samples - taken).min(RTT_CHUNK).to_string(), PACE_US.to_string()]);
        let got: Vec<u64> = v["samples_ns"].as_array().map(|a| a.iter().filter_map(|x| x.as_u64()).collect()).unwrap_or_default();
        taken += got.len().max(1);
        case.rtt.extend(got);
    }
    let (secs, cpu1, thr1) = (t0.elapsed().as_secs_f64(), cpu_ticks(pid), throttled_ms(b, "x"));
    let mut this_round: Vec<u64> = case.rtt[case.rtt.len().saturating_sub(taken)..].to_vec();
    this_round.sort_unstable();
    case.round_p99.push(percentile(&this_round, 0.99));
    case.rss_kib = case.rss_kib.max(b.rss_kib().0);
    for i in 0..flooders {
        let c = b.cli(&format!("x{i}-flood"), "stop", &[]);
        for (k, key) in ["requests", "events", "calls", "logs"].iter().enumerate() {
            case.sent[k] += c[key].as_f64().unwrap_or(0.0);
        }
        case.flood_secs += c["secs"].as_f64().unwrap_or(0.0) / flooders as f64;
    }
    // Stopped flooders still have frames queued in their sockets, which
    // hostd reads at their rate: the next case starts once none of them is
    // being throttled any more (their queues are drained), or after 60 s.
    if flooders > 0 {
        let until = Instant::now() + Duration::from_secs(60);
        let mut last = throttled_ms(b, "x");
        loop {
            std::thread::sleep(SETTLE);
            let now = throttled_ms(b, "x");
            if now == last || Instant::now() > until {
                break;
            }
            last = now;
        }
    }
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    case.hostd_cpu_secs += (cpu1 - cpu0) as f64 / hz;
    case.secs += secs;
    case.throttled_ms += thr1 - thr0;
}

fn main() {
    let arg = |i: usize| std::env::args().nth(i);
    let rounds: usize = arg(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let samples: usize = arg(2).and_then(|a| a.parse().ok()).unwrap_or(5_000);
    // Extra `[daemon]` settings (TOML), to compare against the defaults.
    let daemon_toml = arg(3).unwrap_or_default();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("fairness-bench runs real sandboxes: run it as root");
        std::process::exit(2);
    }
    let benchmod = hostd_tests::bin_dir().join("hostd-benchmod");
    // hostd's defaults throughout: the limits under test are the shipped ones.
    let env = HostdEnv::new("fairness", &daemon_toml);
    env.install("by-bench", &benchmod, &["report_metrics"], "");
    let flood_caps = ["report_metrics", "publish_events", "subscribe_events", "call_module", "register_module_api"];
    env.install("t-flood", &benchmod, &flood_caps, "");
    let most = FLOODERS.iter().copied().max().unwrap_or(0);
    for i in 0..most {
        env.install(&format!("x{i}-flood"), &benchmod, &flood_caps, "");
    }
    let (b, _) = start(env);
    let deadline = Instant::now() + Duration::from_secs(120);
    while b.handshaken() < most + 2 {
        assert!(Instant::now() < deadline, "not all modules handshook:\n{}", b.env.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every module has registered its commands once its CLI answers.
    b.cli("by-bench", "rtt", &["1000".into(), PACE_US.to_string()]);
    for i in 0..most {
        b.cli(&format!("x{i}-flood"), "stop", &[]);
    }

    // Rounds interleave the cases, so drift on this machine hits them all.
    let labels: Vec<String> = std::iter::once("idle".to_string()).chain(FLOODERS.iter().map(|n| format!("{n} flooding"))).collect();
    let mut cases: Vec<Case> = labels.iter().map(|_| Case::default()).collect();
    for _ in 0..rounds {
        measure(&b, samples, 0, &mut cases[0]);
        for (k, n) in FLOODERS.iter().enumerate() {
            measure(&b, samples, *n, &mut cases[k + 1]);
        }
    }
    for c in &mut cases {
        c.rtt.sort_unstable();
        c.round_p99.sort_unstable();
    }
    let p99 = |c: &Case| percentile(&c.round_p99, 0.5);
    let idle99 = p99(&cases[0]).max(1) as f64;
    let build = if cfg!(debug_assertions) { "DEBUG build: figures are not representative" } else { "release build" };
    println!("fairness: bystander round trip (ReportMetric, sequential), {rounds} rounds × {samples} samples per case, {build}");
    println!("p50 over all samples of a case; p99 = the median of its rounds' p99s; the bystander pauses {PACE_US} µs between requests");
    println!("each flooder: 64 request loops, 16 publish loops, 8 call loops (to another module), 1 log loop");
    if !daemon_toml.trim().is_empty() {
        println!("config beyond the defaults: {}", daemon_toml.trim().replace('\n', "; "));
    }
    println!();
    println!(
        "  {:<12} {:>10} {:>10} {:>9}  {:>9} {:>9} {:>8} {:>9}  {:>9} {:>10} {:>9}",
        "case", "p50", "p99", "p99/idle", "req/s", "events/s", "calls/s", "logs/s", "hostd CPU", "throttled", "hostd RSS"
    );
    for (label, c) in labels.iter().zip(&cases) {
        let rate = |k: usize| if c.flood_secs > 0.0 { c.sent[k] / c.flood_secs } else { 0.0 };
        println!(
            "  {:<12} {:>10} {:>10} {:>9.2}  {:>9.0} {:>9.0} {:>8.0} {:>9.0}  {:>8.0}% {:>7} ms {:>5} MiB",
            label,
            us(percentile(&c.rtt, 0.5)),
            us(p99(c)),
            p99(c) as f64 / idle99,
            rate(0),
            rate(1),
            rate(2),
            rate(3),
            c.hostd_cpu_secs / c.secs.max(1e-9) * 100.0,
            c.throttled_ms,
            c.rss_kib / 1024
        );
    }
    let worst = cases[1..].iter().map(|c| p99(c) as f64 / idle99).fold(0.0, f64::max);
    println!();
    println!("worst p99 / idle p99: {worst:.2} (target ≤ 2.00)");
}
