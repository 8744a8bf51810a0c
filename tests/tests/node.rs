//! hostd attached to a real Bitcoin node (blvm-node on loopback regtest,
//! tests/src/regtest.rs), with real sandboxed modules asking for chain
//! data and receiving chain events.

use hostd_tests::daemon_env::{running, HostdEnv};
use hostd_tests::regtest::{craft_block, require_node, spend_op_true, RegtestNode};
use serde_json::json;
use std::time::{Duration, Instant};

const ALL_NODE_CAPS: &[&str] = &[
    "read_blockchain",
    "read_utxo",
    "read_chain_state",
    "read_mempool",
    "read_network",
    "send_transactions",
    "submit_block",
    "queue_inbound_block",
    "subscribe_events",
    "read_lightning",
];

fn gate(what: &str) -> bool {
    hostd_tests::require_daemon(what) && require_node(what)
}

/// A node with `blocks` mined, and a hostd using it with `c-chain`
/// (every node capability) installed and subscribed.
fn setup(tag: &str, blocks: u32, extra_node_toml: &str) -> (RegtestNode, HostdEnv) {
    let node = RegtestNode::start(tag);
    if blocks > 0 {
        node.mine(blocks);
    }
    let mut env = HostdEnv::new(tag, &format!("{}{extra_node_toml}", node.hostd_toml()));
    env.install_chainmod("c-chain", ALL_NODE_CAPS);
    env.start();
    env.wait_module("c-chain", "subscribed", Duration::from_secs(30), |m| running(m) && m["subscriptions"].as_array().is_some_and(|a| !a.is_empty()));
    wait_node(&env, "reachable with a tip", |n| n["reachable"] == true && n["tip_height"].as_u64().is_some());
    (node, env)
}

fn wait_node(env: &HostdEnv, what: &str, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = env.status()["hostd"]["node_backend"].clone();
        if pred(&n) {
            return n;
        }
        assert!(Instant::now() < deadline, "node status never {what}: {n:#}\n{}", env.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn q(env: &HostdEnv, module: &str, args: &[&str]) -> String {
    let mut full = vec!["module", module, "q"];
    full.extend_from_slice(args);
    env.ctl_ok(&full).trim().to_string()
}

/// The module's event lines (without their arrival stamps) of these types.
fn events(env: &HostdEnv, types: &[&str]) -> Vec<String> {
    env.ctl_ok(&["module", "c-chain", "events"])
        .lines()
        .filter(|l| types.iter().any(|t| l.split(' ').next() == Some(*t)))
        .map(|l| l.rsplit_once(" @").map(|(a, _)| a).unwrap_or(l).to_string())
        .collect()
}

fn wait_events(env: &HostdEnv, types: &[&str], what: &str, pred: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ev = events(env, types);
        if pred(&ev) {
            return ev;
        }
        assert!(Instant::now() < deadline, "{what}: events so far:\n{}\n{}", ev.join("\n"), env.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn s(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_string()
}

/// Every node request kind returns the node's own data, byte for byte;
/// a transaction sent through hostd shows up as mempool events and leaves
/// with the block that mines it; a block made outside the node goes in
/// through SubmitBlock and QueueInboundBlock; a module without
/// read_blockchain is refused with a node attached.
#[test]
fn every_node_request_returns_the_nodes_data() {
    if !gate("every_node_request_returns_the_nodes_data") {
        return;
    }
    let (node, env) = setup("node-requests", 101, "");
    let (tip, height) = node.tip();
    assert_eq!(q(&env, "c-chain", &["tip"]), format!("{tip} {height}"));
    assert_eq!(q(&env, "c-chain", &["height"]), height.to_string());
    assert_eq!(q(&env, "c-chain", &["info"]), format!("regtest {tip} {height} false"));
    let h1 = s(&node.call("getblockhash", json!([1])));
    assert_eq!(q(&env, "c-chain", &["block", &h1]), s(&node.call("getblock", json!([h1, 0]))));
    assert_eq!(q(&env, "c-chain", &["header", &h1]), s(&node.call("getblockheader", json!([h1, false]))));
    let unknown = "11".repeat(32);
    assert_eq!(q(&env, "c-chain", &["block", &unknown]), "none");
    assert_eq!(q(&env, "c-chain", &["header", &unknown]), "none");
    // Block 1's coinbase: confirmed transaction and its unspent output.
    let coinbase = s(&node.call("getblock", json!([h1, 1]))["tx"][0]);
    assert_eq!(q(&env, "c-chain", &["tx", &coinbase]), s(&node.call("getrawtransaction", json!([coinbase, false]))));
    assert_eq!(q(&env, "c-chain", &["hastx", &coinbase]), "true");
    assert_eq!(q(&env, "c-chain", &["hastx", &unknown]), "false");
    assert_eq!(q(&env, "c-chain", &["tx", &unknown]), "none");
    let out = node.call("gettxout", json!([coinbase, 0, true]));
    let value = (out["value"].as_f64().expect("value") * 1e8).round() as u64;
    assert_eq!(q(&env, "c-chain", &["utxo", &coinbase, "0"]), format!("{value} {} 1", s(&out["scriptPubKey"]["hex"])));
    assert_eq!(q(&env, "c-chain", &["utxo", &coinbase, "7"]), "none");
    // Spend it through hostd.
    let spend = spend_op_true(&coinbase, 0, value, 10_000);
    assert_eq!(q(&env, "c-chain", &["send", &spend]), "sent");
    let txid = s(&node.call("getrawmempool", json!([]))[0]);
    assert_eq!(q(&env, "c-chain", &["mempool"]), txid);
    assert_eq!(q(&env, "c-chain", &["mempooltx", &txid]), s(&node.call("getrawtransaction", json!([txid, false]))));
    assert_eq!(q(&env, "c-chain", &["mempooltx", &coinbase]), "none", "a confirmed transaction is not in the mempool");
    assert_eq!(q(&env, "c-chain", &["mempoolsize"]), node.call("getmempoolinfo", json!([]))["size"].to_string());
    assert_eq!(q(&env, "c-chain", &["utxo", &coinbase, "0"]), "none", "spent in the mempool");
    // The same transaction again: the node's rejection, typed.
    let again = q(&env, "c-chain", &["send", &spend]);
    assert!(again.starts_with("error Some(NodeRpcError)"), "{again}");
    match node.rpc("estimatesmartfee", json!([6, "conservative"])).ok().and_then(|v| v.get("feerate").and_then(|f| f.as_f64())) {
        Some(btc) => assert_eq!(q(&env, "c-chain", &["fee", "6"]), ((btc * 1e8).round() as u64).to_string()),
        None => assert!(q(&env, "c-chain", &["fee", "6"]).starts_with("error Some(NotFound)")),
    }
    let totals = node.call("getnettotals", json!([]));
    let peers = node.call("getconnectioncount", json!([]));
    assert_eq!(q(&env, "c-chain", &["netstats"]), format!("{peers} {} {}", totals["totalbytessent"], totals["totalbytesrecv"]));
    assert_eq!(q(&env, "c-chain", &["peers"]), format!("{} peers", node.call("getpeerinfo", json!([])).as_array().map(Vec::len).unwrap_or(99)));
    let lightning = q(&env, "c-chain", &["lightning"]);
    assert!(lightning.starts_with("error Some(NoLightningBackend)"), "{lightning}");

    // Mempool events: added (with a fee rate) and NewTransaction, then
    // removed once a block mines it.
    let mem = ["MempoolTransactionAdded", "NewTransaction", "MempoolTransactionRemoved", "NewBlock"];
    wait_events(&env, &mem, "the sent transaction was announced", |e| e.iter().any(|l| l.starts_with(&format!("NewTransaction {txid}"))));
    let mined = node.mine(1)[0].clone();
    let ev = wait_events(&env, &mem, "the mined transaction left the mempool", |e| e.iter().any(|l| l.starts_with("MempoolTransactionRemoved")));
    let added = ev.iter().find(|l| l.starts_with("MempoolTransactionAdded")).expect("added");
    let fields: Vec<&str> = added.split(' ').collect();
    assert_eq!(fields[1], txid);
    assert!(fields[2].parse::<u64>().is_ok_and(|f| f > 0), "a fee rate: {added}");
    let pos = |p: &str| ev.iter().position(|l| l.starts_with(p)).unwrap_or_else(|| panic!("{p} missing: {ev:#?}"));
    assert!(pos(&format!("NewBlock {mined}")) < pos(&format!("MempoolTransactionRemoved {txid}")), "{ev:#?}");
    assert_eq!(q(&env, "c-chain", &["mempool"]), "");

    // Blocks from outside the node's miner, through both requests.
    let (tip, height) = node.tip();
    let time = node.call("getblockheader", json!([tip, true]))["time"].as_u64().expect("time") as u32;
    let (raw, hash) = craft_block(&tip, height + 1, time + 1, 1);
    assert_eq!(q(&env, "c-chain", &["submit", &raw]), "accepted");
    assert_eq!(node.tip(), (hash.clone(), height + 1));
    let (raw2, hash2) = craft_block(&hash, height + 2, time + 2, 2);
    assert_eq!(q(&env, "c-chain", &["queue", &raw2]), "accepted");
    assert_eq!(node.tip().0, hash2);
    let dup = q(&env, "c-chain", &["submit", &raw]);
    assert!(dup.starts_with("error Some(NodeRpcError)") || dup == "accepted", "{dup}");
    wait_events(&env, &["NewBlock"], "crafted blocks announced", |e| e.last().is_some_and(|l| l.starts_with(&format!("NewBlock {hash2}"))));

    // Without the permission, a node attached changes nothing.
    env.install_chainmod("c-noperm", &["read_chain_state"]);
    env.ctl_ok(&["load", "c-noperm"]);
    let denied = q(&env, "c-noperm", &["block", &h1]);
    assert!(denied.starts_with("error Some(PermissionDenied)") && denied.contains("read_blockchain"), "{denied}");
    assert_eq!(q(&env, "c-noperm", &["height"]), (height + 2).to_string(), "the permission it has still works");
    let status = env.status().to_string();
    assert!(!status.contains(&std::fs::read_to_string(node.cookie()).expect("cookie").trim().split(':').nth(1).expect("password")[..16]), "status shows the cookie");
}

/// Every block mined while the module runs arrives once, in order; after
/// invalidateblock and a heavier branch: BlockDisconnected tip first, the
/// reorg with its fork point, then the new branch ascending. The node
/// killed: requests answer NodeUnreachable within the timeout, the event
/// is published, everything keeps running; restarted (with a new cookie):
/// hostd catches up without a restart.
#[test]
fn chain_events_follow_blocks_reorgs_and_node_outages() {
    if !gate("chain_events_follow_blocks_reorgs_and_node_outages") {
        return;
    }
    let (mut node, env) = setup("node-events", 10, "request_timeout_ms = 1000\nread_retries = 1\n");
    env.install_bystander();
    env.ctl_ok(&["load", "t-good"]);
    env.ctl_ok(&["load", "t-caller"]);
    env.wait_bystander();
    let blocks = ["NewBlock", "BlockDisconnected", "ChainReorg"];
    let mut mined = Vec::new();
    for _ in 0..5 {
        mined.extend(node.mine(1));
    }
    mined.extend(node.mine(3));
    let expect: Vec<String> = mined.iter().enumerate().map(|(i, h)| format!("NewBlock {h} {}", 11 + i)).collect();
    let ev = wait_events(&env, &blocks, "8 NewBlock", |e| e.len() >= 8);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(events(&env, &blocks), expect, "every block once, in order");
    assert_eq!(ev.len(), 8);

    // Reorg: abandon the last two blocks (17, 18) for a longer branch.
    // The branch is made here, not by the node's miner: within the same
    // second it would mine the very same blocks again.
    let fork = mined[5].clone(); // height 16
    node.call("invalidateblock", json!([mined[6]]));
    let mut time = node.call("getblockheader", json!([fork, true]))["time"].as_u64().expect("time") as u32;
    let mut branch: Vec<String> = Vec::new();
    for i in 0..3u8 {
        time += 1;
        let (raw, hash) = craft_block(branch.last().unwrap_or(&fork), 17 + i as u64, time, 0xb0 + i);
        assert!(node.call("submitblock", json!([raw])).is_null(), "the node takes branch block {i}");
        branch.push(hash);
    }
    assert_eq!(node.tip(), (branch[2].clone(), 19));
    let ev = wait_events(&env, &blocks, "the reorg", |e| e.last().is_some_and(|l| l.starts_with(&format!("NewBlock {}", branch[2]))));
    let tail: Vec<&String> = ev[8..].iter().collect();
    assert!(tail.len() >= 6, "{tail:#?}");
    assert_eq!(tail[0], &format!("BlockDisconnected {} 18", mined[7]), "tip first: {tail:#?}");
    assert_eq!(tail[1], &format!("BlockDisconnected {} 17", mined[6]), "{tail:#?}");
    assert!(tail[2].starts_with(&format!("ChainReorg {} ", mined[7])) && tail[2].ends_with(&format!(" {fork} 16 2")), "{tail:#?}");
    // The new tip may be the fork point (if hostd polled between the two
    // RPCs); the branch then arrives as NewBlocks anyway.
    let new_blocks: Vec<&&String> = tail[3..].iter().collect();
    let expect: Vec<String> = branch.iter().enumerate().map(|(i, h)| format!("NewBlock {h} {}", 17 + i)).collect();
    assert_eq!(new_blocks.iter().map(|s| s.to_string()).collect::<Vec<_>>(), expect, "new branch ascending: {tail:#?}");
    assert_eq!(env.status()["hostd"]["node_backend"]["reorgs"], 1);

    // Node killed.
    let hostd_pid = env.pid();
    let module_pid = env.module("c-chain")["pid"].clone();
    node.stop();
    let t = Instant::now();
    let answer = q(&env, "c-chain", &["tip"]);
    let took = t.elapsed();
    assert!(answer.starts_with("error Some(NodeUnreachable)"), "{answer}");
    assert!(!answer.contains("127.0.0.1") && !answer.contains("cookie"), "the module learns no address or credential: {answer}");
    assert!(took < Duration::from_millis(1000 + 400 + 500), "answered within the timeout (+ one retry): {took:?}");
    wait_events(&env, &["NodeUnreachable"], "NodeUnreachable published", |e| e.len() == 1);
    let n = wait_node(&env, "unreachable", |n| n["reachable"] == false);
    assert!(n["last_error"].as_str().is_some_and(|e| e.contains("unreachable")), "{n:#}");
    assert_eq!(env.ctl_ok(&["module", "t-caller", "call", "t-good", "x"]).trim(), "pong to t-caller: x", "other requests still served");
    // Restarted: a new cookie (re-read), blocks mined at once.
    node.restart();
    let after = node.mine(2);
    let ev = wait_events(&env, &["NewBlock", "NodeReachable"], "caught up", |e| e.last().is_some_and(|l| l.starts_with(&format!("NewBlock {}", after[1]))));
    let reachable = ev.iter().position(|l| l.starts_with("NodeReachable")).expect("NodeReachable published");
    let first_after = ev.iter().position(|l| l.starts_with(&format!("NewBlock {} 20", after[0]))).expect("the first block after the restart");
    assert!(reachable < first_after, "{ev:#?}");
    assert_eq!(ev.iter().filter(|l| l.starts_with(&format!("NewBlock {}", after[1]))).count(), 1);
    assert_eq!(env.pid(), hostd_pid);
    assert_eq!(env.module("c-chain")["pid"], module_pid, "the module kept running");
    assert_eq!(env.module("c-chain")["restarts"], 0);
}

/// Refused credentials and an unreadable cookie are errors at start-up
/// that name the config key; node requests answer NodeUnreachable; every
/// other request is still served. Controls: the same hostd with the right
/// credentials attaches.
#[test]
fn bad_node_credentials_are_named_and_nothing_else_breaks() {
    if !gate("bad_node_credentials_are_named_and_nothing_else_breaks") {
        return;
    }
    let node = RegtestNode::start("node-creds");
    let unreadable = node.scratch.0.join("root-only.cookie");
    std::fs::copy(node.cookie(), &unreadable).expect("copy cookie");
    let url = node.url();
    let password = std::fs::read_to_string(node.cookie()).expect("cookie").trim().split_once(':').expect("user:password").1.to_string();
    let cases = [
        (format!("rpc_user = \"__cookie__\"\nrpc_password = \"wrong-{}\"", &password[..8]), "node.rpc_user and node.rpc_password", "HTTP 401"),
        (format!("cookie_file = \"{}\"", unreadable.display()), "node.cookie_file", "ermission denied"),
        (format!("rpc_user = \"__cookie__\"\nrpc_password = \"{password}\""), "", ""),
        (format!("cookie_file = \"{}\"", node.cookie().display()), "", ""),
    ];
    for (creds, key, why) in cases {
        let mut env = HostdEnv::new("node-creds", &format!("\n[node]\nbackend = \"rpc\"\nrpc_url = \"{url}\"\n{creds}\n"));
        env.install_chainmod("c-chain", ALL_NODE_CAPS);
        env.install_bystander();
        env.start();
        env.wait_module("c-chain", "running", Duration::from_secs(30), running);
        env.wait_bystander();
        if key.is_empty() {
            wait_node(&env, "reachable", |n| n["reachable"] == true);
            assert_eq!(q(&env, "c-chain", &["height"]), node.tip().1.to_string(), "control: {creds}");
        } else {
            let n = wait_node(&env, "unreachable", |n| n["reachable"] == false);
            let err = n["last_error"].as_str().unwrap_or("").to_string();
            assert!(err.contains(key) && err.contains(why), "{creds}: {err}");
            let log = env.log();
            assert!(log.contains("ERROR") && log.contains(key), "the log names {key}: {log}");
            let answer = q(&env, "c-chain", &["height"]);
            assert!(answer.starts_with("error Some(NodeUnreachable)"), "{answer}");
            assert_eq!(env.ctl_ok(&["module", "t-caller", "call", "t-good", "x"]).trim(), "pong to t-caller: x");
        }
        let shown = format!("{}{}", env.status(), env.log());
        assert!(!shown.contains(&password), "status or log shows the password");
    }
}
