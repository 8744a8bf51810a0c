//! Commons Mesh across real hosts: a hostd per network namespace (made
//! here, veth pairs, link-local addresses, no route out), each running the
//! shipped commons-mesh module and the meshping example as the driver.

use hostd_tests::meshnet::*;
use hostd_tests::netbed::NetBed;
use hostd_tests::require_daemon;

/// A line 0 — 1 — 2 — 3, each host dialing the next; all up and host 0
/// routing to host 3.
fn line_of_four(mode: &str) -> (NetBed, Vec<hostd_tests::daemon_env::HostdEnv>, Vec<String>) {
    let bed = NetBed::new(4, &[(0, 1), (1, 2), (2, 3)]).expect("netbed");
    let mut hosts: Vec<_> = (0..4)
        .map(|h| {
            let peers = if h < 3 { vec![addr(&bed, h, h + 1)] } else { vec![] };
            mesh_host(&bed, h, mode, &peers, "", "")
        })
        .collect();
    for h in &mut hosts {
        start(h);
    }
    let ids: Vec<String> = hosts.iter().map(node_id).collect();
    wait_for("host 0 routes to host 3 through 1 and 2", T, || paths_to(&hosts[0], &ids[3]), |p| p.first() == Some(&vec![ids[1].clone(), ids[2].clone()]));
    (bed, hosts, ids)
}

/// 200 packets from host 0 to host 3 through two routers: each delivered
/// exactly once, checked byte for byte; the routers forwarded and verified
/// every one and delivered none.
#[test]
fn line_of_four_delivers_200_packets_exactly_once_through_two_verifying_routers() {
    if !require_daemon("mesh line of four") {
        return;
    }
    let (_bed, hosts, ids) = line_of_four("open");
    let out = ping(&hosts[0], &["send", &ids[3], "200", "1024"]);
    assert!(out.starts_with("sending"), "{out}");
    wait_for("200 packets at host 3", T, || report(&hosts[3]), |r| count(r, "received") >= 200);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let r = report(&hosts[3]);
    assert_eq!((count(&r, "received"), count(&r, "ok"), count(&r, "bad"), count(&r, "duplicates")), (200, 200, 0, 0), "{r:?}");
    assert_eq!(count(&r, "max_routers"), 2, "{r:?}");
    for h in [1, 2] {
        let s = mesh(&hosts[h], &["status"]);
        assert_eq!((s["forwarded"].as_u64(), s["verified"].as_u64(), s["delivered"].as_u64()), (Some(200), Some(200), Some(0)), "router {h}: {s:#}");
        assert_eq!(count(&report(&hosts[h]), "received"), 0, "router {h} delivered nothing locally");
    }
    let s3 = mesh(&hosts[3], &["status"]);
    assert_eq!((s3["verified"].as_u64(), s3["delivered"].as_u64()), (Some(200), Some(200)), "{s3:#}");
    assert_eq!(count(&report(&hosts[0]), "sent"), 200);
    eprintln!("host 3: {r:?}\n{s3:#}\nrouter 1: {:#}", mesh(&hosts[1], &["status"]));
}

/// An attacker host (a real module speaking the mesh protocol with its own
/// key) linked to a router and to the destination, which are also linked.
struct Attack {
    _bed: NetBed,
    attacker: hostd_tests::daemon_env::HostdEnv,
    router: hostd_tests::daemon_env::HostdEnv,
    dest: hostd_tests::daemon_env::HostdEnv,
    r: String,
    d: String,
}

fn attack_bed() -> Attack {
    let bed = NetBed::new(3, &[(0, 1), (1, 2), (0, 2)]).expect("netbed");
    let dial = format!("[{:?}, {:?}]", addr(&bed, 0, 1), addr(&bed, 2, 2));
    let mut attacker = hostd_tests::daemon_env::HostdEnv::new(
        "meshattack",
        &format!("\n[mesh]\nconnect_allow = [\"169.254.0.0/17\"]\n\n[modules.meshattack]\ndial = {dial}\n"),
    );
    attacker.netns = Some(bed.ns_path(0));
    attacker.install("meshattack", &hostd_tests::bin_dir().join("hostd-meshattack"), &["network_access"], "");
    let mut router = mesh_host(&bed, 1, "open", &[addr(&bed, 1, 2)], "", "");
    let mut dest = mesh_host(&bed, 2, "open", &[], "", "");
    start(&mut router);
    start(&mut dest);
    attacker.start();
    let (r, d) = (node_id(&router), node_id(&dest));
    wait_for("the attacker authenticated both links", T, || attacker_ctl(&attacker, &["peers"]), |p| p.contains(&r) && p.contains(&d));
    wait_for("the router linked to the destination", T, || paths_to(&router, &d), |p| !p.is_empty());
    Attack { _bed: bed, attacker, router, dest, r, d }
}

fn attacker_ctl(env: &hostd_tests::daemon_env::HostdEnv, args: &[&str]) -> String {
    let mut all = vec!["module", "meshattack"];
    all.extend_from_slice(args);
    let o = env.ctl(&all);
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn dropped(env: &hostd_tests::daemon_env::HostdEnv, why: &str) -> u64 {
    mesh(env, &["status"])["dropped"][why].as_u64().unwrap_or(0)
}

/// Each hostile packet breaks one rule and is dropped by the first honest
/// node that checks it, counted under that rule; nothing reaches the
/// destination's handler. Controls: the same attacker's valid packets are
/// delivered, through the router and directly.
#[test]
fn hostile_packets_are_dropped_by_the_check_they_break_and_valid_ones_pass() {
    if !require_daemon("mesh hostile packets") {
        return;
    }
    let a = attack_bed();
    let received = |a: &Attack| count(&report(&a.dest), "received");
    // (attack, routers, victim, checked at router?, counter)
    let cases: &[(&str, bool, bool, &str)] = &[
        ("expired", true, false, "expired"),
        ("long-path", true, false, "hop_limit"),
        ("tamper-hop", true, false, "not_next_hop"),
        ("tamper-payload", true, false, "bad_signature"),
        ("bad-class", true, false, "class_mismatch"),
        ("forge-source", false, true, "bad_signature"),
        ("lockout", false, true, "bad_signature"),
    ];
    for &(kind, via_router, victim, counter) in cases {
        let (host, hops) = if via_router { (&a.router, a.r.clone()) } else { (&a.dest, "-".to_string()) };
        let before = (dropped(host, counter), received(&a));
        let mut args = vec!["attack", kind, &a.d, &hops];
        if victim {
            args.push(&a.r);
        }
        let out = attacker_ctl(&a.attacker, &args);
        assert!(out.starts_with("sent"), "{kind}: {out}");
        wait_for(&format!("{kind} dropped as {counter}"), T, || dropped(host, counter), |n| *n == before.0 + 1);
        assert_eq!(received(&a), before.1, "{kind} reached the handler");
    }
    for via in [a.r.clone(), "-".to_string()] {
        let before = received(&a);
        assert!(attacker_ctl(&a.attacker, &["attack", "valid", &a.d, &via]).starts_with("sent"));
        wait_for("control: a valid packet is delivered", T, || received(&a), |n| *n == before + 1);
    }
}

/// A packet sent again, byte for byte, is a duplicate; its sequence signed
/// afresh is a replay; and after the destination's hostd restarts (its
/// dedup memory gone) the original bytes are still refused by the
/// persisted sequence window. Control: a new sequence is delivered.
#[test]
fn replays_are_refused_also_after_the_destination_restarts() {
    if !require_daemon("mesh replay") {
        return;
    }
    let mut a = attack_bed();
    let received = |a: &Attack| count(&report(&a.dest), "received");
    assert!(attacker_ctl(&a.attacker, &["attack", "valid", &a.d, "-"]).starts_with("sent"));
    wait_for("the original is delivered", T, || received(&a), |n| *n == 1);
    for (kind, counter) in [("replay-same", "duplicate"), ("replay-resigned", "replay")] {
        assert!(attacker_ctl(&a.attacker, &["attack", kind, &a.d, "-"]).starts_with("sent"), "{kind}");
        wait_for(&format!("{kind} dropped as {counter}"), T, || dropped(&a.dest, counter), |n| *n == 1);
    }
    assert_eq!(received(&a), 1);
    a.dest.stop();
    start(&mut a.dest);
    wait_for("the attacker linked again", T, || attacker_ctl(&a.attacker, &["peers"]), |p| p.matches(&a.d).count() == 1);
    let s = mesh(&a.dest, &["status"]);
    assert_eq!(s["replay"]["dedup_entries"], 0, "a fresh process: only the persisted window can refuse: {s:#}");
    assert!(s["replay"]["sources"].as_u64() >= Some(1), "{s:#}");
    for kind in ["replay-same", "replay-resigned"] {
        let before = dropped(&a.dest, "replay");
        assert!(attacker_ctl(&a.attacker, &["attack", kind, &a.d, "-"]).starts_with("sent"), "{kind}");
        wait_for(&format!("{kind} after restart dropped as replay"), T, || dropped(&a.dest, "replay"), |n| *n == before + 1);
    }
    assert_eq!(received(&a), 0, "nothing delivered since the restart");
    assert!(attacker_ctl(&a.attacker, &["attack", "valid", &a.d, "-"]).starts_with("sent"));
    wait_for("control: a new sequence is delivered", T, || received(&a), |n| *n == 1);
}
