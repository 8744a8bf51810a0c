//! A module for the real-node tests: records every chain, mempool and
//! node event it receives (with the time it arrived) and runs any node
//! request on command, printing results as hex so a test can compare
//! them byte for byte with the node's own RPC.
//!
//! CLI: `events` (one line per event, oldest first), `q <what> [args]`,
//! `bench <tip|header|ipc> <n> [hash]` (request latencies, µs: p50 p95).

use hostd_protocol::{hash_from_hex, hash_to_hex, EventPayload};
use hostd_sdk::{Client, CliArg, CliCommand, CliSpec, ErrorBody, ErrorCode, EventType, Incoming, Invocation, SdkError};
use std::sync::Mutex;

static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn now_us() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0)
}

fn hx(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn line(ty: EventType, p: &EventPayload) -> String {
    let h = |x: &[u8; 32]| hash_to_hex(x);
    let rest = match p {
        EventPayload::Block { hash, height } => format!("{} {height}", h(hash)),
        EventPayload::Transaction { txid } => h(txid),
        EventPayload::ChainReorg { old_tip, new_tip, fork_point, fork_height, depth } => {
            format!("{} {} {} {} {depth}", h(old_tip), h(new_tip), fork_point.map(|f| h(&f)).unwrap_or("-".into()), fork_height.map(|f| f.to_string()).unwrap_or("-".into()))
        }
        EventPayload::MempoolTransaction { txid, fee_rate_sat_per_kvb, mempool_size } => {
            format!("{} {} {mempool_size}", h(txid), fee_rate_sat_per_kvb.map(|f| f.to_string()).unwrap_or("-".into()))
        }
        EventPayload::NodeLink { tip, height, detail, .. } => format!("{} {} {detail}", tip.map(|t| h(&t)).unwrap_or("-".into()), height.map(|x| x.to_string()).unwrap_or("-".into())),
        other => format!("{other:?}"),
    };
    format!("{ty} {rest} @{}", now_us())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let name = std::env::var("HOSTD_MODULE").unwrap_or_else(|_| "c-chain".into());
    let (client, mut incoming) = match hostd_sdk::connect(&name, "1.0.0").await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chainmod: {e}");
            std::process::exit(1);
        }
    };
    let arg = |n: &str| CliArg { name: n.into(), help: String::new(), required: false };
    let cmd = |n: &str| CliCommand { name: n.into(), about: String::new(), args: vec![arg("a"), arg("b"), arg("c")] };
    let _ = client.register_cli_spec(CliSpec { about: "chain test module".into(), commands: vec![cmd("events"), cmd("q"), cmd("bench")] }).await;
    use EventType as E;
    let types = vec![
        E::NewBlock,
        E::BlockDisconnected,
        E::ChainReorg,
        E::NewTransaction,
        E::MempoolTransactionAdded,
        E::MempoolTransactionRemoved,
        E::FeeRateChanged,
        E::PeerConnected,
        E::PeerDisconnected,
        E::NodeUnreachable,
        E::NodeReachable,
    ];
    if let Err(e) = client.subscribe_events(types).await {
        eprintln!("chainmod: subscribe: {e}");
    }
    while let Some(msg) = incoming.next().await {
        match msg {
            Incoming::Event(e) => EVENTS.lock().unwrap_or_else(|p| p.into_inner()).push(line(e.event_type, &e.payload)),
            Incoming::Invoke(call) => {
                let result = match &call.invocation {
                    Invocation::Cli { command, args } => Ok(cli(&client, command, args).await.into_bytes()),
                    _ => Err(ErrorBody::new(ErrorCode::Unsupported, "CLI only")),
                };
                call.reply(result);
            }
            Incoming::Shutdown { .. } => break,
            _ => {}
        }
    }
}

fn show<T>(r: Result<T, SdkError>, f: impl FnOnce(T) -> String) -> String {
    match r {
        Ok(v) => f(v),
        Err(e) => format!("error {:?}: {e}", e.code()),
    }
}

fn opt_hex(b: Option<Vec<u8>>) -> String {
    b.map(|b| hx(&b)).unwrap_or_else(|| "none".into())
}

async fn cli(client: &Client, command: &str, args: &[String]) -> String {
    let a = |i: usize| args.get(i).cloned().unwrap_or_default();
    let hash = |i: usize| hash_from_hex(&a(i)).unwrap_or([0; 32]);
    let bytes = |i: usize| (0..a(i).len() / 2).filter_map(|j| u8::from_str_radix(a(i).get(2 * j..2 * j + 2)?, 16).ok()).collect::<Vec<u8>>();
    match (command, a(0).as_str()) {
        ("events", _) => EVENTS.lock().unwrap_or_else(|p| p.into_inner()).join("\n"),
        ("q", "block") => show(client.get_block(hash(1)).await, opt_hex),
        ("q", "header") => show(client.get_block_header(hash(1)).await, opt_hex),
        ("q", "tx") => show(client.get_transaction(hash(1)).await, opt_hex),
        ("q", "hastx") => show(client.has_transaction(hash(1)).await, |b| b.to_string()),
        ("q", "utxo") => show(client.get_utxo(hash(1), a(2).parse().unwrap_or(0)).await, |u| match u {
            Some(u) => format!("{} {} {}", u.value_sat, hx(&u.script_pubkey), u.height),
            None => "none".into(),
        }),
        ("q", "tip") => show(client.get_chain_tip().await, |(h, n)| format!("{} {n}", hash_to_hex(&h))),
        ("q", "height") => show(client.get_block_height().await, |n| n.to_string()),
        ("q", "info") => show(client.get_chain_info().await, |i| format!("{} {} {} {}", i.network, hash_to_hex(&i.tip), i.height, i.initial_block_download)),
        ("q", "send") => show(client.send_transaction(bytes(1)).await, |_| "sent".into()),
        ("q", "mempool") => show(client.get_mempool_transactions().await, |t| {
            let mut v: Vec<String> = t.iter().map(hash_to_hex).collect();
            v.sort();
            v.join(" ")
        }),
        ("q", "mempooltx") => show(client.get_mempool_transaction(hash(1)).await, opt_hex),
        ("q", "mempoolsize") => show(client.get_mempool_size().await, |n| n.to_string()),
        ("q", "fee") => show(client.get_fee_estimate(a(1).parse().unwrap_or(6)).await, |f| f.to_string()),
        ("q", "netstats") => show(client.get_network_stats().await, |s| format!("{} {} {}", s.peers, s.bytes_sent, s.bytes_received)),
        ("q", "peers") => show(client.get_network_peers().await, |p| format!("{} peers", p.len())),
        ("q", "submit") => show(client.submit_block(bytes(1)).await, |_| "accepted".into()),
        ("q", "queue") => show(client.queue_inbound_block(bytes(1)).await, |_| "accepted".into()),
        ("q", "lightning") => show(client.get_lightning_info().await, |t| t),
        ("bench", what) => {
            let n: usize = a(1).parse().unwrap_or(1000);
            let mut us = Vec::with_capacity(n);
            for _ in 0..n {
                let t = std::time::Instant::now();
                let ok = match what {
                    "header" => client.get_block_header(hash(2)).await.is_ok(),
                    // A request hostd answers itself at once: the IPC round
                    // trip the node requests are compared with.
                    "ipc" => client.unsubscribe_events(vec![]).await.is_ok(),
                    _ => client.get_chain_tip().await.is_ok(),
                };
                if !ok {
                    return "error during bench".into();
                }
                us.push(t.elapsed().as_micros() as u64);
            }
            us.sort_unstable();
            format!("{} {}", us[n / 2], us[n * 95 / 100])
        }
        _ => format!("unknown command {command} {args:?}"),
    }
}
