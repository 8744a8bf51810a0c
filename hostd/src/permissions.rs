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
    NetworkAccess = "network_access": "send network packets through the node (mesh packets)",
    ReadLightning = "read_lightning": "read Lightning network data",
    ReadPayment = "read_payment": "read payment data",
    ReadStorage = "read_storage": "read the module's own storage trees",
    WriteStorage = "write_storage": "write the module's own storage trees",
    ManageStorage = "manage_storage": "create and drop storage trees",
    ReadFilesystem = "read_filesystem": "read files in the module's data directory",
    WriteFilesystem = "write_filesystem": "create, write and delete files in the module's data directory",
    ManageFilesystem = "manage_filesystem": "create and delete directories (and links) in the module's data directory",
    RegisterRpcEndpoint = "register_rpc_endpoint": "register RPC endpoints served by the module",
    ManageTimers = "manage_timers": "create and cancel timers and scheduled tasks",
    ReportMetrics = "report_metrics": "report metrics",
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

/// The permission a request needs; `None` for the few every module may send.
/// This match is the whole access-control table: exhaustive, so a new
/// request kind cannot be added without deciding its permission.
pub fn required_permission(kind: RequestKind) -> Option<Permission> {
    use Permission as P;
    use RequestKind as R;
    Some(match kind {
        R::Handshake | R::Log | R::ReportHealth | R::RegisterCliSpec => return None,
        R::GetBlock | R::GetBlockHeader | R::GetTransaction | R::HasTransaction => P::ReadBlockchain,
        R::GetUtxo => P::ReadUtxo,
        R::GetChainTip | R::GetBlockHeight | R::GetChainInfo => P::ReadChainState,
        R::SubscribeEvents | R::UnsubscribeEvents => P::SubscribeEvents,
        R::SendTransaction => P::SendTransactions,
        R::GetMempoolTransactions | R::GetMempoolTransaction | R::GetMempoolSize | R::GetFeeEstimate => P::ReadMempool,
        R::GetNetworkStats | R::GetNetworkPeers => P::ReadNetwork,
        R::SendMeshPacket => P::NetworkAccess,
        R::GetLightningNodeUrl | R::GetLightningInfo => P::ReadLightning,
        R::GetPaymentState => P::ReadPayment,
        R::StorageGet | R::StorageIterPrefix => P::ReadStorage,
        R::StoragePut | R::StorageDelete | R::StorageBatch => P::WriteStorage,
        R::StorageOpenTree | R::StorageDropTree | R::StorageQuota => P::ManageStorage,
        R::FsRead => P::ReadFilesystem,
        R::FsWrite | R::FsDelete => P::WriteFilesystem,
        R::FsMkdir => P::ManageFilesystem,
        R::RegisterRpcEndpoint | R::UnregisterRpcEndpoint => P::RegisterRpcEndpoint,
        R::TimerCreate | R::TimerCancel | R::ScheduleTask => P::ManageTimers,
        R::ReportMetric => P::ReportMetrics,
        R::GetMetrics => P::ReadMetrics,
        R::DiscoverModules | R::GetModuleInfo => P::DiscoverModules,
        R::PublishEvent => P::PublishEvents,
        R::CallModule => P::CallModule,
        R::RegisterModuleApi | R::UnregisterModuleApi => P::RegisterModuleApi,
        R::SubmitBlock => P::SubmitBlock,
        R::QueueInboundBlock => P::QueueInboundBlock,
    })
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
    fn misspelling_suggests_the_nearest_name() {
        let err = "read_blockchian".parse::<Permission>().unwrap_err();
        assert!(err.contains("did you mean \"read_blockchain\""), "{err}");
    }
}
