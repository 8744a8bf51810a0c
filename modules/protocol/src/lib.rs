//! The wire between hostd and a module: message types and the frame codec.
//!
//! [`frame`] cuts and checks frames and [`encode`]/[`decode`] bodies, with
//! no runtime; [`connection`] (feature `io`, tokio) is the one frame
//! reader and batching writer both hostd and the SDK use.
//!
//! Compatibility rules (the reason for several choices below):
//! - every enum only grows at the end: bincode encodes a variant by index,
//!   so inserting or reordering variants changes the meaning of old frames;
//! - the protocol version is negotiated in the handshake ([`negotiate`]);
//!   a peer speaking a newer version may send variants this side cannot
//!   decode, and that is a decode error, never a misread;
//! - decoding is bounded twice: a frame longer than the connection's maximum
//!   is refused before its body is read, and bincode decodes with a hard
//!   byte limit so a length field inside a body cannot make it allocate more
//!   than the frame could hold.

pub use bincode;

#[cfg(feature = "io")]
pub mod connection;
pub mod events;
pub mod frame;
pub mod hash;
pub mod kind;
pub mod mesh_frame;
pub mod messages;

pub use events::{CrashReason, Event, EventPayload, EventType, Origin};
pub use hash::{hash_from_hex, hash_to_hex};
pub use frame::{decode, encode, encode_into, FrameBuf, FrameError, DEFAULT_MAX_FRAME, FRAME_HEADER, HARD_MAX_FRAME};
pub use kind::RequestKind;
pub use mesh_frame::mesh_frame_prefix;
pub use messages::*;

/// The newest protocol version this build speaks. Version 2 adds the mesh
/// links (`MeshConnect`, `MeshClose`, `MeshLinks`, `MeshSend` and the host's
/// `LinkUp`, `LinkDown`, `MeshFrame`); hostd sends none of them on a
/// version 1 connection.
pub const PROTOCOL_VERSION: u32 = 2;
/// The first version with mesh links.
pub const MESH_PROTOCOL_VERSION: u32 = 2;
/// The oldest protocol version this build still speaks.
pub const MIN_PROTOCOL_VERSION: u32 = 1;

/// The version both sides speak: the highest one in both ranges, or `None`.
pub fn negotiate(ours: (u32, u32), theirs: (u32, u32)) -> Option<u32> {
    let low = ours.0.max(theirs.0);
    let high = ours.1.min(theirs.1);
    (low <= high).then_some(high)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_picks_the_highest_common_version() {
        assert_eq!(negotiate((1, 3), (2, 5)), Some(3));
        assert_eq!(negotiate((1, 1), (1, 1)), Some(1));
        assert_eq!(negotiate((1, 1), (2, 2)), None);
        assert_eq!(negotiate((3, 4), (1, 2)), None);
    }
}
