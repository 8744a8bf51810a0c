//! Chain, mempool, network, Lightning and payment queries go to the node
//! `[node]` names:
//! * `standalone` (the default): every such request answers a typed
//!   `NoNodeAttached`, so modules can tell "no node" from a failure;
//! * `rpc`: a Bitcoin Core-compatible JSON-RPC server (Core, blvm-node),
//!   reached over a small pool of keep-alive connections (`http`, `rpc`),
//!   requests mapped in `requests`, and chain/mempool/peer/link events
//!   from a poller (`poller`, `window`), the node having no push channel.
//!
//! Lightning and payment requests answer `NoLightningBackend` with a node
//! attached: hostd has no Lightning backend of its own.

pub mod http;
mod poller;
mod requests;
pub mod rpc;
mod window;

use crate::config::{NodeBackendKind, NodeSettings};
use hostd_protocol::{hash_to_hex, ErrorBody, ErrorCode, Hash32, Request, Response};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

pub enum Node {
    Standalone,
    Rpc(Arc<RpcNode>),
}

pub struct RpcNode {
    pub rpc: rpc::RpcClient,
    pub settings: NodeSettings,
    pub link: Mutex<LinkState>,
}

/// What the poller last saw, for `hostd status`.
#[derive(Default)]
pub struct LinkState {
    /// `None` until the first poll has answered or failed.
    pub reachable: Option<bool>,
    pub last_error: Option<String>,
    pub chain: Option<String>,
    pub tip: Option<(Hash32, u64)>,
    pub initial_block_download: bool,
    pub last_poll: Option<SystemTime>,
    pub window: (usize, usize),
    pub mempool_tracked: usize,
    pub mempool_truncated: bool,
    pub fee_sat_per_kvb: Option<u64>,
    pub peers: usize,
    pub reorgs: u64,
}

impl Node {
    pub fn from_config(settings: &NodeSettings) -> Result<Node, String> {
        Ok(match settings.backend {
            NodeBackendKind::Standalone => Node::Standalone,
            NodeBackendKind::Rpc => Node::Rpc(Arc::new(RpcNode {
                rpc: rpc::RpcClient::new(settings)?,
                settings: settings.clone(),
                link: Mutex::new(LinkState::default()),
            })),
        })
    }

    /// Start the poller that publishes chain, mempool, peer and link events.
    pub fn start(&self, host: &Arc<super::Host>) {
        if let Node::Rpc(node) = self {
            tokio::spawn(poller::run(node.clone(), Arc::downgrade(host)));
        }
    }

    /// Answer a node request (the hub has already checked permissions),
    /// holding one of the module's `[node] max_calls_per_module` slots.
    pub async fn query(&self, host: &super::Host, module: &str, req: &Request) -> Result<Response, ErrorBody> {
        let node = match self {
            Node::Standalone => {
                return Err(ErrorBody::new(
                    ErrorCode::NoNodeAttached,
                    format!("{} needs a Bitcoin node and this hostd runs standalone", req.kind()),
                ))
            }
            Node::Rpc(node) => node,
        };
        let slots = host.with_module(module, |s| s.node_slots.clone()).ok_or_else(|| ErrorBody::new(ErrorCode::Internal, "module not loaded"))?;
        let _slot = slots.acquire_owned().await.map_err(|_| ErrorBody::new(ErrorCode::Internal, "the module is being unloaded"))?;
        // What a frame to the module can carry of a raw result (headroom
        // for the response's own encoding).
        let max_bytes = (host.config.daemon.max_frame_bytes as usize).saturating_sub(64);
        requests::answer(&node.rpc, req, max_bytes).await
    }

    /// One line for the head of `hostd status`.
    pub fn describe(&self) -> String {
        match self {
            Node::Standalone => "standalone (no node attached)".into(),
            Node::Rpc(node) => {
                let l = super::lock(&node.link);
                let state = match (l.reachable, l.tip) {
                    (None, _) => "connecting".to_string(),
                    (Some(false), _) => format!("UNREACHABLE ({})", l.last_error.as_deref().unwrap_or("?")),
                    (Some(true), Some((hash, height))) => {
                        format!("{} tip {height} {}{}", l.chain.as_deref().unwrap_or("?"), hash_to_hex(&hash), if l.initial_block_download { " (initial block download)" } else { "" })
                    }
                    (Some(true), None) => "reachable, no tip yet".into(),
                };
                format!("rpc {} — {state}", node.settings.rpc_url)
            }
        }
    }

    /// `hostd status --json` → `hostd.node_backend`. Never a credential.
    pub fn status_json(&self) -> Value {
        let Node::Rpc(node) = self else { return json!({"backend": "standalone"}) };
        let l = super::lock(&node.link);
        let ago_ms = l.last_poll.and_then(|t| t.elapsed().ok()).map(|d| d.as_millis() as u64);
        json!({
            "backend": "rpc",
            "url": node.settings.rpc_url,
            "auth": if node.settings.cookie_file.is_some() { "cookie" } else { "user/password" },
            "reachable": l.reachable,
            "last_error": l.last_error,
            "chain": l.chain,
            "tip_height": l.tip.map(|t| t.1),
            "tip_hash": l.tip.map(|t| hash_to_hex(&t.0)),
            "initial_block_download": l.initial_block_download,
            "last_poll_ms_ago": ago_ms,
            "header_window": {"blocks": l.window.0, "cap": l.window.1},
            "mempool_tracked": l.mempool_tracked,
            "mempool_truncated": l.mempool_truncated,
            "fee_sat_per_kvb": l.fee_sat_per_kvb,
            "peers": l.peers,
            "reorgs": l.reorgs,
            "rpc": node.rpc.counters.json(),
        })
    }
}
