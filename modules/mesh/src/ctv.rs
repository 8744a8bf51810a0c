//! CTV "instant settlement" proofs (BIP-119, OP_CHECKTEMPLATEVERIFY). A
//! source commits coins to an output whose script is `<H> OP_CTV`, where
//! H is the template hash of one transaction that pays every payee its
//! share and commits the packet id in an OP_RETURN; once that output
//! exists, the payees are paid whoever broadcasts the transaction.
//!
//! What a payee can check from the proof alone: the transaction's
//! template hash, that it spends the funding outpoint, that it pays this
//! payee's share to a P2TR output of its NodeId (an x-only key, so the
//! payee can spend it), and that it commits this packet. Whether the
//! funding output exists with `<H> OP_CTV` and enough confirmations only
//! a node can say: without a node backend a CTV proof is refused. BIP-119
//! is not active on Bitcoin mainnet; this works where it is (e.g. signet,
//! regtest with a node that enforces it).
//!
//! Proof layout: `input_index u32 | funding txid [32] | funding vout u32 | tx (the rest)`.

use crate::identity::sha256;
use crate::wire::{Reader, WireError};
use mesh_api::{NodeId, PacketId, PaymentFault};

/// OP_CHECKTEMPLATEVERIFY (was OP_NOP4).
const OP_CTV: u8 = 0xb3;
const OP_RETURN: u8 = 0x6a;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxIn {
    pub prev_txid: [u8; 32],
    pub prev_vout: u32,
    pub script_sig: Vec<u8>,
    pub sequence: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxOut {
    pub value: u64,
    pub script: Vec<u8>,
}

/// What BIP-119 hashes of a transaction (witnesses are read and ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tx {
    pub version: i32,
    pub inputs: Vec<TxIn>,
    pub outputs: Vec<TxOut>,
    pub lock_time: u32,
}

fn compact(r: &mut Reader<'_>) -> Result<u64, WireError> {
    Ok(match r.u8("compact size")? {
        0xfd => u64::from(u16::from_le_bytes(r.take(2, "compact size")?.try_into().map_err(|_| WireError::Truncated("compact size"))?)),
        0xfe => u64::from(u32::from_le_bytes(r.take(4, "compact size")?.try_into().map_err(|_| WireError::Truncated("compact size"))?)),
        0xff => u64::from_le_bytes(r.take(8, "compact size")?.try_into().map_err(|_| WireError::Truncated("compact size"))?),
        n => u64::from(n),
    })
}

fn var_bytes<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<&'a [u8], WireError> {
    let n = compact(r)?;
    r.take(usize::try_from(n).map_err(|_| WireError::Invalid(what))?, what)
}

fn le32(r: &mut Reader<'_>, what: &'static str) -> Result<u32, WireError> {
    Ok(u32::from_le_bytes(r.take(4, what)?.try_into().map_err(|_| WireError::Truncated(what))?))
}

fn write_compact(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=0xfc => out.push(n as u8),
        0xfd..=0xffff => {
            out.push(0xfd);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xfe);
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        _ => {
            out.push(0xff);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

impl Tx {
    /// Bitcoin's serialization, with or without witnesses (BIP-144).
    pub fn parse(b: &[u8]) -> Result<Tx, WireError> {
        let mut r = Reader::new(b);
        let version = le32(&mut r, "version")? as i32;
        let segwit = b.get(4..6) == Some(&[0, 1]);
        if segwit {
            r.take(2, "segwit marker")?;
        }
        // Every input and output takes at least 41 / 9 bytes: counts past that are lies.
        let n_in = compact(&mut r)?;
        if n_in > (b.len() / 41) as u64 {
            return Err(WireError::Invalid("input count"));
        }
        let mut inputs = Vec::with_capacity(n_in as usize);
        for _ in 0..n_in {
            let prev_txid = r.id("prevout")?;
            let prev_vout = le32(&mut r, "prevout index")?;
            let script_sig = var_bytes(&mut r, "scriptSig")?.to_vec();
            let sequence = le32(&mut r, "sequence")?;
            inputs.push(TxIn { prev_txid, prev_vout, script_sig, sequence });
        }
        let n_out = compact(&mut r)?;
        if n_out > (b.len() / 9) as u64 {
            return Err(WireError::Invalid("output count"));
        }
        let mut outputs = Vec::with_capacity(n_out as usize);
        for _ in 0..n_out {
            let value = u64::from_le_bytes(r.take(8, "value")?.try_into().map_err(|_| WireError::Truncated("value"))?);
            outputs.push(TxOut { value, script: var_bytes(&mut r, "scriptPubKey")?.to_vec() });
        }
        if segwit {
            for _ in 0..n_in {
                for _ in 0..compact(&mut r)? {
                    var_bytes(&mut r, "witness item")?;
                }
            }
        }
        let lock_time = le32(&mut r, "lock time")?;
        r.finish()?;
        Ok(Tx { version, inputs, outputs, lock_time })
    }

    /// Without witnesses.
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = self.version.to_le_bytes().to_vec();
        write_compact(&mut out, self.inputs.len() as u64);
        for i in &self.inputs {
            out.extend_from_slice(&i.prev_txid);
            out.extend_from_slice(&i.prev_vout.to_le_bytes());
            write_compact(&mut out, i.script_sig.len() as u64);
            out.extend_from_slice(&i.script_sig);
            out.extend_from_slice(&i.sequence.to_le_bytes());
        }
        write_compact(&mut out, self.outputs.len() as u64);
        for o in &self.outputs {
            out.extend_from_slice(&o.value.to_le_bytes());
            write_compact(&mut out, o.script.len() as u64);
            out.extend_from_slice(&o.script);
        }
        out.extend_from_slice(&self.lock_time.to_le_bytes());
        out
    }

    /// BIP-119's DefaultCheckTemplateVerifyHash for spending input `index`.
    pub fn template_hash(&self, index: u32) -> [u8; 32] {
        let mut m = Vec::with_capacity(4 * 5 + 32 * 3);
        m.extend_from_slice(&self.version.to_le_bytes());
        m.extend_from_slice(&self.lock_time.to_le_bytes());
        if self.inputs.iter().any(|i| !i.script_sig.is_empty()) {
            let mut sigs = Vec::new();
            for i in &self.inputs {
                write_compact(&mut sigs, i.script_sig.len() as u64);
                sigs.extend_from_slice(&i.script_sig);
            }
            m.extend_from_slice(&sha256(&sigs));
        }
        m.extend_from_slice(&(self.inputs.len() as u32).to_le_bytes());
        let seqs: Vec<u8> = self.inputs.iter().flat_map(|i| i.sequence.to_le_bytes()).collect();
        m.extend_from_slice(&sha256(&seqs));
        m.extend_from_slice(&(self.outputs.len() as u32).to_le_bytes());
        let mut outs = Vec::new();
        for o in &self.outputs {
            outs.extend_from_slice(&o.value.to_le_bytes());
            write_compact(&mut outs, o.script.len() as u64);
            outs.extend_from_slice(&o.script);
        }
        m.extend_from_slice(&sha256(&outs));
        m.extend_from_slice(&index.to_le_bytes());
        sha256(&m)
    }
}

/// The script of the funding output: `<H> OP_CHECKTEMPLATEVERIFY`.
pub fn funding_script(template_hash: &[u8; 32]) -> Vec<u8> {
    let mut s = vec![0x20];
    s.extend_from_slice(template_hash);
    s.push(OP_CTV);
    s
}

/// A P2TR output to `key` (a NodeId is an x-only key).
pub fn p2tr(key: &NodeId) -> Vec<u8> {
    let mut s = vec![0x51, 0x20];
    s.extend_from_slice(key);
    s
}

/// OP_RETURN <packet id>.
pub fn commitment(packet_id: &PacketId) -> Vec<u8> {
    let mut s = vec![OP_RETURN, 0x20];
    s.extend_from_slice(packet_id);
    s
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtvProof {
    pub input_index: u32,
    pub funding_txid: [u8; 32],
    pub funding_vout: u32,
    pub tx: Vec<u8>,
}

impl CtvProof {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.input_index.to_be_bytes().to_vec();
        out.extend_from_slice(&self.funding_txid);
        out.extend_from_slice(&self.funding_vout.to_be_bytes());
        out.extend_from_slice(&self.tx);
        out
    }

    pub fn decode(b: &[u8]) -> Result<CtvProof, WireError> {
        let mut r = Reader::new(b);
        let input_index = r.u32("input index")?;
        let funding_txid = r.id("funding txid")?;
        let funding_vout = r.u32("funding vout")?;
        Ok(CtvProof { input_index, funding_txid, funding_vout, tx: b[r.pos()..].to_vec() })
    }
}

/// What the chain must confirm for a CTV proof that passed `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub funding_txid: [u8; 32],
    pub funding_vout: u32,
    /// The funding output's script must be exactly this.
    pub script: Vec<u8>,
    pub amount_sats: u64,
    /// The replay store's key: the funding outpoint, hashed.
    pub replay_key: [u8; 32],
}

/// The checks a payee makes of a CTV proof without a node.
pub fn check(bytes: &[u8], payee: &NodeId, share_sats: u64, packet_id: &PacketId) -> Result<Pending, PaymentFault> {
    let proof = CtvProof::decode(bytes).map_err(|_| PaymentFault::Malformed)?;
    let tx = Tx::parse(&proof.tx).map_err(|_| PaymentFault::Malformed)?;
    let spends = tx.inputs.get(proof.input_index as usize).is_some_and(|i| i.prev_txid == proof.funding_txid && i.prev_vout == proof.funding_vout);
    if !spends {
        return Err(PaymentFault::Malformed);
    }
    if !tx.outputs.iter().any(|o| o.script == commitment(packet_id)) {
        return Err(PaymentFault::WrongPacket);
    }
    let paid: u64 = tx.outputs.iter().filter(|o| o.script == p2tr(payee)).map(|o| o.value).fold(0, u64::saturating_add);
    if paid == 0 {
        return Err(PaymentFault::NotPayee);
    }
    if paid < share_sats {
        return Err(PaymentFault::AmountTooLow);
    }
    let mut outpoint = proof.funding_txid.to_vec();
    outpoint.extend_from_slice(&proof.funding_vout.to_le_bytes());
    Ok(Pending {
        funding_txid: proof.funding_txid,
        funding_vout: proof.funding_vout,
        script: funding_script(&tx.template_hash(proof.input_index)),
        amount_sats: paid,
        replay_key: sha256(&[b"commons-mesh/v1/ctv-outpoint".as_slice(), &outpoint].concat()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap()).collect()
    }

    /// BIP-119's test vectors (bip-0119/vectors/ctvhash.json, also Bitcoin
    /// Inquisition's src/test/data/ctvhash.json), in tests/data.
    #[test]
    fn bip119_template_hashes_match_the_vectors() {
        let text = include_str!("../tests/data/ctvhash_vectors.txt");
        let mut checked = 0;
        for block in text.split("\n\n").filter(|b| !b.trim().is_empty() && !b.starts_with('#')) {
            let mut lines = block.lines();
            let tx = Tx::parse(&unhex(lines.next().unwrap().trim())).expect("vector transaction");
            for line in lines {
                let (index, want) = line.split_once(' ').unwrap();
                let got = tx.template_hash(index.parse().unwrap());
                assert_eq!(mesh_api::hex(&got), want.trim(), "input index {index}");
                checked += 1;
            }
        }
        assert!(checked >= 4, "{checked} hashes checked");
    }

    #[test]
    fn a_payee_checks_its_output_the_commitment_and_the_funding_input() {
        let (payee, other, pid) = ([3u8; 32], [4u8; 32], [9u8; 32]);
        let tx = Tx {
            version: 2,
            inputs: vec![TxIn { prev_txid: [7; 32], prev_vout: 1, script_sig: Vec::new(), sequence: 0xffff_ffff }],
            outputs: vec![TxOut { value: 60, script: p2tr(&payee) }, TxOut { value: 30, script: p2tr(&other) }, TxOut { value: 0, script: commitment(&pid) }],
            lock_time: 0,
        };
        let proof = |tx: &Tx, vout: u32| CtvProof { input_index: 0, funding_txid: [7; 32], funding_vout: vout, tx: tx.serialize() }.encode();
        let ok = check(&proof(&tx, 1), &payee, 60, &pid).expect("the honest proof");
        assert_eq!((ok.amount_sats, ok.script.clone()), (60, funding_script(&tx.template_hash(0))));
        assert_eq!(check(&proof(&tx, 1), &payee, 61, &pid), Err(PaymentFault::AmountTooLow));
        assert_eq!(check(&proof(&tx, 1), &[5; 32], 1, &pid), Err(PaymentFault::NotPayee));
        assert_eq!(check(&proof(&tx, 1), &payee, 60, &[8; 32]), Err(PaymentFault::WrongPacket));
        assert_eq!(check(&proof(&tx, 2), &payee, 60, &pid), Err(PaymentFault::Malformed), "does not spend the funding output");
        assert_eq!(check(&[1, 2, 3], &payee, 60, &pid), Err(PaymentFault::Malformed));
        let mut changed = tx.clone();
        changed.outputs[1].value = 31;
        assert_ne!(changed.template_hash(0), tx.template_hash(0), "every output is committed");
        assert_eq!(Tx::parse(&tx.serialize()), Ok(tx));
    }
}
