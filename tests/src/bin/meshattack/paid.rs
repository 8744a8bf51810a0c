//! Paid attacks: the attacker runs the honest quote and stub-payment round
//! trips with the path's payees, then breaks one thing in the bundle (or
//! skips paying) and sends the packet. Each kind is caught by the payee
//! whose entry it breaks:
//!
//! | kind | breaks | refused by |
//! |---|---|---|
//! | `paid-valid` | nothing (the control) | delivered |
//! | `paid-self-minted` | destination's invoice signed with the attacker's key | destination: not_payee |
//! | `paid-wrong-preimage` | destination's preimage | destination: wrong_preimage |
//! | `paid-tampered` | one character of the destination's invoice | destination: bad_invoice |
//! | `paid-amount-low` | destination's invoice for 1 sat less, signed with its Lightning key | destination: amount_too_low |
//! | `paid-expired` | destination's invoice expired before the packet, same key | destination: expired |
//! | `paid-reordered` | first and last entries swapped (outside the source's signature) | first router: not_payee |
//! | `paid-other-packet` | the last valid packet's bundle on a new packet | first router: wrong_packet |
//! | `paid-ctv` | a well-formed CTV template (no node can confirm its funding) | first router: ctv_without_node |
//!
//! The Lightning-key kinds play a Lightning node that, as real ones do,
//! issues an invoice for whatever amount, description hash and expiry a
//! requester names: the destination binds that key in its record
//! (`lightning_key`), the attacker holds its secret (`ln_secret`).

use commons_mesh::bolt11::{Currency, Unsigned};
use commons_mesh::ctv::{self, CtvProof, Tx, TxIn, TxOut};
use commons_mesh::identity::{random_bytes, sha256, Identity};
use commons_mesh::mesh_api::{NodeId, PacketId};
use commons_mesh::packet::{DataPacket, FLAG_ACK};
use commons_mesh::proof::{description_hash, issue, payee_share, shares, Bundle, Claim, Entry, Role};
use commons_mesh::settle::{Settle, Stage};
use commons_mesh::now_ms;

/// A paid attack in progress: its packet and the round trip awaited.
pub struct PaidRun {
    pub kind: String,
    pub packet: DataPacket,
    pub pid: PacketId,
    pub invoices: Vec<String>,
}

pub enum Step {
    /// Send this settle message to the first hop.
    Settle(Settle),
    /// Send this packet (done).
    Packet(Box<DataPacket>, PacketId),
}

pub struct Keys<'a> {
    pub attacker: &'a Identity,
    pub lightning: Option<&'a Identity>,
    pub currency: Currency,
}

fn settle(run: &PaidRun, stage: Stage) -> Settle {
    Settle::outbound(stage, &run.packet, run.pid, if stage == Stage::Pay { run.invoices.clone() } else { Vec::new() })
}

/// Where a paid packet goes, what it pays and how long its payload is.
pub struct Target {
    pub dest: NodeId,
    pub routers: Vec<NodeId>,
    pub fee_sats: u64,
    pub payload_len: usize,
}

/// Start `kind`: the first step, and the run to continue (if any).
pub fn start(kind: &str, id: &Identity, seq: u64, t: Target, last_bundle: Option<&Vec<u8>>) -> Result<(Step, Option<PaidRun>), String> {
    let Target { dest, routers, fee_sats, payload_len } = t;
    let mut payload = format!("\x00paid attack {kind} {seq}").into_bytes();
    payload.resize(payload.len().max(payload_len), b'.');
    // Long enough for a benchmark's burst to be prepared, then fired.
    let mut packet = DataPacket { flags: FLAG_ACK, sequence: seq, ttl_secs: 600, fee_sats, payload, ..super::packet(id, dest, routers) };
    let pid = packet.sign(id);
    match kind {
        "paid-ctv" => {
            // A well-formed template paying every payee its share and
            // committing the packet: only the chain can say it is funded.
            let s = shares(packet.fee_sats, &packet.routers);
            let payees = packet.routers.iter().zip(&s.routers).map(|(r, v)| (*r, *v)).chain(std::iter::once((packet.destination, s.destination)));
            let mut outputs: Vec<TxOut> = payees.map(|(p, v)| TxOut { value: v, script: ctv::p2tr(&p) }).collect();
            outputs.push(TxOut { value: 0, script: ctv::commitment(&pid) });
            let funding_txid = random_bytes::<32>().map_err(|e| e.to_string())?;
            let tx = Tx { version: 2, inputs: vec![TxIn { prev_txid: funding_txid, prev_vout: 0, script_sig: Vec::new(), sequence: 0xffff_ffff }], outputs, lock_time: 0 };
            packet.payment = Bundle::Ctv(CtvProof { input_index: 0, funding_txid, funding_vout: 0, tx: tx.serialize() }.encode()).encode();
            Ok((Step::Packet(Box::new(packet), pid), None))
        }
        "paid-other-packet" => {
            packet.payment = last_bundle.ok_or("send paid-valid first")?.clone();
            Ok((Step::Packet(Box::new(packet), pid), None))
        }
        "paid-valid" | "paid-self-minted" | "paid-wrong-preimage" | "paid-tampered" | "paid-amount-low" | "paid-expired" | "paid-reordered" => {
            let run = PaidRun { kind: kind.to_string(), packet, pid, invoices: Vec::new() };
            Ok((Step::Settle(settle(&run, Stage::Quote)), Some(run)))
        }
        other => Err(format!("unknown paid attack {other:?}")),
    }
}

/// A settle message came back: the next step.
pub fn advance(run: &mut PaidRun, back: Settle, keys: &Keys<'_>) -> Result<Step, String> {
    match back.stage {
        Stage::Quote => {
            run.invoices = back.invoices;
            Ok(Step::Settle(settle(run, Stage::Pay)))
        }
        Stage::Pay => {
            let mut entries: Vec<Entry> = run.invoices.iter().zip(back.preimages.iter().chain(std::iter::repeat(&[0u8; 32]))).map(|(i, p)| Entry { invoice: i.clone(), preimage: *p }).collect();
            forge(run, &mut entries, keys)?;
            run.packet.payment = Bundle::Lightning(entries).encode();
            Ok(Step::Packet(Box::new(run.packet.clone()), run.pid))
        }
    }
}

/// Break the bundle the way `run.kind` says.
fn forge(run: &PaidRun, entries: &mut [Entry], keys: &Keys<'_>) -> Result<(), String> {
    let p = &run.packet;
    let last = entries.len().checked_sub(1).ok_or("no payees")?;
    let share = payee_share(&shares(p.fee_sats, &p.routers), last).1;
    let now_s = now_ms() / 1000;
    let lightning = || keys.lightning.ok_or("this attack needs ln_secret in the attacker's config");
    let ln_invoice = |key: &Identity, amount_msat: u64, at: u64, expiry: u64| {
        let preimage = random_bytes::<32>().unwrap_or([9; 32]);
        let dh = description_hash(&run.pid, &p.destination, Role::Destination, share);
        (Unsigned::new(keys.currency, amount_msat, at, sha256(&preimage), [1; 32], dh, expiry).sign(&key.secret_key()), preimage)
    };
    let d = &mut entries[last];
    match run.kind.as_str() {
        "paid-valid" => {}
        "paid-self-minted" => {
            // The upstream hole: an invoice "for the destination" minted by the sender.
            let claim = Claim { packet_id: &run.pid, payee: &p.destination, role: Role::Destination, share_sats: share };
            let (invoice, preimage) = issue(&keys.attacker.secret_key(), &claim, keys.currency, now_s, 600).map_err(|e| e.to_string())?;
            *d = Entry { invoice, preimage };
        }
        "paid-wrong-preimage" => d.preimage = random_bytes::<32>().map_err(|e| e.to_string())?,
        "paid-tampered" => {
            let mut b = d.invoice.clone().into_bytes();
            let at = b.len() / 2;
            b[at] = if b[at] == b'q' { b'p' } else { b'q' };
            d.invoice = String::from_utf8(b).map_err(|e| e.to_string())?;
        }
        "paid-amount-low" => {
            let (invoice, preimage) = ln_invoice(lightning()?, share * 1000 - 1000, now_s, 600);
            *d = Entry { invoice, preimage };
        }
        "paid-expired" => {
            let (invoice, preimage) = ln_invoice(lightning()?, share * 1000, now_s - 1200, 600);
            *d = Entry { invoice, preimage };
        }
        "paid-reordered" => entries.swap(0, last),
        other => return Err(format!("unknown paid attack {other:?}")),
    }
    Ok(())
}
