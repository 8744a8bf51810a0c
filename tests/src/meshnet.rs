//! Commons Mesh hosts for tests and benchmarks: a hostd per network
//! namespace of a [`NetBed`], each running the shipped `commons-mesh`
//! module (its own manifest) and the `meshping` example as its driver.

use crate::daemon_env::{running, HostdEnv};
use crate::netbed::NetBed;
use std::path::Path;
use std::time::{Duration, Instant};

pub const PORT: u16 = 9000;
pub const T: Duration = Duration::from_secs(30);

/// The address host `to` listens on across edge `e`.
pub fn addr(bed: &NetBed, e: usize, to: usize) -> String {
    let side = if bed.edges[e].0 == to { 1 } else { 2 };
    format!("{}:{PORT}", NetBed::edge_addr(e, side))
}

/// Short timers so tests run in seconds (the seed defaults stay the defaults).
pub const FAST: &str = "advert_interval_ms = 500\nroute_expiry_ms = 5000\nkeepalive_ms = 1000\nkeepalive_misses = 10\n\
                        discovery_timeout_ms = 5000\ndiscovery_collect_ms = 100\n";

/// hostd for host `h`: commons-mesh in `mode` dialing `peers`, with
/// `mesh_extra` in its `[mesh]`, and meshping (`ping_extra` in its config).
pub fn mesh_host(bed: &NetBed, h: usize, mode: &str, peers: &[String], mesh_extra: &str, ping_extra: &str) -> HostdEnv {
    let peers: Vec<String> = peers.iter().map(|p| format!("{p:?}")).collect();
    let toml = format!(
        "call_timeout_ms = 30000\n\n[mesh]\nbind_allow = [\"0.0.0.0/32:{PORT}\"]\nconnect_allow = [\"169.254.0.0/17\"]\n\n\
         [modules.commons-mesh.mesh]\nlisten_addr = \"0.0.0.0:{PORT}\"\nmode = \"{mode}\"\npeers = [{}]\n{FAST}{mesh_extra}\n\n\
         [modules.meshping]\n{ping_extra}\n",
        peers.join(", ")
    );
    let mut env = HostdEnv::new(&format!("meshmod{h}"), &toml);
    env.netns = Some(bed.ns_path(h));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    env.install_shipped("commons-mesh", &crate::bin_dir().join("commons-mesh"), &root.join("modules/mesh"));
    env.install_shipped("meshping", &crate::bin_dir().join("meshping"), &root.join("modules/examples/meshping"));
    env
}

/// Start hostd and wait until both modules run and meshping's protocol
/// (`ping-v1`) has a handler: meshping registers it after its handshake.
pub fn start(env: &mut HostdEnv) {
    env.start();
    env.wait_module("commons-mesh", "running", T, running);
    env.wait_module("meshping", "running", T, running);
    let deadline = Instant::now() + T;
    while !mesh(env, &["status"])["handlers"]["ping-v1"].is_object() {
        if Instant::now() > deadline {
            let log = env.log();
            panic!("ping-v1 has no handler within {T:?}; hostd log (last 4 KiB):\n{}", &log[log.len().saturating_sub(4096)..]);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `hostd module meshping <args>`.
pub fn ping(env: &HostdEnv, args: &[&str]) -> String {
    env.module_cli("meshping", args)
}

/// A meshping-like module's `report` as key → value.
pub fn report_of(env: &HostdEnv, module: &str) -> std::collections::BTreeMap<String, String> {
    env.module_cli(module, &["report"]).split_whitespace().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// meshping's `report` as key → value.
pub fn report(env: &HostdEnv) -> std::collections::BTreeMap<String, String> {
    report_of(env, "meshping")
}

pub fn count(r: &std::collections::BTreeMap<String, String>, k: &str) -> u64 {
    r.get(k).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// `hostd module commons-mesh <args>` (JSON).
pub fn mesh(env: &HostdEnv, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["module", "commons-mesh"];
    all.extend_from_slice(args);
    let out = env.ctl(&all);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| serde_json::json!({ "error": crate::output_text(&out) }))
}

pub fn node_id(env: &HostdEnv) -> String {
    let (id, _) = wait_for("the mesh node id", T, || mesh(env, &["status"])["node_id"].as_str().map(str::to_string), Option::is_some);
    id.unwrap_or_default()
}

/// Poll until `pred` holds; panics with the last value after `timeout`.
pub fn wait_for<V: std::fmt::Debug>(what: &str, timeout: Duration, mut get: impl FnMut() -> V, pred: impl Fn(&V) -> bool) -> (V, Duration) {
    let start = Instant::now();
    loop {
        let v = get();
        if pred(&v) {
            return (v, start.elapsed());
        }
        assert!(start.elapsed() < timeout, "{what} not reached within {timeout:?}: {v:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The routers of `env`'s paths to `dest`, best first.
pub fn paths_to(env: &HostdEnv, dest: &str) -> Vec<Vec<String>> {
    let routes = mesh(env, &["routes"]);
    routes
        .as_array()
        .and_then(|a| a.iter().find(|r| r["destination"] == dest))
        .and_then(|r| r["paths"].as_array())
        .map(|ps| ps.iter().map(|p| p["routers"].as_array().map(|rs| rs.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default()).collect())
        .unwrap_or_default()
}

/// A line 0 — 1 — … — n-1 (host h dials h + 1): host `h` in `modes[h]`
/// with `mesh_extra` in its mesh config, `ping_extra(h)` in meshping's,
/// and `before_start(h, env)` run on its installation; all up, and the
/// ends routing to each other through every host between.
pub fn line_of(
    modes: &[&str],
    mesh_extra: &str,
    ping_extra: impl Fn(usize) -> String,
    before_start: impl Fn(usize, &HostdEnv),
) -> (NetBed, Vec<HostdEnv>, Vec<String>) {
    let n = modes.len();
    let edges: Vec<(usize, usize)> = (0..n - 1).map(|h| (h, h + 1)).collect();
    let bed = NetBed::new(n, &edges).expect("netbed");
    let mut hosts: Vec<_> = (0..n)
        .map(|h| {
            let peers = if h + 1 < n { vec![addr(&bed, h, h + 1)] } else { vec![] };
            let env = mesh_host(&bed, h, modes[h], &peers, mesh_extra, &ping_extra(h));
            before_start(h, &env);
            env
        })
        .collect();
    for h in &mut hosts {
        start(h);
    }
    let ids: Vec<String> = hosts.iter().map(node_id).collect();
    let (first, last) = (0, n - 1);
    let inner: Vec<String> = ids[1..last].to_vec();
    let back: Vec<String> = inner.iter().rev().cloned().collect();
    wait_for(&format!("host {first} routes to host {last} through the line"), T, || paths_to(&hosts[first], &ids[last]), |p| p.first() == Some(&inner));
    wait_for(&format!("host {last} routes to host {first} through the line"), T, || paths_to(&hosts[last], &ids[first]), |p| p.first() == Some(&back));
    (bed, hosts, ids)
}

/// `line_of` with four hosts.
pub fn line_of_four(
    modes: &[&str; 4],
    mesh_extra: &str,
    ping_extra: impl Fn(usize) -> String,
    before_start: impl Fn(usize, &HostdEnv),
) -> (NetBed, Vec<HostdEnv>, Vec<String>) {
    line_of(modes, mesh_extra, ping_extra, before_start)
}
