//! The host's `MeshFrame` message built around a body it has not read
//! yet: hostd reads a link's frame straight into the IPC frame that carries
//! it to the module, instead of reading it and then copying it in.

use crate::frame::{config, FrameError, FRAME_HEADER};
use crate::messages::HostMessage;

/// The IPC frame header and message prefix such that
/// `prefix ‖ data` is exactly `encode(&HostMessage::MeshFrame { link, data })`
/// for any `data` of `data_len` bytes.
pub fn mesh_frame_prefix(link: u64, data_len: usize, max: u32) -> Result<Vec<u8>, FrameError> {
    let empty = crate::frame::encode(&HostMessage::MeshFrame { link, data: Vec::new() }, max)?;
    // The empty frame ends with the data's length, 0, one varint byte.
    let mut prefix = empty[..empty.len() - 1].to_vec();
    bincode::encode_into_std_write(data_len as u64, &mut prefix, config())?;
    let body = prefix.len() - FRAME_HEADER + data_len;
    if body > max.min(crate::HARD_MAX_FRAME) as usize {
        return Err(FrameError::TooLarge { len: body, max });
    }
    prefix[..FRAME_HEADER].copy_from_slice(&(body as u32).to_le_bytes());
    Ok(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_and_body_are_the_encoded_message() {
        for link in [0u64, 1, 250, 251, 70_000, u64::MAX] {
            for len in [0usize, 1, 250, 251, 16_384, 65_536, 70_000] {
                let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let mut built = mesh_frame_prefix(link, len, 1 << 20).expect("prefix");
                built.extend_from_slice(&data);
                let encoded = crate::frame::encode(&HostMessage::MeshFrame { link, data }, 1 << 20).expect("encodes");
                assert_eq!(built, encoded, "link {link}, {len} bytes");
            }
        }
        assert!(mesh_frame_prefix(1, 2000, 1000).is_err(), "a body past the maximum is refused");
    }
}
