//! The 26 module permissions and the one table of what each unlocks.
//!
//! A permission is granted only by being listed in the manifest's
//! `capabilities`; nothing is granted by default. The IPC hub checks every
//! request against [`required_permission`] before it runs a handler.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! permissions {
    ($($variant:ident = $name:literal : $what:literal),* $(,)?) => {
        /// One permission, spelled in snake_case in `module.toml`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Permission { $($variant),* }

        impl Permission {
            pub const ALL: &'static [Permission] = &[$(Permission::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $(Permission::$variant => $name),* }
            }

            /// One line for `hostd policy show`.
            pub fn description(self) -> &'static str {
                match self { $(Permission::$variant => $what),* }
            }
        }
    };
}

permissions! {
    ReadBlockchain = "read_blockchain": "read blocks, headers and transactions",
    ReadUtxo = "read_utxo": "query the UTXO set (read-only)",
    ReadChainState = "read_chain_state": "query chain state (height, tip)",
    SubscribeEvents = "subscribe_events": "subscribe to node and module events",
    SendTransactions = "send_transactions": "submit transactions to the mempool",
    ReadMempool = "read_mempool": "read mempool transactions, size and fee estimates",
    ReadNetwork = "read_network": "read network data (peers, stats)",
    NetworkAccess = "network_access": "open mesh links through hostd (its listener and allowlisted peers only)",
    ReadLightning = "read_lightning": "read Lightning network data",
    ReadPayment = "read_payment": "read payment data",
    ReadStorage = "read_storage": "read the module's own storage trees",
    WriteStorage = "write_storage": "write the module's own storage trees",
    ManageStorage = "manage_storage": "create and drop storage trees",
    ReadFilesystem = "read_filesystem": "read files in the module's data directory",
    WriteFilesystem = "write_filesystem": "create, write and delete files in the module's data directory",
    ManageFilesystem = "manage_filesystem": "create and delete directories, and rename across them, in the module's data directory (never links)",
    RegisterRpcEndpoint = "register_rpc_endpoint": "register RPC endpoints served by the module",
    ManageTimers = "manage_timers": "create and cancel timers and scheduled tasks",
    ReportMetrics = "report_metrics": "report metrics and health",
    ReadMetrics = "read_metrics": "read metrics",
    DiscoverModules = "discover_modules": "list other modules and their info",
    PublishEvents = "publish_events": "publish events of module-allowed types",
    CallModule = "call_module": "call other modules' registered APIs",
    RegisterModuleApi = "register_module_api": "register an API other modules may call",
    SubmitBlock = "submit_block": "submit a block to the node",
    QueueInboundBlock = "queue_inbound_block": "queue an inbound block for validation",
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Permission {
    type Err = String;
    fn from_str(s: &str) -> Result<Permission, String> {
        Permission::ALL.iter().copied().find(|p| p.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
            match crate::spelling::nearest(s, &names) {
                Some(n) => format!("unknown capability {s:?}; did you mean {n:?}?"),
                None => format!("unknown capability {s:?}; known: {}", names.join(", ")),
            }
        })
    }
}

/// Request kinds live with the wire types; this table gives their permissions.
pub use hostd_protocol::RequestKind;

/// What the hub must know of a request kind before it runs one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// The permission it needs; `None` for the few every module may send.
    pub permission: Option<Permission>,
    /// It may block (disk, the node, another module): the hub runs it on its own task
    /// so the module's other requests keep flowing.
    pub blocking: bool,
}

/// Runs on its own task.
const BLOCKS: bool = true;
/// Answered inline, in the connection's reader.
const INLINE: bool = false;

/// The whole access-control table: exhaustive, so a new request kind cannot
/// be added without deciding its permission and whether it blocks.
pub fn access(kind: RequestKind) -> Access {
    use Permission as P;
    use RequestKind as R;
    let (permission, blocking) = match kind {
        R::Handshake | R::Log | R::RegisterCliSpec => (None, INLINE),
        // Health is a metric the module reports about itself; hostd
        // publishes it as a host-origin HealthCheck event, so it is not free.
        R::ReportHealth => (Some(P::ReportMetrics), INLINE),
        R::GetBlock | R::GetBlockHeader | R::GetTransaction | R::HasTransaction => (Some(P::ReadBlockchain), BLOCKS),
        R::GetUtxo => (Some(P::ReadUtxo), BLOCKS),
        R::GetChainTip | R::GetBlockHeight | R::GetChainInfo => (Some(P::ReadChainState), BLOCKS),
        R::SubscribeEvents | R::UnsubscribeEvents => (Some(P::SubscribeEvents), INLINE),
        R::SendTransaction => (Some(P::SendTransactions), BLOCKS),
        R::GetMempoolTransactions | R::GetMempoolTransaction | R::GetMempoolSize | R::GetFeeEstimate => (Some(P::ReadMempool), BLOCKS),
        R::GetNetworkStats | R::GetNetworkPeers => (Some(P::ReadNetwork), BLOCKS),
        R::SendMeshPacket => (Some(P::NetworkAccess), INLINE),
        R::GetLightningNodeUrl | R::GetLightningInfo => (Some(P::ReadLightning), INLINE),
        R::GetPaymentState => (Some(P::ReadPayment), INLINE),
        R::StorageGet | R::StorageIterPrefix => (Some(P::ReadStorage), BLOCKS),
        R::StoragePut | R::StorageDelete | R::StorageBatch => (Some(P::WriteStorage), BLOCKS),
        R::StorageOpenTree | R::StorageDropTree => (Some(P::ManageStorage), BLOCKS),
        R::StorageQuota => (Some(P::ManageStorage), INLINE),
        R::FsRead => (Some(P::ReadFilesystem), BLOCKS),
        R::FsWrite | R::FsDelete => (Some(P::WriteFilesystem), BLOCKS),
        R::FsMkdir => (Some(P::ManageFilesystem), BLOCKS),
        R::RegisterRpcEndpoint | R::UnregisterRpcEndpoint => (Some(P::RegisterRpcEndpoint), INLINE),
        R::TimerCreate | R::TimerCancel | R::ScheduleTask => (Some(P::ManageTimers), INLINE),
        R::ReportMetric => (Some(P::ReportMetrics), INLINE),
        R::GetMetrics => (Some(P::ReadMetrics), INLINE),
        R::DiscoverModules | R::GetModuleInfo => (Some(P::DiscoverModules), INLINE),
        R::PublishEvent => (Some(P::PublishEvents), INLINE),
        R::CallModule => (Some(P::CallModule), BLOCKS),
        R::RegisterModuleApi | R::UnregisterModuleApi => (Some(P::RegisterModuleApi), INLINE),
        R::SubmitBlock => (Some(P::SubmitBlock), BLOCKS),
        R::QueueInboundBlock => (Some(P::QueueInboundBlock), BLOCKS),
        // Connecting waits for the network; the rest only touch queues.
        R::MeshConnect => (Some(P::NetworkAccess), BLOCKS),
        R::MeshClose | R::MeshLinks | R::MeshSend => (Some(P::NetworkAccess), INLINE),
    };
    Access { permission, blocking }
}

/// The permission a request needs; `None` for the few every module may send.
pub fn required_permission(kind: RequestKind) -> Option<Permission> {
    access(kind).permission
}

/// The requests `p` unlocks.
pub fn unlocks(p: Permission) -> Vec<RequestKind> {
    RequestKind::ALL.iter().copied().filter(|k| required_permission(*k) == Some(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_are_26_and_each_round_trips() {
        assert_eq!(Permission::ALL.len(), 26);
        for p in Permission::ALL {
            let parsed: Permission = p.as_str().parse().expect("parses");
            assert_eq!(parsed, *p);
            let json = serde_json::to_string(p).expect("serializes");
            assert_eq!(json, format!("\"{}\"", p.as_str()));
            assert_eq!(serde_json::from_str::<Permission>(&json).expect("deserializes"), *p);
        }
    }

    #[test]
    fn every_permission_unlocks_something_and_every_request_is_listed() {
        for p in Permission::ALL {
            assert!(!unlocks(*p).is_empty(), "{p} unlocks nothing");
        }
        let mut sorted = RequestKind::ALL.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), RequestKind::ALL.len(), "duplicate in RequestKind::ALL");
    }

    #[test]
    fn blocking_requests_are_disk_the_node_and_other_modules() {
        let node: Vec<&str> = RequestKind::ALL
            .iter()
            .filter(|k| access(**k).blocking && !k.as_str().starts_with("storage") && !k.as_str().starts_with("fs_"))
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            node,
            [
                "get_block",
                "get_block_header",
                "get_transaction",
                "has_transaction",
                "get_utxo",
                "get_chain_tip",
                "get_block_height",
                "get_chain_info",
                "send_transaction",
                "get_mempool_transactions",
                "get_mempool_transaction",
                "get_mempool_size",
                "get_fee_estimate",
                "get_network_stats",
                "get_network_peers",
                "call_module",
                "submit_block",
                "queue_inbound_block",
                "mesh_connect"
            ]
        );
        let blocking: Vec<&str> = RequestKind::ALL.iter().filter(|k| access(**k).blocking && (k.as_str().starts_with("storage") || k.as_str().starts_with("fs_"))).map(|k| k.as_str()).collect();
        assert_eq!(
            blocking,
            [
                "storage_get",
                "storage_iter_prefix",
                "storage_put",
                "storage_delete",
                "storage_batch",
                "storage_open_tree",
                "storage_drop_tree",
                "fs_read",
                "fs_write",
                "fs_delete",
                "fs_mkdir"
            ]
        );
        // The few every module may send are the handshake's neighbours, never data.
        let free: Vec<&str> = RequestKind::ALL.iter().filter(|k| required_permission(**k).is_none()).map(|k| k.as_str()).collect();
        assert_eq!(free, ["handshake", "log", "register_cli_spec"]);
    }

    #[test]
    fn misspelling_suggests_the_nearest_name() {
        let err = "read_blockchian".parse::<Permission>().unwrap_err();
        assert!(err.contains("did you mean \"read_blockchain\""), "{err}");
    }
}
