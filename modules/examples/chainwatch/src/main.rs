//! Example module `chainwatch`: follows the node's chain through hostd.
//! It subscribes to the chain events, checks each new block's 80-byte
//! header links to the block before it, keeps the last `keep` blocks it
//! saw, and counts reorgs in its storage (so the count survives restarts).
//! `hostd module chainwatch tip [n]` answers with the tip and the last n
//! blocks. Built only on the SDK; standalone hostd (no node) is fine too:
//! it says so and waits.

use hostd_protocol::{hash_to_hex, EventPayload, Hash32};
use hostd_sdk::{CliArg, CliCommand, CliSpec, Client, ErrorBody, ErrorCode, EventType, Incoming, Invocation, SdkError};
use std::collections::VecDeque;

const REORGS_KEY: &[u8] = b"reorgs";

struct Seen {
    /// (height, hash, header links to the previous block seen)
    blocks: VecDeque<(u64, Hash32, Option<bool>)>,
    keep: usize,
    reorgs: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("chainwatch: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), SdkError> {
    let (client, mut incoming) = hostd_sdk::connect("chainwatch", env!("CARGO_PKG_VERSION")).await?;
    client
        .register_cli_spec(CliSpec {
            about: "Follows the node's chain".into(),
            commands: vec![CliCommand {
                name: "tip".into(),
                about: "The tip, the last blocks seen and the reorgs counted".into(),
                args: vec![CliArg { name: "n".into(), help: "how many recent blocks (default 10)".into(), required: false }],
            }],
        })
        .await?;
    let keep = client.config()?.get("keep").and_then(|v| v.as_integer()).unwrap_or(20).clamp(1, 10_000) as usize;
    let stored = client.storage_get("default", REORGS_KEY).await?;
    let reorgs = stored.and_then(|b| b.try_into().ok()).map(u64::from_le_bytes).unwrap_or(0);
    let mut seen = Seen { blocks: VecDeque::new(), keep, reorgs };
    client
        .subscribe_events(vec![EventType::NewBlock, EventType::BlockDisconnected, EventType::ChainReorg, EventType::NodeUnreachable, EventType::NodeReachable])
        .await?;
    match client.get_chain_tip().await {
        Ok((hash, height)) => client.info(&format!("following the chain from height {height} ({})", hash_to_hex(&hash))),
        Err(e) if e.code() == Some(ErrorCode::NoNodeAttached) => client.info("hostd runs standalone (no node): waiting"),
        Err(e) => client.warn(&format!("no chain tip yet: {e}")),
    }
    while let Some(msg) = incoming.next().await {
        match msg {
            Incoming::Event(ev) => on_event(&client, &mut seen, ev.event_type, ev.payload).await,
            Incoming::Invoke(call) => {
                let result = match &call.invocation {
                    Invocation::Cli { command, args } if command == "tip" => {
                        let n = args.first().and_then(|a| a.parse().ok()).unwrap_or(10);
                        Ok(report(&client, &seen, n).await.into_bytes())
                    }
                    other => Err(ErrorBody::new(ErrorCode::Unsupported, format!("chainwatch does not handle {other:?}"))),
                };
                call.reply(result);
            }
            Incoming::Shutdown { .. } => break,
            _ => {}
        }
    }
    Ok(())
}

async fn on_event(client: &Client, seen: &mut Seen, ty: EventType, payload: EventPayload) {
    match (ty, payload) {
        (EventType::NewBlock, EventPayload::Block { hash, height }) => {
            // Bytes 4..36 of a header are its parent's hash (internal order,
            // as every hash in hostd's protocol).
            let links = match (seen.blocks.back(), client.get_block_header(hash).await) {
                (Some(&(h, prev, _)), Ok(Some(header))) if h + 1 == height && header.len() == 80 => Some(header[4..36] == prev),
                _ => None,
            };
            if links == Some(false) {
                client.warn(&format!("block {height} does not extend the block before it"));
            }
            seen.blocks.push_back((height, hash, links));
            while seen.blocks.len() > seen.keep {
                seen.blocks.pop_front();
            }
        }
        (EventType::BlockDisconnected, EventPayload::Block { hash, .. }) => seen.blocks.retain(|b| b.1 != hash),
        (EventType::ChainReorg, EventPayload::ChainReorg { depth, fork_height, .. }) => {
            seen.reorgs += 1;
            client.info(&format!("reorg #{}: {depth} block(s) abandoned above height {}", seen.reorgs, fork_height.map(|h| h.to_string()).unwrap_or("(below what hostd keeps)".into())));
            if let Err(e) = client.storage_put("default", REORGS_KEY, &seen.reorgs.to_le_bytes()).await {
                client.warn(&format!("could not store the reorg count: {e}"));
            }
        }
        (EventType::NodeUnreachable, _) => client.warn("the node is unreachable; waiting for it"),
        (EventType::NodeReachable, EventPayload::NodeLink { height, .. }) => client.info(&format!("the node is back at height {}", height.unwrap_or(0))),
        _ => {}
    }
}

async fn report(client: &Client, seen: &Seen, n: usize) -> String {
    let mut out = match client.get_chain_tip().await {
        Ok((hash, height)) => format!("tip {height} {}\n", hash_to_hex(&hash)),
        Err(e) => format!("tip unknown: {e}\n"),
    };
    if let Ok(size) = client.get_mempool_size().await {
        out += &format!("mempool {size} transactions\n");
    }
    out += &format!("reorgs seen {}\nlast {} blocks seen (of {}):\n", seen.reorgs, n.min(seen.blocks.len()), seen.blocks.len());
    for (height, hash, links) in seen.blocks.iter().rev().take(n) {
        let check = match links {
            Some(true) => "links to the block before",
            Some(false) => "DOES NOT LINK",
            None => "",
        };
        out += &format!("  {height:>7} {} {check}\n", hash_to_hex(hash));
    }
    out
}
