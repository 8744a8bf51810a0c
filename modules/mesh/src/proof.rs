//! Payment proofs bound to the packet. Every payee on a paid packet's path
//! (each router, then the destination) issues one BOLT11 invoice for its
//! share of the fee of *this* packet:
//!
//! ```text
//! description_hash = sha256("commons-mesh/v1/invoice" ‖ packet_id ‖ payee ‖ role u8 ‖ share u64)
//! ```
//!
//! The packet carries (invoice, preimage) pairs in path order, outside the
//! source's signature. Each payee checks its own entry: the invoice's
//! signature, that the signer is the payee (its NodeId, or the Lightning
//! key its signed record binds), the description hash recomputed from the
//! packet, the amount against its share, the expiry against the packet's
//! creation, and sha256(preimage) = payment hash. Forging an entry needs
//! the payee's key or a sha256 preimage; the replay store (keyed on the
//! payment hash) stops reuse.
//!
//! Bundle layout: `version u8 | kind u8 | n u8 | n × (invoice: len u16, ascii | preimage [32])`
//! (kind 1, Lightning); kind 2 is a CTV proof (its bytes follow as `len u16, bytes`).

use crate::bolt11::{self, Currency, Unsigned, MAX_INVOICE};
use crate::fees::{split, Split};
use crate::identity::{random_bytes, sha256, IdentityError};
use crate::packet::MAX_ROUTERS;
use crate::wire::{Reader, WireError, Writer};
use mesh_api::{NodeId, PacketId, PaymentFault};
use secp256k1::SecretKey;

const BUNDLE_VERSION: u8 = 1;
const KIND_LIGHTNING: u8 = 1;
const KIND_CTV: u8 = 2;
const INVOICE_TAG: &[u8] = b"commons-mesh/v1/invoice";
pub const MAX_CTV_PROOF: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Router,
    Destination,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Router => "router",
            Role::Destination => "destination",
        }
    }
    fn code(self) -> u8 {
        match self {
            Role::Router => 1,
            Role::Destination => 0,
        }
    }
}

pub fn description_hash(packet_id: &PacketId, payee: &NodeId, role: Role, share_sats: u64) -> [u8; 32] {
    let mut m = Vec::with_capacity(INVOICE_TAG.len() + 73);
    m.extend_from_slice(INVOICE_TAG);
    m.extend_from_slice(packet_id);
    m.extend_from_slice(payee);
    m.push(role.code());
    m.extend_from_slice(&share_sats.to_be_bytes());
    sha256(&m)
}

/// Fee `fee` split over `routers`. Each router is its own entity here:
/// every node on the path must compute the same shares from the signed
/// packet alone, and a router's NodeId is the only entity all of them
/// can check (operator maps and network groups are each node's own view).
pub fn shares(fee: u64, routers: &[NodeId]) -> Split {
    split(fee, routers)
}

/// The payee at `position` of `routers ++ [destination]`: its role and share.
pub fn payee_share(s: &Split, position: usize) -> (Role, u64) {
    match s.routers.get(position) {
        Some(r) => (Role::Router, *r),
        None => (Role::Destination, s.destination),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub invoice: String,
    pub preimage: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bundle {
    Lightning(Vec<Entry>),
    Ctv(Vec<u8>),
}

impl Bundle {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(BUNDLE_VERSION);
        match self {
            Bundle::Lightning(entries) => {
                w.u8(KIND_LIGHTNING).u8(entries.len() as u8);
                for e in entries {
                    w.u16(e.invoice.len() as u16).raw(e.invoice.as_bytes()).raw(&e.preimage);
                }
            }
            Bundle::Ctv(bytes) => {
                w.u8(KIND_CTV).u16(bytes.len() as u16).raw(bytes);
            }
        }
        w.0
    }

    pub fn decode(b: &[u8]) -> Result<Bundle, WireError> {
        let mut r = Reader::new(b);
        let v = r.u8("bundle version")?;
        if v != BUNDLE_VERSION {
            return Err(WireError::BadVersion(v));
        }
        let bundle = match r.u8("bundle kind")? {
            KIND_LIGHTNING => {
                let n = usize::from(r.u8("entries")?);
                if n > MAX_ROUTERS + 1 {
                    return Err(WireError::TooLong { field: "entries", len: n, max: MAX_ROUTERS + 1 });
                }
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let len = usize::from(r.u16("invoice length")?);
                    if len > MAX_INVOICE {
                        return Err(WireError::TooLong { field: "invoice", len, max: MAX_INVOICE });
                    }
                    let invoice = std::str::from_utf8(r.take(len, "invoice")?).map_err(|_| WireError::Invalid("invoice text"))?.to_string();
                    let preimage = r.id("preimage")?;
                    entries.push(Entry { invoice, preimage });
                }
                Bundle::Lightning(entries)
            }
            KIND_CTV => {
                let len = usize::from(r.u16("ctv length")?);
                if len > MAX_CTV_PROOF {
                    return Err(WireError::TooLong { field: "ctv proof", len, max: MAX_CTV_PROOF });
                }
                Bundle::Ctv(r.take(len, "ctv proof")?.to_vec())
            }
            _ => return Err(WireError::Invalid("bundle kind")),
        };
        r.finish()?;
        Ok(bundle)
    }
}

/// What a payee expects of its invoice.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub packet_id: &'a PacketId,
    pub payee: &'a NodeId,
    /// The Lightning key the payee's signed record binds, if any.
    pub lightning_key: Option<&'a [u8; 33]>,
    pub role: Role,
    pub share_sats: u64,
    pub created_ms: u64,
    pub skew_ms: u64,
    pub currency: Currency,
    pub max_expiry_secs: u64,
}

/// An invoice that passed every check but the preimage's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub payment_hash: [u8; 32],
    pub amount_sats: u64,
    /// Unix seconds.
    pub expires_at: u64,
}

/// The checks of one invoice, cheapest first after decoding.
pub fn check_invoice(invoice: &str, e: &Expected<'_>) -> Result<Checked, PaymentFault> {
    let inv = bolt11::decode(invoice).map_err(|_| PaymentFault::BadInvoice)?;
    if inv.unsigned.currency != e.currency {
        return Err(PaymentFault::WrongNetwork);
    }
    let own = inv.payee_x_only() == *e.payee || e.lightning_key == Some(&inv.payee);
    if !own {
        return Err(PaymentFault::NotPayee);
    }
    if inv.description_hash != Some(description_hash(e.packet_id, e.payee, e.role, e.share_sats)) {
        return Err(PaymentFault::WrongPacket);
    }
    let amount_msat = inv.amount_msat().unwrap_or(0);
    if amount_msat < e.share_sats.saturating_mul(1000) {
        return Err(PaymentFault::AmountTooLow);
    }
    let created_s = e.created_ms / 1000;
    let skew_s = e.skew_ms.div_ceil(1000);
    if inv.expiry_secs > e.max_expiry_secs || inv.timestamp() > created_s + skew_s || inv.expires_at() < created_s {
        return Err(PaymentFault::Expired);
    }
    Ok(Checked { payment_hash: inv.payment_hash, amount_sats: amount_msat / 1000, expires_at: inv.expires_at() })
}

/// What a bundle proved without the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proven {
    /// A paid invoice: final.
    Invoice(Checked),
    /// A CTV template paying this payee: final once the chain shows its
    /// funding output.
    Ctv(crate::ctv::Pending),
}

/// Check the entry at `position` of a packet's bundle (routers first,
/// then the destination); a CTV bundle is one transaction for all payees.
pub fn verify(bundle: &[u8], position: usize, e: &Expected<'_>) -> Result<Proven, PaymentFault> {
    match Bundle::decode(bundle) {
        Ok(Bundle::Ctv(proof)) => crate::ctv::check(&proof, e.payee, e.share_sats, e.packet_id).map(Proven::Ctv),
        _ => verify_entry(bundle, position, e).map(Proven::Invoice),
    }
}

/// Check the Lightning entry at `position` of a packet's bundle.
pub fn verify_entry(bundle: &[u8], position: usize, e: &Expected<'_>) -> Result<Checked, PaymentFault> {
    let entries = match Bundle::decode(bundle) {
        Ok(Bundle::Lightning(entries)) => entries,
        Ok(Bundle::Ctv(_)) => return Err(PaymentFault::Malformed),
        Err(_) if bundle.is_empty() => return Err(PaymentFault::Missing),
        Err(_) => return Err(PaymentFault::Malformed),
    };
    let entry = entries.get(position).ok_or(PaymentFault::Missing)?;
    let checked = check_invoice(&entry.invoice, e)?;
    if sha256(&entry.preimage) != checked.payment_hash {
        return Err(PaymentFault::WrongPreimage);
    }
    Ok(checked)
}

/// What one invoice is for.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub packet_id: &'a PacketId,
    pub payee: &'a NodeId,
    pub role: Role,
    pub share_sats: u64,
}

/// A payee's invoice for its share of a packet, and the preimage it
/// releases once paid.
pub fn issue(key: &SecretKey, c: &Claim<'_>, currency: Currency, now_s: u64, expiry_secs: u64) -> Result<(String, [u8; 32]), IdentityError> {
    let preimage = random_bytes::<32>()?;
    let secret = random_bytes::<32>()?;
    let u = Unsigned::new(currency, c.share_sats.saturating_mul(1000), now_s, sha256(&preimage), secret, description_hash(c.packet_id, c.payee, c.role, c.share_sats), expiry_secs);
    Ok((u.sign(key), preimage))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    struct Payee {
        id: Identity,
    }

    impl Payee {
        fn key(&self) -> SecretKey {
            SecretKey::from_secret_bytes(self.id.secret()).unwrap()
        }
    }

    const NOW_MS: u64 = 1_700_000_000_000;

    fn expected<'a>(pid: &'a PacketId, payee: &'a NodeId, role: Role, share: u64) -> Expected<'a> {
        Expected { packet_id: pid, payee, lightning_key: None, role, share_sats: share, created_ms: NOW_MS, skew_ms: 30_000, currency: Currency::Regtest, max_expiry_secs: 22 * 3600 }
    }

    /// Every way an entry can be wrong is refused with its own fault, and
    /// the honest entry passes (the control).
    #[test]
    fn forged_entries_are_refused_with_their_fault() {
        let dest = Payee { id: Identity::generate().unwrap() };
        let sender = Payee { id: Identity::generate().unwrap() };
        let d = dest.id.node_id();
        let pid = [5u8; 32];
        let now_s = NOW_MS / 1000;
        let issue_as = |p: &Payee, pid: &PacketId, share: u64, at: u64, expiry: u64, cur: Currency| issue(&p.key(), &Claim { packet_id: pid, payee: &d, role: Role::Destination, share_sats: share }, cur, at, expiry).unwrap();
        let one = |inv: String, pre: [u8; 32]| Bundle::Lightning(vec![Entry { invoice: inv, preimage: pre }]).encode();
        let e = expected(&pid, &d, Role::Destination, 60);

        let (inv, pre) = issue_as(&dest, &pid, 60, now_s, 600, Currency::Regtest);
        let honest = verify_entry(&one(inv.clone(), pre), 0, &e).expect("the honest entry verifies");
        assert_eq!((honest.payment_hash, honest.amount_sats), (sha256(&pre), 60));

        let cases: Vec<(&str, Vec<u8>, PaymentFault)> = vec![
            ("self-minted by the sender", { let (i, p) = issue_as(&sender, &pid, 60, now_s, 600, Currency::Regtest); one(i, p) }, PaymentFault::NotPayee),
            ("for another packet", { let (i, p) = issue_as(&dest, &[6; 32], 60, now_s, 600, Currency::Regtest); one(i, p) }, PaymentFault::WrongPacket),
            ("for a smaller share", { let (i, p) = issue_as(&dest, &pid, 59, now_s, 600, Currency::Regtest); one(i, p) }, PaymentFault::WrongPacket),
            ("wrong preimage", one(inv.clone(), [0; 32]), PaymentFault::WrongPreimage),
            ("expired before the packet", { let (i, p) = issue_as(&dest, &pid, 60, now_s - 700, 600, Currency::Regtest); one(i, p) }, PaymentFault::Expired),
            ("issued after the packet", { let (i, p) = issue_as(&dest, &pid, 60, now_s + 600, 600, Currency::Regtest); one(i, p) }, PaymentFault::Expired),
            ("expiry past the cap", { let (i, p) = issue_as(&dest, &pid, 60, now_s, 23 * 3600, Currency::Regtest); one(i, p) }, PaymentFault::Expired),
            ("mainnet invoice", { let (i, p) = issue_as(&dest, &pid, 60, now_s, 600, Currency::Bitcoin); one(i, p) }, PaymentFault::WrongNetwork),
            ("tampered invoice", { let mut b = inv.clone().into_bytes(); let at = b.len() - 20; b[at] = if b[at] == b'q' { b'p' } else { b'q' }; one(String::from_utf8(b).unwrap(), pre) }, PaymentFault::BadInvoice),
            ("no entry for this position", Bundle::Lightning(vec![]).encode(), PaymentFault::Missing),
            ("no bundle", vec![], PaymentFault::Missing),
            ("garbage", vec![1, 1, 5, 0], PaymentFault::Malformed),
        ];
        for (what, bundle, fault) in cases {
            assert_eq!(verify_entry(&bundle, 0, &e), Err(fault), "{what}");
        }
        // An amount below the share with the right description: only a
        // payee's own (external Lightning) key can sign that.
        let low = Unsigned::new(Currency::Regtest, 59_999, now_s, sha256(&pre), [1; 32], description_hash(&pid, &d, Role::Destination, 60), 600).sign(&dest.key());
        assert_eq!(verify_entry(&one(low, pre), 0, &e), Err(PaymentFault::AmountTooLow));
        // The same invoice from a bound Lightning key passes only when bound.
        let ln = Payee { id: Identity::generate().unwrap() };
        let (i, p) = issue(&ln.key(), &Claim { packet_id: &pid, payee: &d, role: Role::Destination, share_sats: 60 }, Currency::Regtest, now_s, 600).unwrap();
        assert_eq!(verify_entry(&one(i.clone(), p), 0, &e), Err(PaymentFault::NotPayee));
        let ln_pub = secp256k1::PublicKey::from_secret_key(&ln.key()).serialize();
        assert!(verify_entry(&one(i, p), 0, &Expected { lightning_key: Some(&ln_pub), ..e }).is_ok());
    }

    #[test]
    fn bundles_round_trip_and_hostile_sizes_are_refused() {
        let b = Bundle::Lightning(vec![Entry { invoice: "lnbcrt1x".into(), preimage: [3; 32] }; 3]);
        assert_eq!(Bundle::decode(&b.encode()), Ok(b));
        let c = Bundle::Ctv(vec![9; 100]);
        assert_eq!(Bundle::decode(&c.encode()), Ok(c));
        assert!(Bundle::decode(&[1, 1, (MAX_ROUTERS + 2) as u8]).is_err());
        let mut long = vec![1, 1, 1];
        long.extend_from_slice(&((MAX_INVOICE + 1) as u16).to_be_bytes());
        assert!(Bundle::decode(&long).is_err());
        let mut trailing = Bundle::Lightning(vec![]).encode();
        trailing.push(0);
        assert!(Bundle::decode(&trailing).is_err());
    }
}
