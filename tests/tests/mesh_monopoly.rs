//! Commons Mesh anti-monopoly across real hosts (a hostd per network
//! namespace, veth pairs, link-local addresses):
//!
//! ```text
//!          ┌── X1 ──┐            X1 and X2: one operator ("acme"),
//!   A ── X1 ── X2   │            the cheapest way from S to D (one
//!    S ──┼── X2 ──── D           router); the others take two.
//!        ├── Y1 ── Y2 ── D
//!        └── Z1 ── Z2 ── D       A: a hostile source linked to X1
//! ```
//!
//! Hosts: S 0, D 1, X1 2, X2 3, Y1 4, Y2 5, Z1 6, Z2 7, A 8. Three router
//! entities compete for S's traffic (acme, the Y path, the Z path): a cap
//! of 0.4 can hold only with at least three (1 / 0.4 = 2.5).

use commons_mesh::entity::EntityCert;
use commons_mesh::identity::Identity;
use hostd_tests::daemon_env::HostdEnv;
use hostd_tests::meshnet::*;
use hostd_tests::netbed::NetBed;
use hostd_tests::require_daemon;

const EDGES: [(usize, usize); 12] = [(0, 2), (0, 3), (2, 1), (3, 1), (0, 4), (4, 5), (5, 1), (0, 6), (6, 7), (7, 1), (2, 3), (8, 2)];
const S: usize = 0;
const D: usize = 1;
const X1: usize = 2;
const X2: usize = 3;

/// The test's entity authority (the operator who vouches that X1 and X2
/// are acme's).
const AUTHORITY: [u8; 32] = [0x77; 32];

/// Every host: open mode, no free-traffic limit in the way, shares count
/// from the first byte, cap 0.4, AUTHORITY trusted; S's mode comes from
/// `anti_monopoly`.
fn extra(anti_monopoly: &str) -> String {
    let authority = commons_mesh::mesh_api::hex(&Identity::from_secret(AUTHORITY).expect("key").node_id());
    format!("free_bytes_per_sec = 1073741824\nentity_min_bytes = 0\nentity_cap = 0.4\nanti_monopoly = \"{anti_monopoly}\"\nentity_authorities = [\"{authority}\"]\n")
}

struct Bed {
    _bed: NetBed,
    hosts: Vec<HostdEnv>,
    attacker: HostdEnv,
    ids: Vec<String>,
}

fn bed() -> Bed {
    let bed = NetBed::new(9, &EDGES).expect("netbed");
    let mut hosts: Vec<HostdEnv> = (0..8)
        .map(|h| {
            let peers: Vec<String> = EDGES.iter().enumerate().filter(|(_, (a, _))| *a == h).map(|(e, (_, b))| addr(&bed, e, *b)).collect();
            mesh_host(&bed, h, "open", &peers, &extra(if h == S { "off" } else { "relaxed" }), "")
        })
        .collect();
    for h in &mut hosts {
        start(h);
    }
    let mut attacker = HostdEnv::new("meshmonoattack", &format!("\n[mesh]\nconnect_allow = [\"169.254.0.0/17\"]\n\n[modules.meshattack]\ndial = [{:?}]\n", addr(&bed, 11, X1)));
    attacker.netns = Some(bed.ns_path(8));
    attacker.install("meshattack", &hostd_tests::bin_dir().join("hostd-meshattack"), &["network_access"], "");
    attacker.start();
    let ids: Vec<String> = hosts.iter().map(node_id).collect();
    wait_for("S has the four ways to D", T, || paths_to(&hosts[S], &ids[D]), |p| p.iter().filter(|r| r.len() == 1).count() == 2 && p.iter().filter(|r| r.len() == 2).count() >= 2);
    wait_for("the attacker linked to X1", T, || attacker.module_cli("meshattack", &["peers"]), |p| p.contains(&ids[X1]));
    wait_for("X1 routes to D", T, || paths_to(&hosts[X1], &ids[D]), |p| !p.is_empty());
    Bed { _bed: bed, hosts, attacker, ids }
}

fn monopoly(env: &HostdEnv) -> serde_json::Value {
    mesh(env, &["status"])["monopoly"].clone()
}

fn acme_share(env: &HostdEnv) -> f64 {
    monopoly(env)["entities"]["acme"]["share"].as_f64().unwrap_or(0.0)
}

fn set_entity(env: &HostdEnv, node: &str, name: &str) {
    let out = mesh(env, &["entity", node, name]);
    assert_eq!(out["entity"].as_str(), Some(name), "{out}");
}

/// Give router `h` its acme certificate (signed by AUTHORITY for its
/// NodeId, as `commons-mesh entity-authority sign` would) and restart it.
fn certify_acme(b: &mut Bed, h: usize) {
    let node = commons_mesh::mesh_api::parse_node_id(&b.ids[h]).expect("id");
    let cert = EntityCert::sign(&Identity::from_secret(AUTHORITY).expect("key"), "acme", &node);
    let env = &mut b.hosts[h];
    env.stop();
    let config = std::fs::read_to_string(&env.config).expect("config");
    let config = config.replacen("[modules.commons-mesh.mesh]\n", &format!("[modules.commons-mesh.mesh]\nentity_certificate = {:?}\n", cert.to_text()), 1);
    std::fs::write(&env.config, config).expect("config");
    start(env);
}

/// Restart S with `anti_monopoly = mode` (its storage, and so its identity
/// and entity map, stay; its share meter starts afresh).
fn restart_source(b: &mut Bed, mode: &str) {
    let s = &mut b.hosts[S];
    s.stop();
    let config = std::fs::read_to_string(&s.config).expect("config");
    let config = ["off", "relaxed", "strict"].iter().fold(config, |c, m| c.replace(&format!("anti_monopoly = \"{m}\""), &format!("anti_monopoly = \"{mode}\"")));
    std::fs::write(&s.config, config).expect("config");
    start(s);
    wait_for("S routes to D again", T, || paths_to(&b.hosts[S], &b.ids[D]), |p| p.iter().filter(|r| r.len() == 1).count() == 2);
    assert_eq!(monopoly(&b.hosts[S])["mode"].as_str(), Some(mode));
}

/// Send `n` packets of 1 KiB from S to D, 500 a second (queues stay short,
/// so round trips do not reorder the paths), and wait for all of them.
fn send(b: &Bed, n: u64) {
    let before = count(&report(&b.hosts[D]), "received");
    let out = ping(&b.hosts[S], &["send", &b.ids[D], &n.to_string(), "1024", "0", "500"]);
    assert!(out.starts_with("sending"), "{out}");
    wait_for(&format!("{n} packets at D"), T, || count(&report(&b.hosts[D]), "received"), |r| *r >= before + n);
}

/// With the cap off (the control) the cheapest entity, acme, carries
/// nearly all of S's traffic; with a 0.4 cap in relaxed mode it carries at
/// most 0.42 over 1,000 packets, every packet still delivered. acme is
/// known from entity certificates (an authority every node trusts). A
/// router refuses a path through two routers of one entity (control: the
/// same path passes before they are certified). In strict mode, with every
/// router one entity (the rest named with the `entity` CLI), the send
/// fails with RouteFailed "anti-monopoly".
#[test]
fn the_entity_cap_holds_routers_refuse_one_entity_paths_and_strict_mode_fails_loudly() {
    if !require_daemon("mesh anti-monopoly") {
        return;
    }
    let mut b = bed();
    let (d, x1, x2) = (b.ids[D].clone(), b.ids[X1].clone(), b.ids[X2].clone());
    let attack = |b: &Bed| {
        let out = b.attacker.module_cli("meshattack", &["attack", "valid", &d, &format!("{x1},{x2}")]);
        assert!(out.starts_with("sent"), "{out}");
    };
    // Control: before anyone names acme, the X1 → X2 path is two entities.
    // The packet is sent once: X1's link to X2 must be up first (X1 then
    // has a way to D through X2), or X1 drops it and the control never sees it.
    wait_for("X1 reaches D through X2", T, || paths_to(&b.hosts[X1], &d), |p| p.iter().any(|r| *r == [x2.clone()]));
    attack(&b);
    wait_for("control: the attacker's packet over X1, X2 is delivered", T, || count(&report(&b.hosts[D]), "received"), |n| *n == 1);
    // The operator's authority certifies X1 and X2 as acme's; every node
    // trusts it, so no node needs a map entry for them.
    certify_acme(&mut b, X1);
    certify_acme(&mut b, X2);
    wait_for("S has both one-router ways again", T, || paths_to(&b.hosts[S], &d), |p| p.iter().filter(|r| r.len() == 1).count() == 2);
    wait_for("the attacker linked to X1 again", T, || b.attacker.module_cli("meshattack", &["peers"]), |p| p.contains(&x1));
    wait_for("X1 sees X2's certified record", T, || paths_to(&b.hosts[X1], &d), |p| !p.is_empty());
    attack(&b);
    wait_for("X1 refuses the one-entity path", T, || monopoly(&b.hosts[X1])["paths_refused"].as_u64(), |n| *n == Some(1));
    let want = format!("{x1} Monopoly");
    wait_for("the typed NACK reaches the attacker", T, || b.attacker.module_cli("meshattack", &["nacks"]), |a| a.lines().last() == Some(want.as_str()));
    assert_eq!(count(&report(&b.hosts[D]), "received"), 1);

    // The control: cap off, acme (cheapest) takes nearly everything.
    send(&b, 1000);
    let off = acme_share(&b.hosts[S]);
    assert!(off > 0.95, "cap off: acme carried {off}: {:#}", monopoly(&b.hosts[S]));

    restart_source(&mut b, "relaxed");
    send(&b, 1000);
    let m = monopoly(&b.hosts[S]);
    let capped = acme_share(&b.hosts[S]);
    assert!((0.30..=0.42).contains(&capped), "cap 0.4: acme carried {capped}: {m:#}");
    let others: Vec<f64> = m["entities"].as_object().into_iter().flatten().filter(|(e, _)| *e != "acme").map(|(_, v)| v["share"].as_f64().unwrap_or(0.0)).collect();
    assert!(others.iter().all(|s| *s <= 0.42), "no other entity over the cap either: {m:#}");
    assert!(m["entities"]["acme"]["coverage"].as_f64() > Some(0.0), "coverage is measured: {m:#}");
    eprintln!("acme share: cap off {off:.3}, cap 0.4 {capped:.3}; S: {m:#}");

    // Strict: every router is acme; the first packet passes (nothing
    // carried yet), then nothing complies and the send fails.
    restart_source(&mut b, "strict");
    for id in &b.ids[4..8] {
        set_entity(&b.hosts[S], id, "acme");
    }
    let payload = commons_mesh::mesh_api::hex(b"\x00strict");
    let first = ping(&b.hosts[S], &["send-hex", &d, &payload, "confirm"]);
    assert!(first.contains("success=true"), "{first}");
    let second = ping(&b.hosts[S], &["send-hex", &d, &payload, "confirm"]);
    assert!(second.contains("no compliant route") && second.contains("anti-monopoly"), "{second}");
    wait_for("RouteFailed \"anti-monopoly\" at S", T, || ping(&b.hosts[S], &["events"]), |e| e.lines().any(|l| l.starts_with("RouteFailed publisher=commons-mesh") && l.contains("reason=anti-monopoly")));
    assert_eq!(monopoly(&b.hosts[S])["failed"].as_u64(), Some(1));
}
