//! The Commons Mesh ModuleAPI as other modules see it: the methods'
//! request and response types and [`MeshClient`], which calls them through
//! hostd's inter-module calls (`call_module`). Nothing here signs, verifies
//! or routes: that all happens inside the mesh module, so linking this
//! crate pulls in neither secp256k1 nor any Lightning code.
//!
//! Bodies are bincode (the same encoding as hostd's IPC); every enum and
//! struct only grows at the end.

mod client;
mod types;

pub use client::{MeshClient, MeshError};
pub use types::*;

/// The mesh module's name as installed by default.
pub const DEFAULT_MODULE: &str = "commons-mesh";

/// The API methods the mesh module registers with hostd.
pub mod method {
    pub const SEND_PACKET: &str = "send_packet";
    pub const DISCOVER_ROUTE: &str = "discover_route";
    pub const REGISTER_PROTOCOL_HANDLER: &str = "register_protocol_handler";
    pub const UNREGISTER_PROTOCOL_HANDLER: &str = "unregister_protocol_handler";
    pub const GET_ROUTING_STATS: &str = "get_routing_stats";
    pub const GET_NODE_ID: &str = "get_node_id";
    pub const ALL: &[&str] = &[SEND_PACKET, DISCOVER_ROUTE, REGISTER_PROTOCOL_HANDLER, UNREGISTER_PROTOCOL_HANDLER, GET_ROUTING_STATS, GET_NODE_ID];
}



/// Largest body this crate decodes (a packet payload is far smaller).
const MAX_BODY: usize = 16 << 20;

fn config() -> bincode::config::Configuration<bincode::config::LittleEndian, bincode::config::Varint, bincode::config::Limit<MAX_BODY>> {
    bincode::config::standard().with_limit::<MAX_BODY>()
}

/// Encode an API body.
pub fn encode<T: bincode::Encode>(value: &T) -> Vec<u8> {
    // Encoding into a Vec fails only past the limit, which no body here reaches.
    bincode::encode_to_vec(value, config()).unwrap_or_default()
}

/// Decode an API body; the whole input must be one value.
pub fn decode<T: bincode::Decode<()>>(bytes: &[u8]) -> Result<T, String> {
    match bincode::decode_from_slice(bytes, config()) {
        Ok((v, n)) if n == bytes.len() => Ok(v),
        Ok((_, n)) => Err(format!("{} bytes after the body", bytes.len() - n)),
        Err(e) => Err(e.to_string()),
    }
}

/// Shorthand for a 32-byte id in hex.
pub fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parse exactly `N` bytes written as `2N` hex digits.
pub fn parse_hex<const N: usize>(s: &str) -> Result<[u8; N], String> {
    let s = s.trim();
    if s.len() != 2 * N || !s.is_ascii() {
        return Err(format!("{s:?} is not {} hex digits", 2 * N));
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| format!("{s:?} is not hex"))?;
    }
    Ok(out)
}

/// Parse a 64-digit hex NodeId.
pub fn parse_node_id(s: &str) -> Result<NodeId, String> {
    parse_hex(s)
}
