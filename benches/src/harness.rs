//! What the daemon benchmarks share: a running hostd with its control
//! socket, CLI calls into bench modules, memory readings, percentiles.

use hostd::daemon::control::{request, ControlRequest};
use hostd_tests::daemon_env::HostdEnv;
use hostd_tests::rss_kib;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn us(ns: u64) -> String {
    format!("{:.1} µs", ns as f64 / 1000.0)
}

pub struct Bench {
    pub env: HostdEnv,
    pub socket: PathBuf,
}

impl Bench {
    pub fn cli(&self, module: &str, command: &str, args: &[String]) -> serde_json::Value {
        let req = ControlRequest::RunCli { module: module.into(), command: command.into(), args: args.to_vec() };
        let resp = request(&self.socket, &req).unwrap_or_else(|e| panic!("{module} {command}: {e}"));
        assert!(resp.ok, "{module} {command}: {:?}\n--- hostd log ---\n{}", resp.error, self.env.log());
        let out = resp.data["output"].as_str().unwrap_or_default();
        serde_json::from_str(out).unwrap_or_else(|e| panic!("{module} {command}: output {out:?}: {e}"))
    }

    pub fn handshaken(&self) -> usize {
        match request(&self.socket, &ControlRequest::Status) {
            Ok(r) => r.data["modules"].as_array().map(|a| a.iter().filter(|m| m["handshaken"] == true).count()).unwrap_or(0),
            Err(_) => 0,
        }
    }

    /// hostd's RSS plus its launcher's, in KiB.
    pub fn rss_kib(&self) -> (u64, u64) {
        let pid = self.env.pid().expect("hostd running");
        let launcher = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .ok()
            .and_then(|c| c.split_whitespace().next().and_then(|p| p.parse::<u32>().ok()));
        (rss_kib(pid), launcher.map(rss_kib).unwrap_or(0))
    }
}

pub fn start(mut env: HostdEnv) -> (Bench, Duration) {
    let t = Instant::now();
    env.start();
    let elapsed = t.elapsed();
    let socket = env.scratch.0.join("run").join("control.sock");
    (Bench { env, socket }, elapsed)
}

