//! `[node]` in the host config: which Bitcoin node hostd serves chain,
//! mempool and network requests from, and how it talks to it.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum NodeBackendKind {
    /// No node: node requests answer `NoNodeAttached`.
    #[default]
    Standalone,
    /// A Bitcoin Core-compatible JSON-RPC server (Core, blvm-node).
    Rpc,
}

/// A value hostd uses but never shows: `Debug`, status, `policy show` and
/// any serialization print `<redacted>`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NodeSettings {
    pub backend: NodeBackendKind,
    /// The node's JSON-RPC URL, `http://host:port`.
    pub rpc_url: String,
    /// Core's `.cookie` (`__cookie__:<password>`), re-read when it changes
    /// (the node writes a new one at each start). hostd reads it as its
    /// unprivileged user: make it readable to that user (Core:
    /// `-rpccookieperms=group` and hostd in the node's group).
    pub cookie_file: Option<PathBuf>,
    /// Or a fixed user and password (Core's `rpcauth`/`rpcuser`).
    pub rpc_user: Option<String>,
    pub rpc_password: Option<Secret>,
    /// One RPC exchange, waiting for a pooled connection included.
    pub request_timeout_ms: u32,
    /// Attempts after the first for reads that failed to reach the node
    /// (never for sends: a transaction or block is sent once).
    pub read_retries: u32,
    /// First backoff between retries, doubled each time.
    pub retry_backoff_ms: u32,
    /// Keep-alive connections to the node, shared by every module and the
    /// poller; and how many of them one module's requests may hold.
    pub max_connections: u32,
    pub max_calls_per_module: u32,
    /// Largest RPC answer read (a raw block is twice its size in hex).
    pub max_response_bytes: u64,
    /// How often the chain tip, the mempool, and fees/peers/sync progress
    /// are polled (the node has no push channel hostd can use).
    pub poll_interval_ms: u32,
    pub mempool_poll_ms: u32,
    pub slow_poll_ms: u32,
    /// Blocks of the active chain hostd remembers to find a reorg's fork
    /// point; a reorg deeper than this is reported as such.
    pub header_window: u32,
    /// Mempool txids hostd tracks for add/remove events; beyond, the diff
    /// covers only this many (said in status and the log).
    pub max_mempool_tracked: u32,
    /// Fee-rate lookups (getmempoolentry) per mempool poll for
    /// MempoolTransactionAdded; the rest carry no fee rate.
    pub max_fee_lookups: u32,
    /// Confirmation target of the FeeRateChanged estimate.
    pub fee_target_blocks: u32,
}

impl Default for NodeSettings {
    fn default() -> Self {
        NodeSettings {
            backend: NodeBackendKind::Standalone,
            rpc_url: "http://127.0.0.1:8332".into(),
            cookie_file: None,
            rpc_user: None,
            rpc_password: None,
            request_timeout_ms: 5_000,
            read_retries: 2,
            retry_backoff_ms: 100,
            max_connections: 4,
            max_calls_per_module: 2,
            max_response_bytes: 64 << 20,
            poll_interval_ms: 250,
            mempool_poll_ms: 1_000,
            slow_poll_ms: 5_000,
            header_window: 1_000,
            max_mempool_tracked: 200_000,
            max_fee_lookups: 200,
            fee_target_blocks: 6,
        }
    }
}

impl NodeSettings {
    /// `(key, message)` of the first thing wrong.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.backend == NodeBackendKind::Standalone {
            return Ok(());
        }
        crate::daemon::node::http::Endpoint::parse(&self.rpc_url).map_err(|m| ("node.rpc_url", format!("{:?}: {m}", self.rpc_url)))?;
        match (&self.cookie_file, &self.rpc_user, &self.rpc_password) {
            (Some(p), None, None) if p.is_absolute() => {}
            (Some(_), None, None) => return Err(("node.cookie_file", "must be an absolute path".into())),
            (None, Some(u), Some(_)) if !u.is_empty() && !u.contains(':') => {}
            (None, Some(_), Some(_)) => return Err(("node.rpc_user", "must be non-empty and contain no ':'".into())),
            (Some(_), _, _) => return Err(("node.cookie_file", "set either cookie_file or rpc_user and rpc_password, not both".into())),
            (None, Some(_), None) => return Err(("node.rpc_password", "rpc_user needs rpc_password".into())),
            (None, None, Some(_)) => return Err(("node.rpc_user", "rpc_password needs rpc_user".into())),
            (None, None, None) => return Err(("node.cookie_file", "backend = \"rpc\" needs cookie_file, or rpc_user and rpc_password".into())),
        }
        let positive = [
            ("node.request_timeout_ms", self.request_timeout_ms as u64),
            ("node.max_connections", self.max_connections as u64),
            ("node.max_calls_per_module", self.max_calls_per_module as u64),
            ("node.poll_interval_ms", self.poll_interval_ms as u64),
            ("node.mempool_poll_ms", self.mempool_poll_ms as u64),
            ("node.slow_poll_ms", self.slow_poll_ms as u64),
            ("node.header_window", self.header_window as u64),
            ("node.fee_target_blocks", self.fee_target_blocks as u64),
            ("node.max_response_bytes", self.max_response_bytes),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err((key, "must be > 0".into()));
            }
        }
        if self.max_calls_per_module > self.max_connections {
            return Err(("node.max_calls_per_module", format!("must be <= max_connections ({})", self.max_connections)));
        }
        Ok(())
    }
}
