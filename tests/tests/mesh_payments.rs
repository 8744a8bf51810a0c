//! Commons Mesh payments across real hosts (a hostd per network namespace,
//! veth pairs, link-local addresses): paid delivery with the stub backend
//! and its ledgers and events, forged proofs refused by the payee whose
//! entry they break, replays refused from the persisted store after a
//! restart, and every sat accounted for over 300 packets.

use commons_mesh::identity::Identity;
use commons_mesh::mesh_api::{hex, parse_node_id};
use commons_mesh::proof::shares;
use hostd_tests::daemon_env::HostdEnv;
use hostd_tests::meshnet::*;
use hostd_tests::netbed::NetBed;
use hostd_tests::require_daemon;

/// Every host: regtest, the stub backend, fees base 100 + 1 per router +
/// 1 per KiB, and meshping may spend `budget` sats.
fn paid(budget: u64) -> String {
    format!("network = \"regtest\"\npayment_backend = \"stub\"\nfee_base_sats = 100\npay_budgets = {{ meshping = {budget} }}\n")
}

/// The fee of a paid packet of `len` bytes over `routers` routers.
fn fee(routers: usize, len: usize) -> u64 {
    100 + routers as u64 + len.div_ceil(1024) as u64
}

fn ledger(env: &HostdEnv) -> serde_json::Value {
    mesh(env, &["status"])["payments"]["ledger"].clone()
}

fn sats(env: &HostdEnv, k: &str) -> u64 {
    ledger(env)[k].as_u64().unwrap_or(0)
}

/// Five paid packets over two routers: each payee's ledger holds exactly
/// its share, the source's what it paid and the treasury's due, and each
/// payee published PaymentVerified (publisher commons-mesh) with its role
/// and share. Past its budget the calling module is answered "payment
/// required" and nothing is paid.
#[test]
fn paid_packets_pay_each_payee_its_share_and_budgets_hold() {
    if !require_daemon("mesh paid delivery") {
        return;
    }
    let (_bed, hosts, ids) = line_of_four(&["payment_gated"; 4], &paid(600), |_| String::new(), |_, _| {});
    let out = ping(&hosts[0], &["send", &ids[3], "5", "1024"]);
    assert!(out.starts_with("sending"), "{out}");
    wait_for("5 paid packets at host 3", T, || count(&report(&hosts[3]), "received"), |n| *n >= 5);
    let routers: Vec<_> = ids[1..3].iter().map(|i| parse_node_id(i).expect("id")).collect();
    let split = shares(fee(2, 1024), &routers);
    assert_eq!((split.treasury, split.routers.clone(), split.destination), (10, vec![15, 15], 63), "F = 103");
    wait_for("host 3's ledger", T, || sats(&hosts[3], "received_sats"), |s| *s == 5 * 63);
    let l0 = ledger(&hosts[0]);
    assert_eq!((l0["paid_sats"].as_u64(), l0["treasury_due_sats"].as_u64(), l0["packets_paid"].as_u64()), (Some(5 * 93), Some(5 * 10), Some(5)), "{l0:#}");
    for h in [1, 2] {
        assert_eq!(sats(&hosts[h], "received_sats"), 5 * 15, "router {h}: {:#}", ledger(&hosts[h]));
    }
    assert_eq!(sats(&hosts[3], "packets_verified"), 5);
    for (h, role, share) in [(1, "router", 15), (2, "router", 15), (3, "destination", 63)] {
        let (events, _) = wait_for(&format!("PaymentVerified at host {h}"), T, || ping(&hosts[h], &["events"]), |e| e.matches("PaymentVerified").count() == 5);
        for line in events.lines().filter(|l| l.starts_with("PaymentVerified")) {
            assert!(line.starts_with(&format!("PaymentVerified publisher=commons-mesh role={role} sats={share} ")), "host {h}: {line}");
        }
    }
    // The budget: 600 − 5 × 103 = 85 sats left, less than one packet.
    let out = ping(&hosts[0], &["send-hex", &ids[3], &hex(b"\x00one more"), "confirm"]);
    assert!(out.contains("PaymentRequired { fee_sats: 103 }") && out.contains("error=payment_required:_103_sats_(module_meshping_has_85_of_its_600_sats_left"), "{out}");
    let b = &mesh(&hosts[0], &["status"])["payments"]["budgets"]["meshping"];
    assert_eq!((b["spent_sats"].as_u64(), b["budget_sats"].as_u64()), (Some(515), Some(600)), "{b:#}");
    assert_eq!(sats(&hosts[0], "paid_sats"), 5 * 93, "nothing paid past the budget");
}

/// The test's stand-in for the destination's own Lightning node key.
const LN_SECRET: [u8; 32] = [0x42; 32];

/// attacker (0) — router 1 — router 2 — destination 3, all honest nodes
/// payment-gated with the stub backend; the destination binds LN_SECRET's
/// key in its record, and the attacker holds it.
struct PaidBed {
    _bed: NetBed,
    attacker: HostdEnv,
    hosts: Vec<HostdEnv>,
    ids: Vec<String>,
}

fn paid_attack_bed() -> PaidBed {
    paid_attack_bed_with("")
}

/// `paid_attack_bed` with `router_extra` in the first router's mesh config.
fn paid_attack_bed_with(router_extra: &str) -> PaidBed {
    let bed = NetBed::new(4, &[(0, 1), (1, 2), (2, 3)]).expect("netbed");
    let ln_pub = hex(&Identity::from_secret(LN_SECRET).expect("key").public_key());
    let mut attacker = HostdEnv::new(
        "meshpaidattack",
        &format!(
            "\n[mesh]\nconnect_allow = [\"169.254.0.0/17\"]\n\n[modules.meshattack]\ndial = [{:?}]\nfee_sats = {}\nln_secret = {:?}\n",
            addr(&bed, 0, 1),
            fee(2, 100),
            hex(&LN_SECRET)
        ),
    );
    attacker.netns = Some(bed.ns_path(0));
    attacker.install("meshattack", &hostd_tests::bin_dir().join("hostd-meshattack"), &["network_access"], "");
    let mut hosts: Vec<HostdEnv> = (1..4)
        .map(|h| {
            let peers = if h < 3 { vec![addr(&bed, h, h + 1)] } else { vec![] };
            let extra = match h {
                3 => format!("{}lightning_key = {ln_pub:?}\n", paid(0)),
                1 => format!("{}{router_extra}", paid(0)),
                _ => paid(0),
            };
            mesh_host(&bed, h, "payment_gated", &peers, &extra, "")
        })
        .collect();
    for h in &mut hosts {
        start(h);
    }
    attacker.start();
    let ids: Vec<String> = hosts.iter().map(node_id).collect();
    wait_for("the attacker linked to router 1", T, || attacker_ctl(&attacker, &["peers"]), |p| p.contains(&ids[0]));
    wait_for("router 1 routes to the destination", T, || paths_to(&hosts[0], &ids[2]), |p| p.first() == Some(&vec![ids[1].clone()]));
    PaidBed { _bed: bed, attacker, hosts, ids }
}

fn attacker_ctl(env: &HostdEnv, args: &[&str]) -> String {
    env.module_cli("meshattack", args)
}

fn refused(env: &HostdEnv, fault: &str) -> u64 {
    mesh(env, &["status"])["payments"]["refused"][fault].as_u64().unwrap_or(0)
}

impl PaidBed {
    fn attack(&self, kind: &str) -> String {
        let routers = format!("{},{}", self.ids[0], self.ids[1]);
        let out = attacker_ctl(&self.attacker, &["attack", kind, &self.ids[2], &routers]);
        assert!(out.starts_with(&format!("sent {kind}")), "{kind}: {out}");
        out
    }
    fn delivered(&self) -> u64 {
        count(&report(&self.hosts[2]), "received")
    }
    fn answers(&self) -> String {
        attacker_ctl(&self.attacker, &["nacks"])
    }
}

/// Each forged proof is refused by the payee whose entry it breaks, with
/// a typed NACK the attacker receives signed by that payee; nothing is
/// delivered and the refusing payee's ledger does not move. Controls: an honest paid packet from the
/// same attacker is delivered and ACKed, and the Lightning-key forgeries
/// use a key the destination really binds (an unbound key is not_payee).
#[test]
fn forged_payment_proofs_are_refused_at_the_right_hop_with_a_typed_nack() {
    if !require_daemon("mesh forged proofs") {
        return;
    }
    let b = paid_attack_bed();
    b.attack("paid-valid");
    wait_for("control: the honest paid packet is delivered", T, || b.delivered(), |n| *n == 1);
    wait_for("control: and ACKed by the destination", T, || b.answers(), |a| a.contains(&format!("{} ACK", b.ids[2])));
    let received: Vec<u64> = b.hosts.iter().map(|h| sats(h, "received_sats")).collect();
    // (attack, refusing host (index in hosts), fault, the NACK's reason)
    let cases: &[(&str, usize, &str, &str)] = &[
        ("paid-self-minted", 2, "not_payee", "NotPayee"),
        ("paid-other-packet", 0, "wrong_packet", "WrongPacket"),
        ("paid-wrong-preimage", 2, "wrong_preimage", "WrongPreimage"),
        ("paid-amount-low", 2, "amount_too_low", "AmountTooLow"),
        ("paid-expired", 2, "expired", "Expired"),
        ("paid-tampered", 2, "bad_invoice", "BadInvoice"),
        ("paid-reordered", 0, "not_payee", "NotPayee"),
        ("paid-ctv", 0, "ctv_without_node", "CtvWithoutNode"),
    ];
    for &(kind, at, fault, reason) in cases {
        let before = refused(&b.hosts[at], fault);
        b.attack(kind);
        wait_for(&format!("{kind} refused at host {} as {fault}", at + 1), T, || refused(&b.hosts[at], fault), |n| *n == before + 1);
        let want = format!("{} PaymentInvalid {{ fault: {reason} }}", b.ids[at]);
        wait_for(&format!("{kind}: the typed NACK reaches the attacker"), T, || b.answers(), |a| a.lines().last() == Some(want.as_str()));
    }
    assert_eq!(b.delivered(), 1, "no forged packet was delivered");
    // Routers before the refusing payee verified (and earned) their own
    // honest entries; the refusing payee and those after it earned nothing.
    let past_routers = cases.iter().filter(|c| c.1 == 2).count() as u64;
    let after: Vec<u64> = b.hosts.iter().map(|h| sats(h, "received_sats")).collect();
    assert_eq!(after, vec![received[0] + 15 * past_routers, received[1] + 15 * past_routers, received[2]], "ledgers");
    eprintln!("destination: {:#}", mesh(&b.hosts[2], &["status"])["payments"]);
}

/// The same packet (its bundle) again: router 1's dedup drops it as a
/// duplicate; after router 1's hostd restarts (dedup gone) its persisted
/// payment-hash store refuses it as replayed. Control: a fresh paid
/// packet passes the restarted router.
#[test]
fn a_paid_replay_is_refused_from_the_persisted_store_after_a_restart() {
    if !require_daemon("mesh paid replay") {
        return;
    }
    let mut b = paid_attack_bed();
    b.attack("paid-valid");
    wait_for("the original is delivered", T, || b.delivered(), |n| *n == 1);
    let held = mesh(&b.hosts[0], &["status"])["payments"]["replay_entries"].as_u64();
    assert_eq!(held, Some(1), "router 1 stored the payment hash");
    assert!(attacker_ctl(&b.attacker, &["attack", "replay-same", &b.ids[2], "-"]).starts_with("sent"));
    wait_for("control: before the restart dedup drops it", T, || mesh(&b.hosts[0], &["status"])["dropped"]["duplicate"].as_u64(), |n| *n == Some(1));
    b.hosts[0].stop();
    start(&mut b.hosts[0]);
    wait_for("the attacker linked again", T, || attacker_ctl(&b.attacker, &["peers"]), |p| p.contains(&b.ids[0]));
    wait_for("router 1 linked to router 2 again", T, || mesh(&b.hosts[0], &["peers"]).to_string(), |p| p.contains(&b.ids[1]));
    let s = mesh(&b.hosts[0], &["status"]);
    assert_eq!((s["replay"]["dedup_entries"].as_u64(), s["payments"]["replay_entries"].as_u64()), (Some(0), Some(1)), "{s:#}");
    assert!(attacker_ctl(&b.attacker, &["attack", "replay-same", &b.ids[2], "-"]).starts_with("sent"));
    wait_for("the replay refused from the store", T, || refused(&b.hosts[0], "replayed"), |n| *n == 1);
    let want = format!("{} PaymentInvalid {{ fault: Replayed }}", b.ids[0]);
    wait_for("the typed NACK", T, || b.answers(), |a| a.lines().last() == Some(want.as_str()));
    assert_eq!(b.delivered(), 1);
    b.attack("paid-valid");
    wait_for("control: a fresh paid packet passes the restarted router", T, || b.delivered(), |n| *n == 2);
}

/// 300 paid packets from host 0 along a line of five, 75 each to hosts 1–4
/// (0–3 routers): every host's ledger holds exactly its shares, and all
/// ledgers together hold exactly ΣF — paid + treasury due at the source,
/// received + treasury due across the payees.
#[test]
fn three_hundred_paid_packets_over_zero_to_three_routers_account_for_every_sat() {
    if !require_daemon("mesh fee accounting") {
        return;
    }
    let (_bed, hosts, ids) = line_of(&["payment_gated"; 5], &paid(1_000_000), |_| String::new(), |_, _| {});
    let nodes: Vec<_> = ids.iter().map(|i| parse_node_id(i).expect("id")).collect();
    for (d, id) in ids.iter().enumerate().skip(1) {
        wait_for(&format!("host 0 routes to host {d}"), T, || paths_to(&hosts[0], id), |p| p.first().map(Vec::len) == Some(d - 1));
    }
    let (per, len) = (75u64, 1024usize);
    let mut want = [0u64; 5];
    let (mut total, mut treasury) = (0u64, 0u64);
    for d in 1..5 {
        let out = ping(&hosts[0], &["send", &ids[d], &per.to_string(), &len.to_string()]);
        assert!(out.starts_with("sending"), "{out}");
        wait_for(&format!("{per} packets at host {d}"), T, || count(&report(&hosts[d]), "received"), |n| *n >= per);
        let f = fee(d - 1, len);
        let s = shares(f, &nodes[1..d]);
        total += per * f;
        treasury += per * s.treasury;
        want[d] += per * s.destination;
        for (r, share) in s.routers.iter().enumerate() {
            want[r + 1] += per * share;
        }
    }
    for d in 1..5 {
        wait_for(&format!("host {d}'s ledger"), T, || sats(&hosts[d], "received_sats"), |s| *s == want[d]);
    }
    let l0 = ledger(&hosts[0]);
    let (paid, due) = (l0["paid_sats"].as_u64().unwrap_or(0), l0["treasury_due_sats"].as_u64().unwrap_or(0));
    assert_eq!((due, l0["packets_paid"].as_u64()), (treasury, Some(4 * per)), "{l0:#}");
    assert_eq!(paid + due, total, "the source paid exactly ΣF = {total}");
    let received: u64 = (1..5).map(|h| sats(&hosts[h], "received_sats")).sum();
    assert_eq!(received + due, total, "the payees received exactly ΣF − treasury");
    eprintln!("ΣF = {total} sats over {} packets: received {received}, treasury due {due}, per host {want:?}", 4 * per);
}

/// A peer flooding a payee with quote requests (each would cost the payee
/// a signature and a held preimage) is cut at `quotes_per_sec` on its
/// link: 2,000 requests in a burst, the router answers at most its limit
/// per wall-clock second the burst touched, counts the rest (`quote_rate`)
/// and holds no more quotes than it answered. Control: a paid packet from
/// the same peer a second later is quoted, paid and delivered.
#[test]
fn a_quote_flood_is_cut_per_link_and_paid_traffic_still_passes() {
    if !require_daemon("mesh quote flood") {
        return;
    }
    let b = paid_attack_bed_with("quotes_per_sec = 50\n");
    let routers = format!("{},{}", b.ids[0], b.ids[1]);
    let out = attacker_ctl(&b.attacker, &["attack", "burst-quotes", &b.ids[2], &routers, "2000"]);
    assert!(out.starts_with("prepared 2000"), "{out}");
    let first_second = commons_mesh::now_ms() / 1000;
    let out = attacker_ctl(&b.attacker, &["attack", "burst-fire", &b.ids[0]]);
    assert!(out.starts_with("fired 2000"), "{out}");
    let (cut, _) = wait_for("the flood counted at router 1", T, || mesh(&b.hosts[0], &["status"])["dropped"]["quote_rate"].as_u64().unwrap_or(0), |n| *n >= 1000);
    let s = mesh(&b.hosts[0], &["status"]);
    // The limit counts per second of the clock the limiter reads
    // (commons_mesh::now_ms), so a burst that straddles a second's
    // boundary is answered 50 in each second it touched.
    let secs = commons_mesh::now_ms() / 1000 - first_second + 1;
    let held = s["payments"]["pending_quotes"].as_u64().unwrap_or(u64::MAX);
    assert!(held <= 50 * secs, "router 1 holds {held} quotes over {secs} wall-clock seconds (limit 50/s): {:#}", s["payments"]);
    eprintln!("2000 quote requests: {cut} cut at router 1, {held} quotes held");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    b.attack("paid-valid");
    wait_for("control: a paid packet still passes", T, || b.delivered(), |n| *n == 1);
}
