//! Mesh benchmark, one run, figures side by side: two hosts (network
//! namespaces joined by a veth pair, tests/src/netbed.rs), each a real
//! hostd with the `meshecho` module; host 2's echoes. For 1 KiB and 16 KiB
//! frames: frames/s and MB/s with 256 in flight, and round-trip p50/p99 one
//! at a time, module → hostd → TCP → hostd → module and back, beside a raw
//! TCP echo between the same two namespaces (same framing, std sockets)
//! and the bare IPC round trip (a request hostd answers itself).
//! Targets: round trip ≤ raw + 2 × IPC; 16 KiB throughput ≥ 50% of raw.
//!
//! Usage: mesh-bench [frames=20000]. Needs root.

use hostd_tests::daemon_env::{running, HostdEnv};
use hostd_tests::netbed::NetBed;
use hostd_tests::rawecho::{self, Figures};
use hostd_tests::{bin_dir, require_daemon};
use std::net::SocketAddr;
use std::time::Duration;

const RAW_PORT: u16 = 9100;


fn host(bed: &NetBed, h: usize, mode: &str) -> HostdEnv {
    let io_threads = std::env::var("MESH_IO_THREADS").unwrap_or_else(|_| "2".into());
    let toml = format!(
        "call_timeout_ms = 300000\n\n[mesh]\nio_threads = {io_threads}\nbind_allow = [\"0.0.0.0/32:9000\"]\nconnect_allow = [\"169.254.0.0/17\"]\n\n\
         [modules.meshecho]\nmode = \"{mode}\"\nmesh = {{ listen_addr = \"0.0.0.0:9000\" }}\n"
    );
    let mut env = HostdEnv::new(&format!("meshbench{h}"), &toml);
    env.netns = Some(bed.ns_path(h));
    env.install("meshecho", &bin_dir().join("meshecho"), &["network_access"], "");
    env.install_testmod("t-ipc", &["report_metrics"], "");
    env.start();
    env.wait_module("meshecho", "running", Duration::from_secs(30), running);
    env.wait_module("t-ipc", "running", Duration::from_secs(30), running);
    env
}

fn parse(out: &str) -> Figures {
    let get = |k: &str| out.split_whitespace().find_map(|kv| kv.strip_prefix(k)?.parse::<f64>().ok()).unwrap_or_else(|| panic!("{k} in {out:?}"));
    Figures { fps: get("fps="), mbps: get("mbps="), p50_us: get("p50_us=") as u64, p99_us: get("p99_us=") as u64 }
}

fn via_mesh(env: &HostdEnv, count: u64, size: usize, in_flight: u64) -> Figures {
    parse(&env.ctl_ok(&["module", "meshecho", "bench", "any", &count.to_string(), &size.to_string(), &in_flight.to_string()]))
}

fn raw(bed: &NetBed, count: u64, size: usize, in_flight: u64) -> Figures {
    let to: SocketAddr = format!("169.254.1.2:{RAW_PORT}").parse().expect("address");
    rawecho::client(bed, 0, to, count, size, in_flight)
}

fn ipc_rtt(env: &HostdEnv) -> (u64, u64) {
    let out = env.ctl_ok(&["module", "t-ipc", "rtt", "5000"]);
    let get = |k: &str| out.split_whitespace().find_map(|kv| kv.strip_prefix(k)?.parse().ok()).unwrap_or_else(|| panic!("{k} in {out}"));
    (get("p50_us="), get("p99_us="))
}

fn main() {
    if !require_daemon("mesh bench") {
        std::process::exit(1);
    }
    let frames: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let bed = NetBed::new(2, &[(0, 1)]).expect("netbed");
    let a = host(&bed, 0, "sink");
    let b = host(&bed, 1, "echo");
    rawecho::server(&bed, 1, format!("169.254.1.2:{RAW_PORT}").parse().expect("address"));
    let link = a.ctl_ok(&["module", "meshecho", "connect", &format!("{}:9000", NetBed::edge_addr(0, 2))]);
    assert!(link.starts_with("link "), "{link}");
    // Warm both paths.
    via_mesh(&a, 2000, 1024, 64);
    raw(&bed, 2000, 1024, 64);
    let ipc = ipc_rtt(&a);
    let rounds: u64 = 3;
    println!("mesh benchmark: {frames} frames per throughput row, {} round trips per latency row, median of {rounds} rounds", frames / 10);
    println!("IPC round trip (a request hostd answers itself): p50 {} µs, p99 {} µs", ipc.0, ipc.1);
    println!();
    println!("{:<34} {:>10} {:>9} {:>9} {:>9}", "", "frames/s", "MB/s", "p50 µs", "p99 µs");
    for size in [1024usize, 16 << 10] {
        let median = |mut v: Vec<Figures>| {
            v.sort_by(|x, y| x.fps.total_cmp(&y.fps));
            let mid = v[v.len() / 2];
            let mut p50: Vec<u64> = v.iter().map(|f| f.p50_us).collect();
            let mut p99: Vec<u64> = v.iter().map(|f| f.p99_us).collect();
            p50.sort_unstable();
            p99.sort_unstable();
            Figures { p50_us: p50[p50.len() / 2], p99_us: p99[p99.len() / 2], ..mid }
        };
        let (mut mt, mut rt, mut ml, mut rl) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            mt.push(via_mesh(&a, frames, size, 256));
            rt.push(raw(&bed, frames, size, 256));
            ml.push(via_mesh(&a, frames / 10, size, 1));
            rl.push(raw(&bed, frames / 10, size, 1));
        }
        let (mt, rt, ml, rl) = (median(mt), median(rt), median(ml), median(rl));
        let row = |name: &str, f: Figures| println!("{name:<34} {:>10.0} {:>9.1} {:>9} {:>9}", f.fps, f.mbps, f.p50_us, f.p99_us);
        println!("-- {} KiB frames", size / 1024);
        row("raw TCP, 256 in flight", rt);
        row("mesh via hostd, 256 in flight", mt);
        row("raw TCP, 1 in flight", rl);
        row("mesh via hostd, 1 in flight", ml);
        let budget = rl.p50_us + 2 * ipc.0;
        println!(
            "   round trip p50 {} µs vs target raw + 2 × IPC = {budget} µs: {}; throughput {:.0}% of raw{}",
            ml.p50_us,
            if ml.p50_us <= budget { "met" } else { "NOT met" },
            100.0 * mt.fps / rt.fps,
            if size == 16 << 10 { if mt.fps >= 0.5 * rt.fps { " (target ≥ 50%: met)" } else { " (target ≥ 50%: NOT met)" } } else { "" }
        );
    }
    drop((a, b));
}
