//! Commons Mesh routing benchmark, one run, figures side by side: a line of
//! four hosts (network namespaces, tests/src/netbed.rs), each a real hostd
//! running the shipped commons-mesh module (open mode) and meshping; host
//! 4's meshping echoes. Host 1 sends probes to host 4 through the two
//! routers and back (6 mesh hops per round trip). Beside it: a raw TCP
//! echo between the same namespaces over plain IP forwarding through the
//! same two middle namespaces. For 1 KiB and 16 KiB payloads: round trips
//! and packets/s (one-way packets = 2 per round trip), MB/s, round trip
//! p50/p99 and machine CPU per packet (all processes, /proc/stat), with
//! 256 in flight and one at a time.
//! Targets: ≥ 5,000 packets/s of 1 KiB; added latency per hop ≤ 300 µs p50.
//!
//! Usage: mesh-route-bench [round trips per row = 20000]. Needs root.

use hostd_tests::meshnet::line_of_four;
use hostd_tests::netbed::NetBed;
use hostd_tests::rawecho::{self, Figures};
use hostd_tests::require_daemon;
use std::net::SocketAddr;
use std::time::Instant;

const RAW: &str = "169.254.3.2:9100";
/// Mesh hops in one round trip (three links each way).
const HOPS: u64 = 6;

fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip").args(args).output().expect("ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Plain IP forwarding through hosts 2 and 3, routes only between the
/// test's own /30s.
fn forwarding(bed: &NetBed) {
    for h in [1, 2] {
        bed.in_ns(h, || std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").expect("ip_forward in the namespace"));
    }
    let n = bed.names();
    for (h, net, via) in [
        (0, "169.254.2.0/30", "169.254.1.2"),
        (0, "169.254.3.0/30", "169.254.1.2"),
        (1, "169.254.3.0/30", "169.254.2.2"),
        (2, "169.254.1.0/30", "169.254.2.1"),
        (3, "169.254.1.0/30", "169.254.3.1"),
        (3, "169.254.2.0/30", "169.254.3.1"),
    ] {
        ip(&["-n", &n[h], "route", "add", net, "via", via]);
    }
}

/// Busy jiffies of the whole machine (user + nice + system + irq + softirq).
fn busy_jiffies() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu = stat.lines().next().unwrap_or_default();
    let v: Vec<u64> = cpu.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    [0usize, 1, 2, 5, 6].iter().filter_map(|i| v.get(*i)).sum()
}

/// Figures and machine CPU µs per one-way packet for `run`.
fn measured(run: impl FnOnce() -> Figures) -> (Figures, f64) {
    let hz = 100.0; // USER_HZ on Linux
    let before = busy_jiffies();
    let f = run();
    (f, (busy_jiffies() - before) as f64 / hz)
}

/// µs per BIP-340 signature and verification on this CPU, as the module
/// does them: the floor under every packet's cost.
fn crypto_costs() -> (f64, f64) {
    use commons_mesh::identity::{tagged_hash, verify, Identity};
    let id = Identity::generate().expect("identity");
    let d = tagged_hash("bench", &[b"digest"]);
    let n = 2000;
    let t = Instant::now();
    let mut sig = [0u8; 64];
    for _ in 0..n {
        sig = id.sign(&d);
    }
    let sign = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let t = Instant::now();
    for _ in 0..n {
        assert!(verify(&id.node_id(), &d, &sig));
    }
    (sign, t.elapsed().as_secs_f64() * 1e6 / n as f64)
}

fn parse(out: &str) -> Figures {
    let get = |k: &str| out.split_whitespace().find_map(|kv| kv.strip_prefix(k)?.parse::<f64>().ok()).unwrap_or_else(|| panic!("{k} in {out:?}"));
    Figures { fps: get("pps="), mbps: get("mbps="), p50_us: get("p50_us=") as u64, p99_us: get("p99_us=") as u64 }
}

fn main() {
    if !require_daemon("mesh route bench") {
        std::process::exit(1);
    }
    let count: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let raw_to: SocketAddr = RAW.parse().expect("address");
    // The free-traffic budget would cap a benchmark at 1 MiB/s per source.
    let mesh_extra = "free_bytes_per_sec = 100000000000\n";
    let (bed, hosts, ids) = line_of_four(&["open"; 4], mesh_extra, |h| if h == 3 { "echo = true".into() } else { String::new() }, |_, _| {});
    forwarding(&bed);
    rawecho::server(&bed, 3, raw_to);
    let mesh = |n: u64, size: usize, in_flight: u64| {
        let out = hosts[0].ctl(&["module", "meshping", "bench", &ids[3], &n.to_string(), &size.to_string(), &in_flight.to_string()]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            for (i, h) in hosts.iter().enumerate() {
                let s = hostd_tests::meshnet::mesh(h, &["status"]);
                eprintln!("host {}: dropped {} sent {} forwarded {} delivered {}; meshping {:?}", i + 1, s["dropped"], s["sent"], s["forwarded"], s["delivered"], hostd_tests::meshnet::report(h));
            }
            panic!("meshping bench {n} × {size} B, {in_flight} in flight: {}", String::from_utf8_lossy(&out.stderr));
        }
        parse(&text)
    };
    // Warm both paths.
    mesh(2000, 1024, 64);
    rawecho::client(&bed, 0, raw_to, 2000, 1024, 64);
    let (sign_us, verify_us) = crypto_costs();
    let rounds = 3;
    println!("Commons Mesh routing benchmark: line of 4 hosts (2 routers), open mode; {count} round trips per throughput row,");
    println!("{} per latency row, median of {rounds} rounds; a packet = one-way (2 per round trip); CPU = whole machine (2 cores)", count / 10);
    println!(
        "BIP-340 on this CPU: sign {sign_us:.0} µs, verify {verify_us:.0} µs; one packet = 1 signature + 3 verifications = {:.0} µs of crypto",
        sign_us + 3.0 * verify_us
    );
    println!();
    println!("{:<40} {:>9} {:>10} {:>8} {:>8} {:>8} {:>10}", "", "trips/s", "packets/s", "MB/s", "p50 µs", "p99 µs", "CPU µs/pkt");
    let started = Instant::now();
    for size in [1024usize, 16 << 10] {
        let median = |mut v: Vec<(Figures, f64)>| {
            v.sort_by(|x, y| x.0.fps.total_cmp(&y.0.fps));
            let mid = v[v.len() / 2];
            let mut p50: Vec<u64> = v.iter().map(|f| f.0.p50_us).collect();
            let mut p99: Vec<u64> = v.iter().map(|f| f.0.p99_us).collect();
            p50.sort_unstable();
            p99.sort_unstable();
            (Figures { p50_us: p50[p50.len() / 2], p99_us: p99[p99.len() / 2], ..mid.0 }, mid.1)
        };
        let (mut mt, mut rt, mut ml, mut rl) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            mt.push(measured(|| mesh(count, size, 256)));
            rt.push(measured(|| rawecho::client(&bed, 0, raw_to, count, size, 256)));
            ml.push(measured(|| mesh(count / 10, size, 1)));
            rl.push(measured(|| rawecho::client(&bed, 0, raw_to, count / 10, size, 1)));
        }
        let per_packet = |cpu_s: f64, n: u64| cpu_s * 1e6 / (2 * n) as f64;
        let row = |name: &str, (f, cpu): (Figures, f64), n: u64| {
            println!("{name:<40} {:>9.0} {:>10.0} {:>8.1} {:>8} {:>8} {:>10.1}", f.fps, 2.0 * f.fps, 2.0 * f.mbps, f.p50_us, f.p99_us, per_packet(cpu, n))
        };
        let (mt, rt, ml, rl) = (median(mt), median(rt), median(ml), median(rl));
        println!("-- {} KiB payloads", size / 1024);
        row("raw TCP + IP forwarding, 256 in flight", rt, count);
        row("Commons Mesh, 256 in flight", mt, count);
        row("raw TCP + IP forwarding, 1 in flight", rl, count / 10);
        row("Commons Mesh, 1 in flight", ml, count / 10);
        let per_hop = ml.0.p50_us.saturating_sub(rl.0.p50_us) / HOPS;
        let pps = 2.0 * mt.0.fps;
        println!(
            "   added latency per hop (p50, {HOPS} hops per round trip): {per_hop} µs (target ≤ 300: {}){}",
            if per_hop <= 300 { "met" } else { "NOT met" },
            if size == 1024 { format!("; {pps:.0} packets/s (target ≥ 5,000: {})", if pps >= 5000.0 { "met" } else { "NOT met" }) } else { String::new() }
        );
    }
    println!("\n(ran {:.0} s)", started.elapsed().as_secs_f64());
}
