//! Commons Mesh paid-routing benchmark, one run, figures side by side.
//! Two lines of four hosts (network namespaces, tests/src/netbed.rs):
//! host 1 runs the hostile-capable test node (meshattack) as the source,
//! hosts 2–4 run the shipped commons-mesh module and meshping. The source
//! prepares bursts of 1 KiB packets in advance — paid ones with a real
//! quote and stub payment each (pre-minted bundles), free ones of the
//! Bitcoin class — and fires each burst back to back through the two
//! routers; the figures are the destination's receive rate and the whole
//! machine's CPU per packet while the burst is in flight. Rows:
//! - open mode (every node carries everything, checks no payment): the
//!   part-1 baseline;
//! - payment-gated, free class: the same checks plus the mode's;
//! - payment-gated, paid: each of the three payees verifies its entry
//!   (BOLT11 decode, ECDSA key recovery and check, description hash,
//!   preimage), looks the payment hash up and stores it durably.
//!
//! Usage: mesh-paid-bench [packets per burst = 3000]. Needs root.

use hostd_tests::daemon_env::HostdEnv;
use hostd_tests::meshnet::{addr, count, mesh_host, node_id, paths_to, report, start, wait_for, T};
use hostd_tests::netbed::NetBed;
use hostd_tests::require_daemon;
use std::time::{Duration, Instant};

/// Busy jiffies of the whole machine (user + nice + system + irq + softirq).
fn busy_jiffies() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu = stat.lines().next().unwrap_or_default();
    let v: Vec<u64> = cpu.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    [0usize, 1, 2, 5, 6].iter().filter_map(|i| v.get(*i)).sum()
}

struct Line {
    _bed: NetBed,
    source: HostdEnv,
    hosts: Vec<HostdEnv>,
    ids: Vec<String>,
}

const FEE: u64 = 103;

fn line(mode: &str) -> Line {
    let bed = NetBed::new(4, &[(0, 1), (1, 2), (2, 3)]).expect("netbed");
    let extra = "free_bytes_per_sec = 100000000000\nhandler_queue = 1000000\nlink_queue_frames = 100000\nnetwork = \"regtest\"\npayment_backend = \"stub\"\nfee_base_sats = 100\n";
    let mut hosts: Vec<HostdEnv> = (1..4)
        .map(|h| {
            let peers = if h < 3 { vec![addr(&bed, h, h + 1)] } else { vec![] };
            mesh_host(&bed, h, mode, &peers, extra, "")
        })
        .collect();
    for h in &mut hosts {
        start(h);
    }
    let mut source = HostdEnv::new(
        "meshpaidbench",
        &format!("\n[mesh]\nconnect_allow = [\"169.254.0.0/17\"]\n\n[modules.meshattack]\ndial = [{:?}]\nfee_sats = {FEE}\n", addr(&bed, 0, 1)),
    );
    source.netns = Some(bed.ns_path(0));
    source.install("meshattack", &hostd_tests::bin_dir().join("hostd-meshattack"), &["network_access"], "");
    source.start();
    let ids: Vec<String> = hosts.iter().map(node_id).collect();
    wait_for("the source linked to the first router", T, || source.module_cli("meshattack", &["peers"]), |p| p.contains(&ids[0]));
    wait_for("the first router routes to the destination", T, || paths_to(&hosts[0], &ids[2]), |p| !p.is_empty());
    Line { _bed: bed, source, hosts, ids }
}

impl Line {
    /// Prepare `n` packets of `kind` (burst-free / burst-paid), fire them,
    /// and measure: (packets/s received, machine CPU µs per packet).
    fn burst(&self, kind: &str, n: u64) -> (f64, f64) {
        let routers = format!("{},{}", self.ids[0], self.ids[1]);
        let out = self.source.module_cli("meshattack", &["attack", kind, &self.ids[2], &routers, &n.to_string()]);
        assert!(out.starts_with(&format!("prepared {n}")), "{kind}: {out}");
        let before = count(&report(&self.hosts[2]), "received");
        let (jiffies, started) = (busy_jiffies(), Instant::now());
        let out = self.source.module_cli("meshattack", &["attack", "burst-fire", &self.ids[0]]);
        assert!(out.starts_with("fired"), "{out}");
        loop {
            let got = count(&report(&self.hosts[2]), "received") - before;
            if got >= n {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(120), "{kind}: {got} of {n} arrived; destination: {}", hostd_tests::meshnet::mesh(&self.hosts[2], &["status"]));
            std::thread::sleep(Duration::from_millis(20));
        }
        let secs = started.elapsed().as_secs_f64();
        let cpu_s = (busy_jiffies() - jiffies) as f64 / 100.0;
        (n as f64 / secs, cpu_s * 1e6 / n as f64)
    }
}

/// µs to check one payee's entry in process (decode, recover and check
/// the signer, description hash, preimage): the floor under a paid hop.
fn verify_cost() -> f64 {
    use commons_mesh::bolt11::Currency;
    use commons_mesh::identity::Identity;
    use commons_mesh::proof::{issue, verify_entry, Bundle, Claim, Entry, Expected, Role};
    let payee = Identity::generate().expect("identity");
    let (pid, me) = ([7u8; 32], payee.node_id());
    let now = commons_mesh::now_ms();
    let claim = Claim { packet_id: &pid, payee: &me, role: Role::Destination, share_sats: 63 };
    let (invoice, preimage) = issue(&payee.secret_key(), &claim, Currency::Regtest, now / 1000, 600).expect("invoice");
    let bundle = Bundle::Lightning(vec![Entry { invoice, preimage }]).encode();
    let e = Expected { packet_id: &pid, payee: &me, lightning_key: None, role: Role::Destination, share_sats: 63, created_ms: now, skew_ms: 30_000, currency: Currency::Regtest, max_expiry_secs: 3600 };
    let n = 2000;
    let t = Instant::now();
    for _ in 0..n {
        assert!(verify_entry(&bundle, 0, &e).is_ok());
    }
    t.elapsed().as_secs_f64() * 1e6 / n as f64
}

fn median(mut v: Vec<(f64, f64)>) -> (f64, f64) {
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v[v.len() / 2]
}

fn main() {
    if !require_daemon("mesh paid bench") {
        std::process::exit(1);
    }
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(3000);
    let rounds = 3;
    let started = Instant::now();
    let verify_us = verify_cost();
    let open = line("open");
    open.burst("burst-free", 500);
    let open_rows: Vec<_> = (0..rounds).map(|_| open.burst("burst-free", n)).collect();
    drop(open);
    let gated = line("payment_gated");
    gated.burst("burst-paid", 200);
    let (mut free, mut paid) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        free.push(gated.burst("burst-free", n));
        paid.push(gated.burst("burst-paid", n));
    }
    let l = |h: usize| hostd_tests::meshnet::mesh(&gated.hosts[h], &["status"])["payments"]["ledger"]["received_sats"].as_u64().unwrap_or(0);
    let received: Vec<u64> = (0..3).map(l).collect();
    let (o, f, p) = (median(open_rows), median(free), median(paid));
    println!("Commons Mesh paid-routing benchmark: line of 4 hosts (source, 2 routers, destination), 1 KiB packets,");
    println!("bursts of {n} prepared in advance (paid: a real quote + stub payment each), fired back to back; median of {rounds}");
    println!("rounds; CPU = whole machine (2 cores) while the burst is in flight. In process, one payee's check of its");
    println!("entry (BOLT11 decode + ECDSA key recovery + checks): {verify_us:.0} µs.");
    println!();
    println!("{:<44} {:>10} {:>11}", "", "packets/s", "CPU µs/pkt");
    println!("{:<44} {:>10.0} {:>11.0}", "open mode (part 1)", o.0, o.1);
    println!("{:<44} {:>10.0} {:>11.0}", "payment-gated, free class", f.0, f.1);
    println!("{:<44} {:>10.0} {:>11.0}", "payment-gated, paid (3 payees verify + store)", p.0, p.1);
    println!(
        "   paid vs open: {:.0}% of the rate, +{:.0} µs CPU per packet (+{:.0} µs per payee; in-process check alone {verify_us:.0} µs)",
        100.0 * p.0 / o.0,
        p.1 - o.1,
        (p.1 - o.1) / 3.0
    );
    println!("   ledgers after the run (sats received): router 1 {}, router 2 {}, destination {}", received[0], received[1], received[2]);
    println!("\n(ran {:.0} s)", started.elapsed().as_secs_f64());
}
