//! Commons Mesh, the library half: identities, the canonical packet and
//! message layouts, traffic classification, replay windows and the route
//! table. The module binary (src/main.rs, src/node/) runs them over
//! hostd's mesh links; tests use them to build hostile packets.

pub mod address;
pub mod bech32;
pub mod bolt11;
pub mod classify;
pub mod control;
pub mod ctv;
pub mod dedup;
pub mod entity;
pub mod fees;
pub mod identity;
pub mod monopoly;
pub mod monopoly_settings;
pub mod msg;
pub mod packet;
pub mod pay_settings;
pub mod proof;
pub mod record;
pub mod routing;
pub mod settings;
pub mod settle;
pub mod window;
pub mod wire;

pub use mesh_api;

/// Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
