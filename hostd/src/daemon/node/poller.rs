//! The node has no push channel hostd can use (no ZMQ in blvm-node, none
//! configured in most Core setups), so hostd polls it and publishes what
//! changed:
//! * every `poll_interval_ms`: the tip (one getblockchaininfo); a new tip
//!   is walked back by previous-block hash to the window (`window.rs`) →
//!   BlockDisconnected…, ChainReorg, NewBlock… (at most `header_window`
//!   blocks per poll: a longer catch-up continues at the next poll);
//! * every `mempool_poll_ms`: the txid set → MempoolTransactionAdded (+
//!   NewTransaction) and MempoolTransactionRemoved;
//! * every `slow_poll_ms`: the fee estimate (FeeRateChanged), peers
//!   (PeerConnected/PeerDisconnected) and, in initial block download,
//!   BlockSyncProgress.
//!
//! A failed poll marks the node unreachable (NodeUnreachable, once); the
//! next good one publishes NodeReachable with its tip and then catches up.

use super::requests::{chain_info, entry_fee_rate, fee_estimate, hash, mempool_txids, peers};
use super::rpc::RpcError;
use super::window::{ChainChange, Window};
use super::RpcNode;
use crate::daemon::{lock, Host};
use hostd_protocol::{hash_to_hex, Event, EventPayload, EventType, Hash32, PeerInfo};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

struct Poller {
    node: Arc<RpcNode>,
    window: Window,
    mempool: Option<HashSet<Hash32>>,
    /// `None`: not seen yet (the first sighting is a baseline, not a change).
    fee: Option<Option<u64>>,
    peers: Option<BTreeMap<u64, PeerInfo>>,
    ibd: bool,
}

pub async fn run(node: Arc<RpcNode>, host: Weak<Host>) {
    let s = node.settings.clone();
    let mut p = Poller { window: Window::new(s.header_window as usize), node, mempool: None, fee: None, peers: None, ibd: false };
    let mut tick = tokio::time::interval(Duration::from_millis(s.poll_interval_ms as u64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut next_mempool, mut next_slow) = (Instant::now(), Instant::now());
    loop {
        tick.tick().await;
        let Some(host) = host.upgrade() else { return };
        let mut result = p.poll_tip(&host).await;
        if result.is_ok() && Instant::now() >= next_mempool {
            next_mempool = Instant::now() + Duration::from_millis(s.mempool_poll_ms as u64);
            result = p.poll_mempool(&host).await;
        }
        if result.is_ok() && Instant::now() >= next_slow {
            next_slow = Instant::now() + Duration::from_millis(s.slow_poll_ms as u64);
            result = p.poll_slow(&host).await;
        }
        p.record(&host, result);
    }
}

fn publish(host: &Host, event_type: EventType, payload: EventPayload) {
    host.bus.publish(Event { event_type, publisher: None, payload });
}

impl Poller {
    /// Link state, status, and the reachable/unreachable events.
    fn record(&mut self, host: &Host, result: Result<(), RpcError>) {
        let mut l = lock(&self.node.link);
        l.last_poll = Some(SystemTime::now());
        l.window = (self.window.len(), self.window.cap());
        match result {
            Ok(()) => {
                if l.reachable.is_none() {
                    let tip = self.window.tip().or(l.tip);
                    tracing::info!(url = %self.node.settings.rpc_url, chain = ?l.chain, tip = ?tip.map(|t| t.1), "node attached");
                }
                l.reachable = Some(true);
                l.last_error = None;
            }
            Err(e) => {
                let detail = e.to_string();
                if l.reachable != Some(false) || l.last_error.as_deref() != Some(detail.as_str()) {
                    // Credentials are the operator's to fix: said as an
                    // error naming the key; a node that is down, as a warning.
                    match e {
                        RpcError::AuthRefused { .. } | RpcError::Cookie { .. } => tracing::error!(url = %self.node.settings.rpc_url, "node requests fail: {detail}"),
                        _ => tracing::warn!(url = %self.node.settings.rpc_url, "node unreachable: {detail}; node requests answer NodeUnreachable until it is back"),
                    }
                }
                if l.reachable != Some(false) {
                    // Modules are told that it is gone, not where it was.
                    publish(host, EventType::NodeUnreachable, EventPayload::NodeLink { reachable: false, tip: l.tip.map(|t| t.0), height: l.tip.map(|t| t.1), detail: e.class().into() });
                }
                l.reachable = Some(false);
                l.last_error = Some(detail);
            }
        }
    }

    async fn poll_tip(&mut self, host: &Host) -> Result<(), RpcError> {
        let rpc = &self.node.rpc;
        let info = chain_info(rpc).await?;
        {
            let mut l = lock(&self.node.link);
            // Back after an outage: said first, with the tip it came back
            // at, before the blocks it brings.
            if l.reachable == Some(false) {
                tracing::info!(height = info.height, "node reachable again");
                publish(host, EventType::NodeReachable, EventPayload::NodeLink { reachable: true, tip: Some(info.tip), height: Some(info.height), detail: String::new() });
                l.reachable = Some(true);
                l.last_error = None;
            }
            l.chain = Some(info.network.clone());
            l.initial_block_download = info.initial_block_download;
            if self.window.is_empty() || info.initial_block_download {
                l.tip = Some((info.tip, info.height));
            }
        }
        if info.initial_block_download {
            // Thousands of blocks a poll: progress events instead of one
            // NewBlock each; the window is seeded again at the end.
            if !self.ibd {
                tracing::info!(height = info.height, "node in initial block download: publishing BlockSyncProgress, not NewBlock");
            }
            self.ibd = true;
            self.window.clear();
            return Ok(());
        }
        self.ibd = false;
        if self.window.tip().map(|t| t.0) == Some(info.tip) {
            return Ok(());
        }
        // More new blocks than the window holds: take them a window at a
        // time, from the block that far above what hostd has.
        let mut target = info.tip;
        if let Some((_, h)) = self.window.tip() {
            let step = self.window.cap() as u64;
            if info.height > h + step {
                target = hash(&rpc.read("getblockhash", json!([h + step])).await?, "getblockhash")?;
            }
        }
        let (walked, fork) = self.walk(target).await?;
        let seeding = self.window.is_empty();
        let changes = self.window.apply(walked, fork);
        if seeding {
            tracing::info!(blocks = self.window.len(), tip = ?self.window.tip().map(|t| t.1), "chain window seeded");
        }
        for change in changes {
            match change {
                ChainChange::Disconnected { hash, height } => publish(host, EventType::BlockDisconnected, EventPayload::Block { hash, height }),
                ChainChange::Reorg { old_tip, new_tip, fork_point, fork_height, depth } => {
                    tracing::warn!(depth, fork_height, old_tip = %hash_to_hex(&old_tip), new_tip = %hash_to_hex(&new_tip), "chain reorganisation{}", if fork_point.is_none() { " deeper than the header window" } else { "" });
                    lock(&self.node.link).reorgs += 1;
                    publish(host, EventType::ChainReorg, EventPayload::ChainReorg { old_tip, new_tip, fork_point, fork_height, depth });
                }
                ChainChange::Connected { hash, height } => publish(host, EventType::NewBlock, EventPayload::Block { hash, height }),
            }
        }
        lock(&self.node.link).tip = self.window.tip();
        Ok(())
    }

    /// From `from` back by previous-block hash until a block of the window
    /// (the fork point), the window's capacity, or genesis.
    async fn walk(&self, from: Hash32) -> Result<(Vec<(Hash32, u64)>, Option<Hash32>), RpcError> {
        let mut walked = Vec::new();
        let mut cur = from;
        loop {
            if self.window.contains(&cur) {
                return Ok((walked, Some(cur)));
            }
            if walked.len() >= self.window.cap() {
                return Ok((walked, None));
            }
            let h = self.node.rpc.read("getblockheader", json!([hash_to_hex(&cur), true])).await?;
            let height = h["height"].as_u64().ok_or_else(|| RpcError::BadReply("getblockheader.height".into()))?;
            walked.push((cur, height));
            // Below the window's lowest block and still not in it: the fork
            // is deeper than hostd remembers.
            if self.window.lowest_height().is_some_and(|low| height <= low) {
                return Ok((walked, None));
            }
            // Genesis: Core omits previousblockhash, blvm-node gives zeros.
            if height == 0 {
                return Ok((walked, None));
            }
            cur = hash(&h["previousblockhash"], "getblockheader.previousblockhash")?;
        }
    }

    async fn poll_mempool(&mut self, host: &Host) -> Result<(), RpcError> {
        let s = &self.node.settings;
        let mut txids = mempool_txids(&self.node.rpc).await?;
        let size = txids.len() as u64;
        let truncated = txids.len() > s.max_mempool_tracked as usize;
        if truncated {
            // A stable subset (lowest txids), so the diff does not churn.
            txids.sort_unstable();
            txids.truncate(s.max_mempool_tracked as usize);
        }
        let now: HashSet<Hash32> = txids.into_iter().collect();
        if let Some(prev) = &self.mempool {
            for txid in prev.difference(&now) {
                publish(host, EventType::MempoolTransactionRemoved, EventPayload::MempoolTransaction { txid: *txid, fee_rate_sat_per_kvb: None, mempool_size: size });
            }
            let added: Vec<Hash32> = now.difference(prev).copied().collect();
            for (i, txid) in added.iter().enumerate() {
                let fee = if i < s.max_fee_lookups as usize { entry_fee_rate(&self.node.rpc, txid).await? } else { None };
                publish(host, EventType::MempoolTransactionAdded, EventPayload::MempoolTransaction { txid: *txid, fee_rate_sat_per_kvb: fee, mempool_size: size });
                publish(host, EventType::NewTransaction, EventPayload::Transaction { txid: *txid });
            }
        }
        let mut l = lock(&self.node.link);
        if truncated && !l.mempool_truncated {
            tracing::warn!(size, tracked = s.max_mempool_tracked, "mempool larger than [node] max_mempool_tracked: add/remove events cover only part of it");
        }
        l.mempool_truncated = truncated;
        l.mempool_tracked = now.len();
        self.mempool = Some(now);
        Ok(())
    }

    async fn poll_slow(&mut self, host: &Host) -> Result<(), RpcError> {
        let rpc = &self.node.rpc;
        let fee = fee_estimate(rpc, self.node.settings.fee_target_blocks).await?;
        if let Some(old) = self.fee {
            if old != fee {
                publish(host, EventType::FeeRateChanged, EventPayload::FeeRateChanged { old_sat_per_kvb: old, new_sat_per_kvb: fee });
            }
        }
        self.fee = Some(fee);
        let now: BTreeMap<u64, PeerInfo> = peers(rpc).await?.into_iter().map(|p| (p.id, p)).collect();
        if let Some(prev) = &self.peers {
            for (id, p) in prev.iter().filter(|(id, _)| !now.contains_key(id)) {
                publish(host, EventType::PeerDisconnected, EventPayload::Peer { id: *id, address: p.address.clone(), inbound: p.inbound });
            }
            for (id, p) in now.iter().filter(|(id, _)| !prev.contains_key(id)) {
                publish(host, EventType::PeerConnected, EventPayload::Peer { id: *id, address: p.address.clone(), inbound: p.inbound });
            }
        }
        {
            let mut l = lock(&self.node.link);
            l.fee_sat_per_kvb = fee;
            l.peers = now.len();
        }
        self.peers = Some(now);
        if self.ibd {
            let v = rpc.read("getblockchaininfo", json!([])).await?;
            publish(
                host,
                EventType::BlockSyncProgress,
                EventPayload::SyncProgress {
                    blocks: v["blocks"].as_u64().unwrap_or(0),
                    headers: v["headers"].as_u64().unwrap_or(0),
                    verification_progress: v["verificationprogress"].as_f64().unwrap_or(0.0),
                },
            );
        }
        Ok(())
    }
}
