//! Module requests → node RPC calls, using only the raw/hex forms
//! Bitcoin Core and blvm-node answer alike (no verbose block decoding, no
//! `confirmations` or `nextblockhash`). The RPC subset is listed in
//! docs/node.md; keep the two in step.

use super::rpc::{RpcClient, RpcError};
use hostd_protocol::{hash_from_hex, hash_to_hex, ChainInfo, ErrorBody, ErrorCode, Hash32, NetworkStats, PeerInfo, Request, Response, Utxo};
use serde_json::{json, Value};

/// What a module is told: a typed code and a message that names neither
/// the node's address nor any credential.
pub fn module_error(e: &RpcError) -> ErrorBody {
    match e {
        RpcError::Unreachable(_) | RpcError::AuthRefused { .. } | RpcError::Cookie { .. } => {
            ErrorBody::new(ErrorCode::NodeUnreachable, "hostd cannot reach its node right now; retry later")
        }
        RpcError::Timeout(ms) => ErrorBody::new(ErrorCode::NodeUnreachable, format!("the node did not answer within {ms} ms; retry later")),
        RpcError::NotFound(m) => ErrorBody::new(ErrorCode::NotFound, m.clone()),
        RpcError::Rpc { code, message } => ErrorBody::new(ErrorCode::NodeRpcError, format!("node error {code}: {message}")),
        RpcError::BadReply(_) => ErrorBody::new(ErrorCode::NodeRpcError, "the node's answer could not be read"),
    }
}

fn bad(what: &str) -> RpcError {
    RpcError::BadReply(what.to_string())
}

pub fn hex_bytes(v: &Value, what: &str) -> Result<Vec<u8>, RpcError> {
    v.as_str().and_then(|s| hex::decode(s).ok()).ok_or_else(|| bad(what))
}

pub fn hash(v: &Value, what: &str) -> Result<Hash32, RpcError> {
    v.as_str().and_then(hash_from_hex).ok_or_else(|| bad(what))
}

/// A BTC amount as JSON number → satoshis. Exact: every amount up to 21M
/// BTC has fewer than 53 significant bits in satoshis.
fn sats(v: &Value, what: &str) -> Result<u64, RpcError> {
    let btc = v.as_f64().filter(|b| *b >= 0.0 && *b <= 21e6).ok_or_else(|| bad(what))?;
    Ok((btc * 1e8).round() as u64)
}

fn none_if_not_found<T>(r: Result<T, RpcError>) -> Result<Option<T>, RpcError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(RpcError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The node's chain state from one call: hash and height cannot come from
/// two different tips.
pub async fn chain_info(rpc: &RpcClient) -> Result<ChainInfo, RpcError> {
    let v = rpc.read("getblockchaininfo", json!([])).await?;
    Ok(ChainInfo {
        network: v["chain"].as_str().unwrap_or("unknown").to_string(),
        tip: hash(&v["bestblockhash"], "getblockchaininfo.bestblockhash")?,
        height: v["blocks"].as_u64().ok_or_else(|| bad("getblockchaininfo.blocks"))?,
        initial_block_download: v["initialblockdownload"].as_bool().unwrap_or(false),
    })
}

/// Fee estimate in sat/kvB, `None` when the node has none (Core and
/// blvm-node both answer "insufficient data" on a young mempool).
pub async fn fee_estimate(rpc: &RpcClient, target: u32) -> Result<Option<u64>, RpcError> {
    // Lower-case mode: blvm-node refuses "CONSERVATIVE"; Core takes either.
    let v = match rpc.read("estimatesmartfee", json!([target, "conservative"])).await {
        Ok(v) => v,
        Err(RpcError::Rpc { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    match v.get("feerate") {
        Some(f) if !f.is_null() => Ok(Some(sats(f, "estimatesmartfee.feerate")?)),
        _ => Ok(None),
    }
}

pub async fn peers(rpc: &RpcClient) -> Result<Vec<PeerInfo>, RpcError> {
    let v = rpc.read("getpeerinfo", json!([])).await?;
    let list = v.as_array().ok_or_else(|| bad("getpeerinfo"))?;
    Ok(list
        .iter()
        .map(|p| PeerInfo {
            id: p["id"].as_u64().unwrap_or(0),
            address: p["addr"].as_str().unwrap_or("").chars().take(200).collect(),
            inbound: p["inbound"].as_bool().unwrap_or(false),
        })
        .collect())
}

pub async fn mempool_txids(rpc: &RpcClient) -> Result<Vec<Hash32>, RpcError> {
    let v = rpc.read("getrawmempool", json!([false])).await?;
    v.as_array().ok_or_else(|| bad("getrawmempool"))?.iter().map(|t| hash(t, "getrawmempool txid")).collect()
}

/// A mempool entry's fee rate in sat/kvB (`None` if it left the mempool).
pub async fn entry_fee_rate(rpc: &RpcClient, txid: &Hash32) -> Result<Option<u64>, RpcError> {
    let Some(e) = none_if_not_found(rpc.read("getmempoolentry", json!([hash_to_hex(txid)])).await)? else { return Ok(None) };
    let fee = sats(&e["fees"]["base"], "getmempoolentry.fees.base").or_else(|_| sats(&e["fee"], "getmempoolentry.fee"))?;
    let vsize = e["vsize"].as_u64().or_else(|| e["size"].as_u64()).filter(|s| *s > 0).ok_or_else(|| bad("getmempoolentry.vsize"))?;
    Ok(Some(fee * 1000 / vsize))
}

/// Answer one node request. `max_bytes`: the largest raw result that fits
/// in a frame to the module.
pub async fn answer(rpc: &RpcClient, req: &Request, max_bytes: usize) -> Result<Response, ErrorBody> {
    let fits = |bytes: Option<Vec<u8>>| match bytes {
        Some(b) if b.len() > max_bytes => Err(ErrorBody::new(
            ErrorCode::InvalidArgument,
            format!("the result is {} bytes, more than one frame carries ({max_bytes}); the operator can raise [daemon] max_frame_bytes (4 MiB holds any block)", b.len()),
        )),
        other => Ok(Response::Bytes(other)),
    };
    let r = |e: RpcError| module_error(&e);
    use Request as Q;
    match req {
        Q::GetBlock { hash } => fits(none_if_not_found(raw(rpc, "getblock", json!([hash_to_hex(hash), 0])).await).map_err(r)?),
        Q::GetBlockHeader { hash } => fits(none_if_not_found(raw(rpc, "getblockheader", json!([hash_to_hex(hash), false])).await).map_err(r)?),
        Q::GetTransaction { txid } => fits(none_if_not_found(raw(rpc, "getrawtransaction", json!([hash_to_hex(txid), false])).await).map_err(r)?),
        Q::HasTransaction { txid } => {
            let found = none_if_not_found(raw(rpc, "getrawtransaction", json!([hash_to_hex(txid), false])).await).map_err(r)?;
            Ok(Response::Bool(found.is_some()))
        }
        Q::GetMempoolTransaction { txid } => {
            // In the mempool only: getrawtransaction alone would also find
            // a confirmed one.
            let entry = none_if_not_found(rpc.read("getmempoolentry", json!([hash_to_hex(txid)])).await).map_err(r)?;
            if entry.is_none() {
                return Ok(Response::Bytes(None));
            }
            fits(none_if_not_found(raw(rpc, "getrawtransaction", json!([hash_to_hex(txid), false])).await).map_err(r)?)
        }
        Q::GetUtxo { txid, vout } => utxo(rpc, txid, *vout).await.map(Response::Utxo).map_err(r),
        Q::GetChainTip => chain_info(rpc).await.map(|i| Response::ChainTip { hash: i.tip, height: i.height }).map_err(r),
        Q::GetBlockHeight => chain_info(rpc).await.map(|i| Response::Count(i.height)).map_err(r),
        Q::GetChainInfo => chain_info(rpc).await.map(Response::ChainInfo).map_err(r),
        Q::GetMempoolTransactions => mempool_txids(rpc).await.map(Response::Txids).map_err(r),
        Q::GetMempoolSize => {
            let v = rpc.read("getmempoolinfo", json!([])).await.map_err(r)?;
            v["size"].as_u64().map(Response::Count).ok_or_else(|| r(bad("getmempoolinfo.size")))
        }
        Q::GetFeeEstimate { target_blocks } => match fee_estimate(rpc, (*target_blocks).clamp(1, 1008)).await.map_err(r)? {
            Some(sat_per_kvb) => Ok(Response::FeeRate { sat_per_kvb }),
            None => Err(ErrorBody::new(ErrorCode::NotFound, "the node has no fee estimate yet (too few transactions seen)")),
        },
        Q::GetNetworkStats => {
            let totals = rpc.read("getnettotals", json!([])).await.map_err(r)?;
            let peers = rpc.read("getconnectioncount", json!([])).await.map_err(r)?;
            Ok(Response::NetworkStats(NetworkStats {
                peers: peers.as_u64().unwrap_or(0).min(u32::MAX as u64) as u32,
                bytes_sent: totals["totalbytessent"].as_u64().unwrap_or(0),
                bytes_received: totals["totalbytesrecv"].as_u64().unwrap_or(0),
            }))
        }
        Q::GetNetworkPeers => peers(rpc).await.map(Response::Peers).map_err(r),
        Q::SendTransaction { raw } => {
            rpc.call("sendrawtransaction", json!([hex::encode(raw)])).await.map_err(r)?;
            Ok(Response::Ack)
        }
        // The node's RPC has one way in for a block; a queued inbound block
        // (one a module received from elsewhere) takes it too.
        Q::SubmitBlock { raw } | Q::QueueInboundBlock { raw } => {
            let v = rpc.call("submitblock", json!([hex::encode(raw)])).await.map_err(r)?;
            match v.as_str() {
                None => Ok(Response::Ack),
                // Core answers "duplicate", "inconclusive" or a rejection reason.
                Some(reason) => Err(ErrorBody::new(ErrorCode::NodeRpcError, format!("the node did not accept the block: {}", reason.chars().take(200).collect::<String>()))),
            }
        }
        Q::GetLightningNodeUrl | Q::GetLightningInfo | Q::GetPaymentState { .. } => {
            Err(ErrorBody::new(ErrorCode::NoLightningBackend, format!("{} needs a Lightning backend, and this hostd has none", req.kind())))
        }
        other => Err(ErrorBody::new(ErrorCode::Unsupported, format!("{} is not a node request", other.kind()))),
    }
}

async fn raw(rpc: &RpcClient, method: &str, params: Value) -> Result<Vec<u8>, RpcError> {
    let v = rpc.read(method, params).await?;
    hex_bytes(&v, method)
}

/// An unspent output, mempool spends counted; `height` is 0 for an
/// output of a mempool transaction.
async fn utxo(rpc: &RpcClient, txid: &Hash32, vout: u32) -> Result<Option<Utxo>, RpcError> {
    let v = rpc.read("gettxout", json!([hash_to_hex(txid), vout, true])).await?;
    if v.is_null() {
        return Ok(None);
    }
    let confirmations = v["confirmations"].as_u64().unwrap_or(0);
    let height = if confirmations == 0 {
        0
    } else {
        // Height of the answer's own best block, so the two agree.
        let best = hash(&v["bestblock"], "gettxout.bestblock")?;
        let h = rpc.read("getblockheader", json!([hash_to_hex(&best), true])).await?;
        let best_height = h["height"].as_u64().ok_or_else(|| bad("getblockheader.height"))?;
        (best_height + 1).saturating_sub(confirmations)
    };
    Ok(Some(Utxo {
        value_sat: sats(&v["value"], "gettxout.value")?,
        script_pubkey: hex_bytes(&v["scriptPubKey"]["hex"], "gettxout.scriptPubKey.hex")?,
        height,
    }))
}
