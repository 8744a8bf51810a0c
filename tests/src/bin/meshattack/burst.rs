//! Bursts for the paid benchmark: packets prepared in advance (paid ones
//! with a real quote and stub payment each, free ones of the Bitcoin
//! class), then fired back to back, so the figures at the receiving end
//! measure forwarding and verification, not settlement.

use commons_mesh::classify::{bitcoin_message, magic};
use commons_mesh::identity::Identity;
use commons_mesh::mesh_api::{NodeId, TrafficClass};
use commons_mesh::msg::LinkMsg;
use commons_mesh::packet::DataPacket;
use std::time::Instant;

/// Frames being prepared (`left` more to go) or ready to fire.
#[derive(Default)]
pub struct Burst {
    pub left: u64,
    pub frames: Vec<Vec<u8>>,
}

/// `n` free packets of `size` bytes: whole regtest Bitcoin messages, which
/// a payment-gated node carries without payment.
pub fn free(id: &Identity, seq: &mut u64, dest: NodeId, routers: &[NodeId], n: u64, size: usize) -> Result<Vec<Vec<u8>>, String> {
    let magic = magic("regtest").ok_or("regtest magic")?;
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        *seq += 1;
        let body = vec![0x5a; size.saturating_sub(24)];
        let packet = super::packet(id, dest, routers.to_vec());
        let mut p = DataPacket { sequence: *seq, ttl_secs: 600, class: TrafficClass::Bitcoin, payload: bitcoin_message(magic, "tx", &body), ..packet };
        let pid = p.sign(id);
        out.push(LinkMsg::Data(Box::new(p), pid).encode());
    }
    Ok(out)
}

/// Send every frame on `link`, at most `window` unanswered by hostd at
/// once; the time it took.
pub async fn fire(client: &hostd_sdk::Client, link: u64, frames: Vec<Vec<u8>>, window: usize) -> Result<(usize, f64), String> {
    let n = frames.len();
    let started = Instant::now();
    let mut acks = std::collections::VecDeque::new();
    for f in frames {
        if acks.len() >= window {
            if let Some(a) = acks.pop_front() {
                hostd_sdk::MeshAck::wait(a).await.map_err(|e| format!("send: {e}"))?;
            }
        }
        acks.push_back(client.mesh_queue(link, f).await.map_err(|e| format!("queue: {e}"))?);
    }
    for a in acks {
        hostd_sdk::MeshAck::wait(a).await.map_err(|e| format!("send: {e}"))?;
    }
    Ok((n, started.elapsed().as_secs_f64()))
}
