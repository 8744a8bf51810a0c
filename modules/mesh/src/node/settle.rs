//! Settle messages (quote and stub payment) as every node on the path
//! handles them: relay, answer as a payee, turn around at the
//! destination, hand the answer to the waiting source.

use super::state::{Node, Quote};
use super::Ctx;
use commons_mesh::identity::sha256;
use commons_mesh::mesh_api::lightning::{CreateInvoiceRequest, CreateInvoiceResponse, CREATE_INVOICE};
use commons_mesh::mesh_api::{decode, encode, MeshMode, NodeId};
use commons_mesh::msg::LinkMsg;
use commons_mesh::now_ms;
use commons_mesh::pay_settings::Backend;
use commons_mesh::proof::{description_hash, issue, payee_share, shares, Claim, Role};
use commons_mesh::settle::{Settle, Stage};

/// Send `s` on from position `i`: to the next payee, or, from the
/// destination, back towards the source.
fn pass_on(n: &mut Node, mut s: Settle, i: usize) {
    if !s.back && i == s.routers.len() {
        s.back = true;
        s.hop_index = 0;
    } else {
        s.hop_index += 1;
    }
    if let Some(next) = s.hop(usize::from(s.hop_index)).copied() {
        n.send_to(&next, LinkMsg::Settle(s).encode());
    }
}

pub fn on_settle(ctx: &Ctx, link: u64, peer: &NodeId, mut s: Settle) {
    let me = ctx.id.node_id();
    let i = usize::from(s.hop_index);
    let mut n = ctx.node();
    if !n.allow_control(link) {
        return;
    }
    if s.hop(i) != Some(&me) || s.previous(i) != Some(peer) {
        n.counters.drop("settle_misrouted");
        return;
    }
    if s.back {
        if i < s.routers.len() {
            pass_on(&mut n, s, i);
        } else if let Some(waiter) = n.pay.settling.remove(&(s.packet_id, s.stage)) {
            let _ = waiter.send(s);
        } else {
            n.counters.drop("settle_unsolicited");
        }
        return;
    }
    let gated = n.settings.mode == MeshMode::PaymentGated;
    let (role, share) = payee_share(&shares(s.fee_sats, &s.routers), i);
    match s.stage {
        Stage::Quote => {
            if s.invoices.len() != i || !s.preimages.is_empty() {
                n.counters.drop("settle_malformed");
                return;
            }
            if share == 0 || !gated {
                // Nothing to pay here: a free mode waives its share.
                s.invoices.push(String::new());
                return pass_on(&mut n, s, i);
            }
            if !n.allow_quote(link) {
                return;
            }
            match n.settings.payments.backend {
                Backend::Stub => match stub_invoice(ctx, &mut n, &s, role, share) {
                    Some(invoice) => {
                        s.invoices.push(invoice);
                        pass_on(&mut n, s, i);
                    }
                    None => n.counters.drop("quote_refused"),
                },
                Backend::Lightning => {
                    drop(n);
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        match lightning_invoice(&ctx, &s, role, share).await {
                            Ok(invoice) => {
                                s.invoices.push(invoice);
                                pass_on(&mut ctx.node(), s, i);
                            }
                            Err(e) => {
                                ctx.node().counters.drop("quote_refused");
                                ctx.client.warn(&format!("issuing an invoice through {}: {e}", ctx.node().settings.payments.lightning_module));
                            }
                        }
                    });
                }
            }
        }
        Stage::Pay => {
            if s.invoices.len() != s.routers.len() + 1 || s.preimages.len() != i {
                n.counters.drop("settle_malformed");
                return;
            }
            // Stub payment: the payee records the credit by releasing its
            // preimage (once); a wrong or unknown invoice gets zeros, which
            // the source's check refuses. Quotes are found by the invoice's
            // text, so a flood of Pay messages costs no signature checks.
            if n.settings.payments.backend != Backend::Stub {
                n.counters.drop("settle_pay_without_stub");
                return;
            }
            let now = now_ms();
            let released = n.pay.quotes.remove(&sha256(s.invoices[i].as_bytes())).filter(|q| q.until_ms >= now);
            if released.is_some() {
                n.pay.stub_released += 1;
            }
            s.preimages.push(released.map_or([0; 32], |q| q.preimage));
            pass_on(&mut n, s, i);
        }
    }
}

/// The stub backend's invoice: signed with the mesh key, preimage held
/// until paid or `quote_timeout_ms`.
fn stub_invoice(ctx: &Ctx, n: &mut Node, s: &Settle, role: Role, share: u64) -> Option<String> {
    let p = &n.settings.payments;
    if n.pay.quotes.len() >= p.max_pending_quotes {
        return None;
    }
    let now = now_ms();
    let claim = Claim { packet_id: &s.packet_id, payee: &ctx.id.node_id(), role, share_sats: share };
    let (invoice, preimage) = issue(&ctx.id.secret_key(), &claim, p.network, now / 1000, p.invoice_expiry_secs).ok()?;
    let until_ms = now + p.quote_timeout_ms;
    n.pay.quotes.insert(sha256(invoice.as_bytes()), Quote { preimage, until_ms });
    Some(invoice)
}

/// An invoice from the Lightning module, for the key this node's record binds.
async fn lightning_invoice(ctx: &Ctx, s: &Settle, role: Role, share: u64) -> Result<String, String> {
    let (module, expiry) = {
        let n = ctx.node();
        (n.settings.payments.lightning_module.clone(), n.settings.payments.invoice_expiry_secs)
    };
    let req = CreateInvoiceRequest { amount_msat: share.saturating_mul(1000), description_hash: description_hash(&s.packet_id, &ctx.id.node_id(), role, share), expiry_secs: expiry };
    let body = ctx.client.call_module(&module, CREATE_INVOICE, encode(&req)).await.map_err(|e| e.to_string())?;
    let resp: CreateInvoiceResponse = decode(&body)?;
    Ok(resp.invoice)
}

/// Quotes nobody paid in time.
pub fn expire_quotes(n: &mut Node, now: u64) {
    n.pay.quotes.retain(|_, q| q.until_ms >= now);
}
