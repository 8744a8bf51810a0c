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
