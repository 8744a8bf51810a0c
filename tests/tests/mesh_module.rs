//! Commons Mesh across real hosts: a hostd per network namespace (made
//! here, veth pairs, link-local addresses, no route out), each running the
//! shipped commons-mesh module and the meshping example as the driver.

use commons_mesh::mesh_api::hex;
use hostd_tests::meshnet::*;
use hostd_tests::netbed::NetBed;
use hostd_tests::require_daemon;

fn line_of_four_with(modes: &[&str; 4], before_start: impl Fn(usize, &hostd_tests::daemon_env::HostdEnv)) -> (NetBed, Vec<hostd_tests::daemon_env::HostdEnv>, Vec<String>) {
    line_of_four(modes, "", |_| String::new(), before_start)
}

/// 200 packets from host 0 to host 3 through two routers: each delivered
/// exactly once, checked byte for byte; the routers forwarded and verified
/// every one and delivered none.
#[test]
fn line_of_four_delivers_200_packets_exactly_once_through_two_verifying_routers() {
    if !require_daemon("mesh line of four") {
        return;
    }
    let (_bed, hosts, ids) = line_of_four_with(&["open"; 4], |_, _| {});
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
    env.module_cli("meshattack", args)
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
    // A forged record in an advert: counted, and the link to the forger closed.
    let before = dropped(&a.dest, "advert_bad_record");
    assert!(attacker_ctl(&a.attacker, &["attack", "forged-advert", &a.d, "-", &a.r]).starts_with("sent"));
    wait_for("the forged record counted", T, || dropped(&a.dest, "advert_bad_record"), |n| *n == before + 1);
    wait_for("the forger's link closed", T, || a.dest.log(), |l| l.contains("forged record in an advert"));
    assert!(mesh(&a.dest, &["routes"]).to_string().contains(&a.r), "the router's genuine route survives");
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

    // A crash (SIGKILL: no clean shutdown, windows possibly a flush behind):
    // every sequence the destination had reserved counts as seen.
    a.dest.kill9();
    start(&mut a.dest);
    wait_for("the attacker linked again after the crash", T, || attacker_ctl(&a.attacker, &["peers"]), |p| p.matches(&a.d).count() == 1);
    for kind in ["replay-same", "replay-resigned", "valid"] {
        let before = dropped(&a.dest, "replay");
        assert!(attacker_ctl(&a.attacker, &["attack", kind, &a.d, "-"]).starts_with("sent"), "{kind}");
        wait_for(&format!("{kind} after a crash dropped as replay"), T, || dropped(&a.dest, "replay"), |n| *n == before + 1);
    }
    assert_eq!(received(&a), 0);
    assert!(attacker_ctl(&a.attacker, &["attack", "valid-far", &a.d, "-"]).starts_with("sent"));
    wait_for("control: a sequence past the reservation is delivered", T, || received(&a), |n| *n == 1);
}


/// Classes come from the bytes: along 0 (open) — 1 (bitcoin_only) — 2
/// (payment_gated) — 3 (open), a regtest `ping` with a valid checksum
/// crosses both for free; the same bytes with a bad checksum are paid
/// class and the payment_gated node answers "payment required"; Stratum
/// V2 passes the payment_gated node free and the bitcoin_only node
/// refuses it; unknown bytes are refused by the bitcoin_only node.
#[test]
fn traffic_classes_come_from_the_payload_bytes_and_each_mode_applies_its_table() {
    if !require_daemon("mesh classification") {
        return;
    }
    let (_bed, hosts, ids) = line_of_four_with(&["open", "bitcoin_only", "payment_gated", "open"], |_, _| {});
    let ping_msg = commons_mesh::classify::bitcoin_message(commons_mesh::classify::magic("regtest").expect("magic"), "ping", &7u64.to_le_bytes());
    let mut bad_sum = ping_msg.clone();
    bad_sum[20] ^= 0xff;
    let sv2 = commons_mesh::classify::sv2_frame(0x00, b"setup");
    // (from, to, payload, expected answer, the node that answers)
    type Case<'a> = (usize, usize, Vec<u8>, &'a str, Option<usize>);
    let cases: Vec<Case> = vec![
        (3, 0, ping_msg.clone(), "Acked", None),
        (0, 3, ping_msg, "Acked", None),
        (3, 0, bad_sum, "PaymentRequired { fee_sats: 4 }", Some(2)),
        (3, 0, sv2, "ClassRejected { class: StratumV2 }", Some(1)),
        (0, 3, b"hello mesh".to_vec(), "ClassRejected { class: Paid }", Some(1)),
    ];
    for (from, to, payload, want, by) in cases {
        let refused_before = by.map(|b| mesh(&hosts[b], &["status"])["dropped"]["refused_by_mode"].as_u64().unwrap_or(0));
        let out = ping(&hosts[from], &["send-hex", &ids[to], &hex(&payload), "confirm"]);
        assert!(out.contains(want), "{from} → {to} {}: {out}", hex(&payload));
        if want.starts_with("PaymentRequired") {
            assert!(out.contains("error=payment_required:_4_sats"), "the typed refusal names the fee: {out}");
        }
        if let (Some(b), Some(before)) = (by, refused_before) {
            assert_eq!(mesh(&hosts[b], &["status"])["dropped"]["refused_by_mode"].as_u64(), Some(before + 1), "host {b} refused it");
        }
    }
    let r0 = report(&hosts[0]);
    assert_eq!(count(&r0, "received"), 1, "only the valid ping reached host 0: {r0:?}");
}

/// The ModuleAPI: discover_route agrees with the RouteDiscovered event
/// (publisher stamped by hostd) and honours max_hops (RouteFailed); a
/// second module cannot take a protocol id; unloading the handler's
/// module removes its handler (packets then get NoHandler, and the id is
/// free for another module); a module without call_module cannot call the
/// API at all (control: the same binary with it can).
#[test]
fn the_module_api_discovers_binds_handlers_to_callers_and_needs_call_module() {
    if !require_daemon("mesh api") {
        return;
    }
    let (_bed, hosts, ids) = line_of_four_with(&["open"; 4], |h, env| {
        if h == 3 {
            let bin = hostd_tests::bin_dir().join("meshping");
            env.install("meshping2", &bin, &["call_module", "register_module_api", "subscribe_events"], "");
            env.install("meshping3", &bin, &["register_module_api", "subscribe_events"], "");
        }
    });
    let out = ping(&hosts[0], &["discover", &ids[3]]);
    let want = format!("route={},{},{}", ids[1], ids[2], ids[3]);
    assert!(out.starts_with(&want), "{out}");
    let (ev, _) = wait_for("RouteDiscovered at host 0", T, || ping(&hosts[0], &["events"]), |e| e.contains("RouteDiscovered"));
    assert!(ev.contains(&format!("RouteDiscovered publisher=commons-mesh destination={} {want} ", ids[3])), "{ev}");
    let out = ping(&hosts[0], &["discover", &ids[3], "1", "1"]);
    assert!(out.starts_with("route=-"), "two routers needed, one allowed: {out}");
    wait_for("RouteFailed at host 0", T, || ping(&hosts[0], &["events"]), |e| e.contains(&format!("RouteFailed publisher=commons-mesh destination={}", ids[3])));

    // meshping and meshping2 (the same binary, the same protocol id) race
    // to register: one owns ping-v1, the other is told AlreadyExists.
    let (owner, _) = wait_for("ping-v1 has an owner", T, || mesh(&hosts[3], &["status"])["handlers"]["ping-v1"]["module"].as_str().map(str::to_string), Option::is_some);
    let owner = owner.unwrap_or_default();
    let loser = if owner == "meshping" { "meshping2" } else { "meshping" };
    let on = |module: &str, args: &[&str]| hosts[3].module_cli(module, args);
    wait_for(&format!("{loser} refused ping-v1"), T, || on(loser, &["report"]), |r| r.contains("registered=Some(AlreadyExists)"));
    let no_call = on("meshping3", &["id"]);
    assert!(no_call.contains("PermissionDenied") && no_call.contains("call_module"), "{no_call}");
    assert_eq!(on(loser, &["id"]).trim(), ids[3], "control: with call_module the same binary gets the node id");

    let data = hex(b"\x01 to the handler");
    assert!(ping(&hosts[0], &["send-hex", &ids[3], &data, "confirm"]).contains("Acked"));
    hosts[3].ctl_ok(&["unload", &owner]);
    wait_for("ping-v1 has no handler", T, || mesh(&hosts[3], &["status"])["handlers"].clone(), |h| h.get("ping-v1").is_none());
    assert!(ping(&hosts[0], &["send-hex", &ids[3], &data, "confirm"]).contains("NoHandler"));
    assert!(on(loser, &["register", "ping-v1"]).starts_with("registered"), "the id is free again");
    assert!(ping(&hosts[0], &["send-hex", &ids[3], &data, "confirm"]).contains("Acked"));
    assert_eq!(count(&report_of(&hosts[3], loser), "received"), 1);
}

/// A diamond 0 → {1, 2} → 3 at a steady rate: SIGKILL the hostd of the
/// router carrying the traffic and it resumes through the other within
/// 5 s; restarting it restores its path; no packet exceeds its hop limit.
/// Then host 3 falls silent (its hostd stopped, links left open) and host
/// 0 drops the route within the expiry + 1 s.
#[test]
fn diamond_heals_around_a_killed_router_and_a_silent_destination_expires() {
    if !require_daemon("mesh diamond") {
        return;
    }
    let bed = NetBed::new(4, &[(0, 1), (0, 2), (1, 3), (2, 3)]).expect("netbed");
    let peers = |h: usize| -> Vec<String> {
        match h {
            0 => vec![addr(&bed, 0, 1), addr(&bed, 1, 2)],
            1 => vec![addr(&bed, 2, 3)],
            2 => vec![addr(&bed, 3, 3)],
            _ => vec![],
        }
    };
    let mut hosts: Vec<_> = (0..4).map(|h| mesh_host(&bed, h, "open", &peers(h), "", "")).collect();
    for h in &mut hosts {
        start(h);
    }
    let ids: Vec<String> = hosts.iter().map(node_id).collect();
    wait_for("two paths from 0 to 3", T, || paths_to(&hosts[0], &ids[3]), |p| p.len() == 2);
    // 3,000 packets at 300/s: 10 s of steady traffic.
    assert!(ping(&hosts[0], &["send", &ids[3], "3000", "512", "0", "300"]).starts_with("sending"));
    wait_for("traffic flowing", T, || count(&report(&hosts[3]), "received"), |n| *n >= 150);
    let carrier = paths_to(&hosts[0], &ids[3])[0][0].clone();
    let victim = if carrier == ids[1] { 1 } else { 2 };
    let before = count(&report(&hosts[3]), "received");
    hosts[victim].kill9();
    let (_, healed) = wait_for("traffic through the other router", std::time::Duration::from_secs(5), || count(&report(&hosts[3]), "received"), |n| *n >= before + 100);
    eprintln!("healed {healed:?} after SIGKILL of router {victim} (received {before} at the kill)");
    assert_eq!(paths_to(&hosts[0], &ids[3]).len(), 1, "the dead router's path is withdrawn");
    start(&mut hosts[victim]);
    wait_for("the restarted router's path is back", T, || paths_to(&hosts[0], &ids[3]), |p| p.len() == 2);
    wait_for("all sent", T, || count(&report(&hosts[0]), "sent") + count(&report(&hosts[0]), "send_errors"), |n| *n >= 3000);
    let r3 = report(&hosts[3]);
    assert_eq!((count(&r3, "bad"), count(&r3, "duplicates")), (0, 0), "{r3:?}");
    assert!(count(&r3, "max_routers") <= 1, "{r3:?}");
    for h in &hosts {
        assert_eq!(mesh(h, &["status"])["dropped"]["hop_limit"].as_u64().unwrap_or(0), 0);
    }
    // Silence: stop host 3's hostd (its links stay open, nothing is sent).
    let pid = hosts[3].pid().expect("pid") as i32;
    // SAFETY: signalling the hostd this test started, by its pid.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let (_, gone) = wait_for("the silent destination expires", std::time::Duration::from_secs(6), || paths_to(&hosts[0], &ids[3]), |p| p.is_empty());
    // SAFETY: as above; resume it so it can stop cleanly.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    eprintln!("silent route removed {gone:?} after the stop (expiry 5 s)");
}
