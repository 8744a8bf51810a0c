//! `MeshClient`: the mesh ModuleAPI over hostd's `call_module` (the caller
//! needs the `call_module` permission; hostd stamps who is calling).

use crate::types::*;
use crate::{decode, encode, method};
use hostd_sdk::{Client, ErrorCode, Invocation, SdkError};

#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// hostd or the mesh module refused or failed the call.
    #[error("calling the mesh module: {0}")]
    Call(#[from] SdkError),
    #[error("the mesh module's answer to {method} does not decode: {detail}")]
    BadAnswer { method: &'static str, detail: String },
}

impl MeshError {
    /// The error code hostd or the mesh module answered with.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            MeshError::Call(e) => e.code(),
            MeshError::BadAnswer { .. } => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct MeshClient {
    client: Client,
    module: String,
}

impl MeshClient {
    /// Calls go to `module` (usually [`crate::DEFAULT_MODULE`]).
    pub fn new(client: Client, module: impl Into<String>) -> MeshClient {
        MeshClient { client, module: module.into() }
    }

    async fn call<T: bincode::Decode<()>>(&self, method: &'static str, body: Vec<u8>) -> Result<T, MeshError> {
        let answer = self.client.call_module(&self.module, method, body).await?;
        decode(&answer).map_err(|detail| MeshError::BadAnswer { method, detail })
    }

    pub async fn send_packet(&self, request: &SendPacketRequest) -> Result<SendPacketResponse, MeshError> {
        self.call(method::SEND_PACKET, encode(request)).await
    }

    pub async fn discover_route(&self, destination: NodeId, max_hops: Option<u8>, timeout_seconds: Option<u64>) -> Result<DiscoverRouteResponse, MeshError> {
        self.call(method::DISCOVER_ROUTE, encode(&DiscoverRouteRequest { destination, max_hops, timeout_seconds })).await
    }

    /// Packets for `protocol_id` will invoke this module's API method
    /// `handler_method`, which it must also register with hostd
    /// (`register_module_api`). A protocol id another module holds is
    /// answered `AlreadyExists`.
    pub async fn register_protocol_handler(&self, protocol_id: &str, handler_method: &str) -> Result<RegisterProtocolResponse, MeshError> {
        let req = RegisterProtocolRequest { protocol_id: protocol_id.into(), handler_method: handler_method.into() };
        self.call(method::REGISTER_PROTOCOL_HANDLER, encode(&req)).await
    }

    pub async fn unregister_protocol_handler(&self, protocol_id: &str) -> Result<RegisterProtocolResponse, MeshError> {
        let req = RegisterProtocolRequest { protocol_id: protocol_id.into(), handler_method: String::new() };
        self.call(method::UNREGISTER_PROTOCOL_HANDLER, encode(&req)).await
    }

    pub async fn get_routing_stats(&self) -> Result<MeshStats, MeshError> {
        self.call(method::GET_ROUTING_STATS, Vec::new()).await
    }

    pub async fn get_node_id(&self) -> Result<NodeId, MeshError> {
        self.call(method::GET_NODE_ID, Vec::new()).await
    }

    /// If `invocation` is the mesh module delivering a packet to
    /// `handler_method`, the packet. hostd stamps the caller, so a packet
    /// "from the mesh" that another module sent is recognised here as not one.
    pub fn inbound(&self, invocation: &Invocation, handler_method: &str) -> Option<Result<InboundPacket, String>> {
        match invocation {
            Invocation::Api { caller, method, params } if caller == &self.module && method == handler_method => Some(decode(params)),
            _ => None,
        }
    }
}
