//! What the node keeps in its hostd storage (tree `default`): its secret
//! key, the reserved block of sequence numbers, every source's replay
//! window and the protocol handlers. Every write is durable when hostd
//! acknowledges it.

use super::state::Handler;
use super::{Ctx, RunError};
use commons_mesh::identity::Identity;
use commons_mesh::mesh_api::NodeId;
use commons_mesh::window::SeqWindow;
use hostd_sdk::protocol::BatchOp;
use hostd_sdk::Client;
use std::collections::{BTreeMap, HashMap};

pub const TREE: &str = "default";
const KEY_IDENTITY: &[u8] = b"identity";
const KEY_SEQ: &[u8] = b"seq";
const WIN: &[u8] = b"win/";
const HANDLER: &[u8] = b"handler/";
const RESERVED: &[u8] = b"res/";
const KEY_CLEAN: &[u8] = b"clean-shutdown";
/// Sequence numbers reserved per durable write: a restart skips at most
/// this many, and never reuses one.
pub const SEQ_BLOCK: u64 = 1 << 20;

fn storage(e: hostd_sdk::SdkError) -> RunError {
    RunError::Storage(e.to_string())
}

/// The node's identity: stored, or made now and stored before use.
pub async fn identity(client: &Client) -> Result<Identity, RunError> {
    if let Some(secret) = client.storage_get(TREE, KEY_IDENTITY).await.map_err(storage)? {
        let secret: [u8; 32] = secret.try_into().map_err(|_| commons_mesh::identity::IdentityError::BadKey)?;
        return Ok(Identity::from_secret(secret)?);
    }
    let id = Identity::generate()?;
    client.storage_put(TREE, KEY_IDENTITY, &id.secret()).await.map_err(storage)?;
    client.info(&format!("created mesh identity {}", commons_mesh::mesh_api::hex(&id.node_id())));
    Ok(id)
}

/// (next sequence, reserved up to): a fresh block past the stored one.
pub async fn sequence(client: &Client) -> Result<(u64, u64), RunError> {
    let stored = client.storage_get(TREE, KEY_SEQ).await.map_err(storage)?;
    let from = stored.and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).unwrap_or(0);
    let reserved = from.saturating_add(SEQ_BLOCK);
    client.storage_put(TREE, KEY_SEQ, &reserved.to_be_bytes()).await.map_err(storage)?;
    Ok((from + 1, reserved))
}

/// Reserve the next block (called when half the current one is used).
pub async fn extend_sequence(ctx: Ctx) {
    let reserved = ctx.node().seq_reserved.saturating_add(SEQ_BLOCK);
    match ctx.client.storage_put(TREE, KEY_SEQ, &reserved.to_be_bytes()).await {
        Ok(()) => {
            let mut n = ctx.node();
            n.seq_reserved = n.seq_reserved.max(reserved);
        }
        Err(e) => ctx.client.error(&format!("reserving sequence numbers: {e}")),
    }
}

/// Replay windows and reservations as the last run left them. After a
/// clean shutdown the exact windows are trusted; after a crash everything
/// each source had reserved counts as seen (the windows may be up to a
/// flush interval old), so no packet delivered before the crash passes
/// again. The clean-shutdown marker is removed before anything is accepted.
pub async fn replay_state(client: &Client, max: usize) -> Result<(HashMap<NodeId, SeqWindow>, HashMap<NodeId, u64>), RunError> {
    let limit = max.min(u32::MAX as usize) as u32;
    let mut windows = HashMap::new();
    for (k, v) in client.storage_iter_prefix(TREE, WIN, limit).await.map_err(storage)? {
        match (<[u8; 32]>::try_from(&k[WIN.len()..]), SeqWindow::decode(&v)) {
            (Ok(node), Some(w)) => {
                windows.insert(node, w);
            }
            _ => client.warn(&format!("ignoring a damaged replay window entry ({} bytes)", v.len())),
        }
    }
    let mut reserved = HashMap::new();
    for (k, v) in client.storage_iter_prefix(TREE, RESERVED, limit).await.map_err(storage)? {
        match (<[u8; 32]>::try_from(&k[RESERVED.len()..]), <[u8; 8]>::try_from(&v[..])) {
            (Ok(node), Ok(r)) => {
                reserved.insert(node, u64::from_be_bytes(r));
            }
            _ => client.warn("ignoring a damaged sequence reservation"),
        }
    }
    let clean = client.storage_get(TREE, KEY_CLEAN).await.map_err(storage)?.is_some();
    if !clean {
        let now = commons_mesh::now_ms();
        for (src, r) in &reserved {
            windows.insert(*src, SeqWindow::all_seen(*r, now));
        }
        if !reserved.is_empty() {
            client.warn(&format!("the last run did not shut down cleanly: {} sources' reserved sequences count as seen", reserved.len()));
        }
    }
    client.storage_delete(TREE, KEY_CLEAN).await.map_err(storage)?;
    Ok((windows, reserved))
}

pub fn reserve_put(source: &NodeId, upto: u64) -> BatchOp {
    BatchOp::Put { key: [RESERVED, &source[..]].concat(), value: upto.to_be_bytes().to_vec() }
}

pub fn reserve_delete(source: &NodeId) -> BatchOp {
    BatchOp::Delete { key: [RESERVED, &source[..]].concat() }
}

pub fn clean_marker() -> BatchOp {
    BatchOp::Put { key: KEY_CLEAN.to_vec(), value: vec![1] }
}

pub fn window_put(source: &NodeId, w: &SeqWindow) -> BatchOp {
    BatchOp::Put { key: [WIN, &source[..]].concat(), value: w.encode() }
}

pub fn window_delete(source: &NodeId) -> BatchOp {
    BatchOp::Delete { key: [WIN, &source[..]].concat() }
}

pub async fn handlers(client: &Client) -> Result<BTreeMap<String, Handler>, RunError> {
    let entries = client.storage_iter_prefix(TREE, HANDLER, 10_000).await.map_err(storage)?;
    let mut out = BTreeMap::new();
    for (k, v) in entries {
        let proto = String::from_utf8_lossy(&k[HANDLER.len()..]).into_owned();
        let text = String::from_utf8_lossy(&v).into_owned();
        if let Some((module, method)) = text.split_once('\0') {
            out.insert(proto, Handler { module: module.into(), method: method.into() });
        }
    }
    Ok(out)
}

pub async fn handler_put(client: &Client, proto: &str, h: &Handler) -> Result<(), hostd_sdk::SdkError> {
    client.storage_put(TREE, &[HANDLER, proto.as_bytes()].concat(), format!("{}\0{}", h.module, h.method).as_bytes()).await
}

pub async fn handler_delete(client: &Client, proto: &str) -> Result<(), hostd_sdk::SdkError> {
    client.storage_delete(TREE, &[HANDLER, proto.as_bytes()].concat()).await
}
