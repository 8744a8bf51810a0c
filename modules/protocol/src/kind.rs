//! Request kinds: the names the permission table and `policy show` use.

macro_rules! request_kinds {
    ($($variant:ident = $name:literal),* $(,)?) => {
        /// Every kind of request a module can make. Append only.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum RequestKind { $($variant),* }

        impl RequestKind {
            pub const ALL: &'static [RequestKind] = &[$(RequestKind::$variant),*];

            /// The stable snake_case name.
            pub fn as_str(self) -> &'static str {
                match self { $(RequestKind::$variant => $name),* }
            }
        }
    };
}

request_kinds! {
    Handshake = "handshake",
    Log = "log",
    ReportHealth = "report_health",
    RegisterCliSpec = "register_cli_spec",
    GetBlock = "get_block",
    GetBlockHeader = "get_block_header",
    GetTransaction = "get_transaction",
    HasTransaction = "has_transaction",
    GetUtxo = "get_utxo",
    GetChainTip = "get_chain_tip",
    GetBlockHeight = "get_block_height",
    GetChainInfo = "get_chain_info",
    SubscribeEvents = "subscribe_events",
    UnsubscribeEvents = "unsubscribe_events",
    SendTransaction = "send_transaction",
    GetMempoolTransactions = "get_mempool_transactions",
    GetMempoolTransaction = "get_mempool_transaction",
    GetMempoolSize = "get_mempool_size",
    GetFeeEstimate = "get_fee_estimate",
    GetNetworkStats = "get_network_stats",
    GetNetworkPeers = "get_network_peers",
    SendMeshPacket = "send_mesh_packet",
    GetLightningNodeUrl = "get_lightning_node_url",
    GetLightningInfo = "get_lightning_info",
    GetPaymentState = "get_payment_state",
    StorageGet = "storage_get",
    StorageIterPrefix = "storage_iter_prefix",
    StoragePut = "storage_put",
    StorageDelete = "storage_delete",
    StorageBatch = "storage_batch",
    StorageOpenTree = "storage_open_tree",
    StorageDropTree = "storage_drop_tree",
    StorageQuota = "storage_quota",
    FsRead = "fs_read",
    FsWrite = "fs_write",
    FsDelete = "fs_delete",
    FsMkdir = "fs_mkdir",
    RegisterRpcEndpoint = "register_rpc_endpoint",
    UnregisterRpcEndpoint = "unregister_rpc_endpoint",
    TimerCreate = "timer_create",
    TimerCancel = "timer_cancel",
    ScheduleTask = "schedule_task",
    ReportMetric = "report_metric",
    GetMetrics = "get_metrics",
    DiscoverModules = "discover_modules",
    GetModuleInfo = "get_module_info",
    PublishEvent = "publish_event",
    CallModule = "call_module",
    RegisterModuleApi = "register_module_api",
    UnregisterModuleApi = "unregister_module_api",
    SubmitBlock = "submit_block",
    QueueInboundBlock = "queue_inbound_block",
    MeshConnect = "mesh_connect",
    MeshClose = "mesh_close",
    MeshLinks = "mesh_links",
    MeshSend = "mesh_send",
}

impl std::fmt::Display for RequestKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
