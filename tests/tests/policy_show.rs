//! The maintainer and operator flow through the real CLI: keygen, sign by
//! two of three anchored maintainers, verify, then `policy show` in both
//! forms, the JSON checked against docs/policy-show.schema.json.

use hostd_tests::{bin_dir, hostd_bin, output_text as text, schema_violations, Scratch};
use std::path::Path;
use std::process::{Command, Output};

fn hostd(args: &[&str], config: Option<&Path>) -> Output {
    let mut c = Command::new(hostd_bin());
    if let Some(cfg) = config {
        c.arg("--config").arg(cfg);
    }
    c.args(args).output().unwrap_or_else(|e| panic!("run hostd: {e}"))
}


#[test]
fn keygen_sign_verify_and_policy_show() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf();
    let s = Scratch::new("policyshow");
    let module = s.0.join("modules/notes");
    std::fs::create_dir_all(&module).expect("mkdir");
    std::fs::copy(root.join("modules/examples/notes/module.toml"), module.join("module.toml")).expect("copy manifest");
    std::fs::copy(bin_dir().join("hostd-payload"), module.join("notes")).expect("copy binary");

    let mut anchors = String::new();
    let mut keys = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let key = s.0.join(format!("{name}.key"));
        let out = hostd(&["keygen", "--out", key.to_str().unwrap_or_default()], None);
        assert!(out.status.success(), "keygen: {}", text(&out));
        let public = String::from_utf8_lossy(&out.stdout).trim().to_string();
        anchors.push_str(&format!("[[trust.anchors]]\nname = \"{name}\"\npublic_key = \"{public}\"\n"));
        keys.push(key);
    }
    let config = s.0.join("hostd.toml");
    std::fs::write(&config, format!("[paths]\nmodules_dir = \"modules\"\ndata_dir = \"data\"\n[trust]\nmin_signatures = 2\n{anchors}")).expect("config");

    // A manifest in a directory of another name is not signed.
    let elsewhere = s.0.join("not-notes");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    std::fs::copy(module.join("module.toml"), elsewhere.join("module.toml")).expect("copy manifest");
    std::fs::copy(module.join("notes"), elsewhere.join("notes")).expect("copy binary");
    let out = hostd(&["sign", elsewhere.to_str().unwrap_or_default(), "--key", keys[0].to_str().unwrap_or_default()], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("directory is \"not-notes\""), "{}", text(&out));

    // Unsigned: refused.
    let out = hostd(&["verify", module.to_str().unwrap_or_default()], Some(&config));
    assert!(!out.status.success(), "unsigned module verified: {}", text(&out));

    // One signature of the two required: refused; two: accepted.
    for (i, key) in keys.iter().take(2).enumerate() {
        let out = hostd(&["sign", module.to_str().unwrap_or_default(), "--key", key.to_str().unwrap_or_default()], None);
        assert!(out.status.success(), "sign: {}", text(&out));
        let out = hostd(&["verify", module.to_str().unwrap_or_default()], Some(&config));
        assert_eq!(out.status.success(), i == 1, "after {} signature(s): {}", i + 1, text(&out));
    }

    let out = hostd(&["policy", "show", "notes", "--json"], Some(&config));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("policy show --json: {e}: {}", text(&out)));
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("docs/policy-show.schema.json")).expect("schema")).expect("schema json");
    let violations = schema_violations(&schema, &json);
    assert!(violations.is_empty(), "schema violations:\n{}", violations.join("\n"));
    assert_eq!(json["verification"]["ok"], true, "{}", json["verification"]);
    assert_eq!(json["verification"]["details"]["signed_by"], serde_json::json!(["alice", "bob"]));
    assert_eq!(json["landlock"]["rules"][0]["path"], "/data");
    assert!(json["permissions"].as_array().is_some_and(|p| p.len() == 6));
    assert_eq!(json["cgroup"]["pids_max"], 16, "the manifest's tighter pids limit applies");

    let out = hostd(&["policy", "show", "notes"], Some(&config));
    let human = text(&out);
    for section in ["policy digest sha256:", "verification: OK", "signed by trusted maintainers: alice, bob", "permissions (6)", "unlocks:", "namespaces: user, mount, pid, net, ipc, uts, cgroup", "identity: uid 0 → host", "mounts:", "landlock: ABI", "seccomp: default KillProcess", "allow execveat if", "rlimits:", "cgroup: memory.max", "environment (nothing inherited):", "kernel:"] {
        assert!(human.contains(section), "human form lacks {section:?}:\n{human}");
    }

    // A kernel that lacks what the config demands: refused, or a loud
    // downgrade when the config allows it.
    let base_config = std::fs::read_to_string(&config).expect("config");
    for (extra, want) in [
        ("[sandbox]\nmin_landlock_abi = 99\n", "WILL NOT START on this host"),
        ("[sandbox]\nmin_landlock_abi = 99\nallow_downgrade = [\"landlock\"]\n", "DOWNGRADE allowed by host config: landlock"),
    ] {
        std::fs::write(&config, format!("{base_config}{extra}")).expect("config");
        let out = hostd(&["policy", "show", "notes"], Some(&config));
        assert!(text(&out).contains(want), "{extra}: lacks {want:?}:\n{}", text(&out));
        let json: serde_json::Value = serde_json::from_slice(&hostd(&["policy", "show", "notes", "--json"], Some(&config)).stdout).expect("json");
        assert!(json["refused"].is_string() || !json["downgrades"].as_array().is_none_or(Vec::is_empty), "{extra}: not flagged in JSON");
    }
    std::fs::write(&config, &base_config).expect("config");

    // Every example module, straight from the tree (not installed, no
    // binary built yet): both forms print, the JSON fits the schema, and the
    // missing binary is reported as a verification failure.
    for dir in ["modules/examples/hello", "modules/examples/notes", "modules/mesh"] {
        let d = root.join(dir);
        let out = hostd(&["policy", "show", "--dir", d.to_str().unwrap_or_default(), "--json"], Some(&config));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{dir}: {e}: {}", text(&out)));
        let violations = schema_violations(&schema, &json);
        assert!(violations.is_empty(), "{dir}: schema violations:\n{}", violations.join("\n"));
        assert_eq!(json["verification"]["ok"], false, "{dir}: no binary, yet verified");
        let human = text(&hostd(&["policy", "show", "--dir", d.to_str().unwrap_or_default()], Some(&config)));
        assert!(human.contains("verification: FAILED") && human.contains("seccomp: default KillProcess"), "{dir}:\n{human}");
    }

    // The shipped Commons Mesh module: its real permissions, and what its
    // network access amounts to (its config.toml names the seed listener;
    // this host allows no bind, so hostd says it will refuse it).
    let mesh_dir = root.join("modules/mesh");
    let out = hostd(&["policy", "show", "--dir", mesh_dir.to_str().unwrap_or_default(), "--json"], Some(&config));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("mesh: {e}: {}", text(&out)));
    let perms: Vec<&str> = json["permissions"].as_array().map(|a| a.iter().filter_map(|p| p["name"].as_str().or(p.as_str())).collect()).unwrap_or_default();
    let mut want = ["network_access", "read_storage", "write_storage", "register_module_api", "call_module", "publish_events", "subscribe_events", "read_utxo", "read_chain_state"];
    want.sort_unstable();
    let mut got = perms.clone();
    got.sort_unstable();
    assert_eq!(got, want, "{:#}", json["permissions"]);
    assert_eq!(json["network"]["access"], true, "{:#}", json["network"]);
    assert_eq!(json["network"]["listen_addr"], "0.0.0.0:8334", "{:#}", json["network"]);
    assert!(json["network"]["listener"].as_str().is_some_and(|l| l.contains("outside [mesh] bind_allow")), "{:#}", json["network"]);
    let human = text(&hostd(&["policy", "show", "--dir", mesh_dir.to_str().unwrap_or_default()], Some(&config)));
    assert!(human.contains("mesh links through hostd (network_access)") && human.contains("permissions (9)"), "{human}");

    // Tampering after signing shows up in policy show and fails verify.
    let manifest = module.join("module.toml");
    let t = std::fs::read_to_string(&manifest).expect("read").replace("\"register_rpc_endpoint\",", "\"register_rpc_endpoint\", \"send_transactions\",");
    std::fs::write(&manifest, t).expect("tamper");
    let out = hostd(&["policy", "show", "--dir", module.to_str().unwrap_or_default(), "--json"], Some(&config));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["verification"]["ok"], false);
}
