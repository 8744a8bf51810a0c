//! What payments keep in module storage (tree `default`):
//!
//! - `pay/<hash>` → keep-until (unix ms): a payment hash that verified
//!   here. Looked up in storage for every paid packet, so the check is as
//!   complete as the store after any restart, however many entries it
//!   holds (no bounded scan has to load it).
//! - `payx/<keep-until u64>/<hash>`: the same entry indexed by the time it
//!   may go; pruning deletes from the oldest until it meets a future one,
//!   so it is complete whatever hostd's scan limits are.
//! - `ledger` (mesh_api::Ledger), `paycount` (entries held), and
//!   `budget/<module>` (window start, sats spent) for each paying caller.
//!
//! An entry is written in one batch with the ledger after the proof
//! verified and before the packet goes on.

use super::{Ctx, RunError};
use crate::node::store::TREE;
use commons_mesh::mesh_api::{decode, encode, Ledger};
use commons_mesh::now_ms;
use hostd_sdk::protocol::BatchOp;
use hostd_sdk::{Client, SdkError};
use std::collections::HashMap;
use std::time::Duration;

const PAY: &[u8] = b"pay/";
const PAY_INDEX: &[u8] = b"payx/";
const KEY_LEDGER: &[u8] = b"ledger";
const KEY_COUNT: &[u8] = b"paycount";
const BUDGET: &[u8] = b"budget/";
/// Entries deleted per batch while pruning.
const PRUNE_BATCH: u32 = 512;

fn storage(e: SdkError) -> RunError {
    RunError::Storage(e.to_string())
}

fn index_key(until_ms: u64, hash: &[u8; 32]) -> Vec<u8> {
    [PAY_INDEX, &until_ms.to_be_bytes()[..], b"/", hash].concat()
}

/// Ledger, entries held, and each caller's (window start s, spent sats).
pub async fn load(client: &Client) -> Result<(Ledger, u64, HashMap<String, (u64, u64)>), RunError> {
    let ledger = match client.storage_get(TREE, KEY_LEDGER).await.map_err(storage)? {
        Some(b) => decode(&b).map_err(|e| RunError::Storage(format!("the stored payment ledger is damaged ({e}); fix or delete key \"ledger\"")))?,
        None => Ledger::default(),
    };
    let count = client.storage_get(TREE, KEY_COUNT).await.map_err(storage)?.and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).unwrap_or(0);
    let mut budgets = HashMap::new();
    for (k, v) in client.storage_iter_prefix(TREE, BUDGET, 10_000).await.map_err(storage)? {
        let module = String::from_utf8_lossy(&k[BUDGET.len()..]).into_owned();
        if let (Ok(a), Ok(b)) = (<[u8; 8]>::try_from(v.get(..8).unwrap_or(&[])), <[u8; 8]>::try_from(v.get(8..).unwrap_or(&[]))) {
            budgets.insert(module, (u64::from_be_bytes(a), u64::from_be_bytes(b)));
        }
    }
    Ok((ledger, count, budgets))
}

/// Whether `hash` verified here before (and is not yet pruned).
pub async fn seen(client: &Client, hash: &[u8; 32]) -> Result<bool, SdkError> {
    Ok(client.storage_get(TREE, &[PAY, hash].concat()).await?.is_some())
}

/// The batch that records a verified payment hash with the ledger after it.
pub fn record_ops(hash: &[u8; 32], keep_until_ms: u64, ledger: &Ledger, count: u64) -> Vec<BatchOp> {
    vec![
        BatchOp::Put { key: [PAY, hash].concat(), value: keep_until_ms.to_be_bytes().to_vec() },
        BatchOp::Put { key: index_key(keep_until_ms, hash), value: Vec::new() },
        ledger_op(ledger),
        BatchOp::Put { key: KEY_COUNT.to_vec(), value: count.to_be_bytes().to_vec() },
    ]
}

pub fn ledger_op(ledger: &Ledger) -> BatchOp {
    BatchOp::Put { key: KEY_LEDGER.to_vec(), value: encode(ledger) }
}

pub fn budget_op(module: &str, window_start_s: u64, spent: u64) -> BatchOp {
    BatchOp::Put { key: [BUDGET, module.as_bytes()].concat(), value: [window_start_s.to_be_bytes(), spent.to_be_bytes()].concat() }
}

/// Delete every entry whose time has passed, oldest first (index keys
/// sort by time). A scan cut short by hostd's limits leaves the rest for
/// the next tick.
async fn prune_once(ctx: &Ctx, now: u64) -> Result<(), SdkError> {
    loop {
        let entries = ctx.client.storage_iter_prefix(TREE, PAY_INDEX, PRUNE_BATCH).await?;
        let (mut ops, mut removed, mut reached_future) = (Vec::new(), 0u64, false);
        for (k, _) in &entries {
            let rest = &k[PAY_INDEX.len()..];
            let (Some(until), Some(hash)) = (rest.get(..8).and_then(|t| <[u8; 8]>::try_from(t).ok()), rest.get(9..41)) else {
                ops.push(BatchOp::Delete { key: k.clone() });
                continue;
            };
            if u64::from_be_bytes(until) > now {
                reached_future = true;
                break;
            }
            ops.push(BatchOp::Delete { key: k.clone() });
            ops.push(BatchOp::Delete { key: [PAY, hash].concat() });
            removed += 1;
        }
        if ops.is_empty() {
            return Ok(());
        }
        let count = {
            let mut n = ctx.node();
            n.pay.replay_count = n.pay.replay_count.saturating_sub(removed);
            n.pay.pruned += removed;
            n.pay.replay_count
        };
        ops.push(BatchOp::Put { key: KEY_COUNT.to_vec(), value: count.to_be_bytes().to_vec() });
        ctx.client.storage_batch(TREE, ops).await?;
        if reached_future || (entries.len() as u32) < PRUNE_BATCH {
            return Ok(());
        }
    }
}

/// The prune timer.
pub async fn pruner(ctx: Ctx) {
    let every = Duration::from_millis(ctx.node().settings.payments.replay_prune_ms);
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = prune_once(&ctx, now_ms()).await {
            ctx.client.warn(&format!("pruning payment hashes: {e}"));
        }
    }
}
