//! Sending a packet, paid when a payee on its path takes payment: charge
//! the calling module's budget, quote (every payee's invoice in one round
//! trip), check each invoice as its payee will, pay (stub round trip or
//! the Lightning module), record the ledger durably, then send the packet
//! with its (invoice, preimage) bundle.

use super::forward::{self, Outgoing};
use super::paystore;
use super::Ctx;
use commons_mesh::identity::sha256;
use commons_mesh::mesh_api::lightning::{PayInvoiceRequest, PayInvoiceResponse, PAY_INVOICE};
use commons_mesh::mesh_api::{decode, encode, hex, Delivery, NackReason, SendPacketRequest, SendPacketResponse};
use commons_mesh::msg::LinkMsg;
use commons_mesh::now_ms;
use commons_mesh::pay_settings::Backend;
use commons_mesh::proof::{check_invoice, payee_share, shares, Bundle, Entry, Expected};
use commons_mesh::settle::{Settle, Stage};
use hostd_sdk::{ErrorBody, ErrorCode};
use std::time::Duration;
use tokio::sync::oneshot;

/// Who pays for packets sent from `hostd module commons-mesh send`.
pub const OPERATOR: &str = "operator";

/// A payee answered, but not with something this node can pay.
fn failed(m: String) -> ErrorBody {
    ErrorBody::new(ErrorCode::Forbidden, m)
}

/// A send, as far as it got without waiting.
pub enum Begun {
    /// Sent (or refused by this node's own mode): the answer, and the
    /// receiver of the ACK/NACK if confirmed.
    Done(SendPacketResponse, Option<oneshot::Receiver<Delivery>>),
    /// Signed, and a payee on the path takes payment: `paid` next.
    Paying(Box<Outgoing>),
}

/// Prepare `req`; an unpaid packet goes at once (no task, no await: the
/// hot path of free traffic).
pub fn begin(ctx: &Ctx, req: &SendPacketRequest) -> Result<Begun, ErrorBody> {
    match forward::prepare(ctx, req)? {
        Err(refused) => Ok(Begun::Done(refused, None)),
        Ok(o) if o.needs_payment => Ok(Begun::Paying(Box::new(o))),
        Ok(o) => forward::launch(ctx, o).map(|(r, rx)| Begun::Done(r, rx)),
    }
}

/// Pay for `o` from `caller`'s budget, then send it.
pub async fn paid(ctx: &Ctx, caller: &str, mut o: Outgoing) -> Result<(SendPacketResponse, Option<oneshot::Receiver<Delivery>>), ErrorBody> {
    let fee = o.packet.fee_sats;
    if let Err(why) = charge(ctx, caller, fee) {
        let reason = NackReason::PaymentRequired { fee_sats: fee };
        let by = ctx.id.node_id();
        return Ok((SendPacketResponse { error: Some(why), delivery: Delivery::Nacked { by, reason }, ..o.response }, None));
    }
    let mut paying = false;
    if let Err(e) = settle(ctx, caller, &mut o, &mut paying).await {
        // Once payment began, sats may have left: the budget keeps them.
        if !paying {
            refund(ctx, caller, fee);
        }
        return Err(e);
    }
    forward::launch(ctx, o)
}

/// Send `req` for `caller`; paid if needed and within its budget.
pub async fn send(ctx: &Ctx, caller: &str, req: &SendPacketRequest) -> Result<(SendPacketResponse, Option<oneshot::Receiver<Delivery>>), ErrorBody> {
    match begin(ctx, req)? {
        Begun::Done(r, rx) => Ok((r, rx)),
        Begun::Paying(o) => paid(ctx, caller, *o).await,
    }
}

/// Take `fee` from `caller`'s budget window, or say why not.
fn charge(ctx: &Ctx, caller: &str, fee: u64) -> Result<(), String> {
    let mut n = ctx.node();
    let (budget, window) = (n.settings.payments.budget_of(caller), n.settings.payments.budget_window_secs);
    let now_s = now_ms() / 1000;
    let spent = n.pay.spent.entry(caller.to_string()).or_insert((now_s, 0));
    if now_s >= spent.0.saturating_add(window) {
        *spent = (now_s, 0);
    }
    if spent.1.saturating_add(fee) > budget {
        return Err(format!(
            "payment required: {fee} sats (module {caller} has {} of its {budget} sats left this {window} s window; [mesh] pay_budgets)",
            budget.saturating_sub(spent.1)
        ));
    }
    spent.1 += fee;
    Ok(())
}

fn refund(ctx: &Ctx, caller: &str, fee: u64) {
    if let Some(s) = ctx.node().pay.spent.get_mut(caller) {
        s.1 = s.1.saturating_sub(fee);
    }
}

/// One round trip of `stage` along the packet's path.
async fn round_trip(ctx: &Ctx, o: &Outgoing, stage: Stage, invoices: Vec<String>) -> Result<Settle, ErrorBody> {
    let s = Settle::outbound(stage, &o.packet, o.pid, invoices);
    let (tx, rx) = oneshot::channel();
    let wait = {
        let mut n = ctx.node();
        if n.pay.settling.len() >= n.settings.payments.max_pending_quotes {
            return Err(ErrorBody::new(ErrorCode::Busy, format!("{} payments are under way ([mesh] max_pending_quotes)", n.pay.settling.len())));
        }
        n.pay.settling.insert((o.pid, stage), tx);
        if !n.send(o.link, LinkMsg::Settle(s).encode()) {
            n.pay.settling.remove(&(o.pid, stage));
            return Err(ErrorBody::new(ErrorCode::Busy, "the first hop's queue is full"));
        }
        Duration::from_millis(n.settings.payments.pay_timeout_ms)
    };
    match tokio::time::timeout(wait, rx).await {
        Ok(Ok(s)) => Ok(s),
        _ => {
            ctx.node().pay.settling.remove(&(o.pid, stage));
            let what = if stage == Stage::Quote { "quote" } else { "payment" };
            Err(ErrorBody::new(ErrorCode::Timeout, format!("no {what} came back from the path within {} ms (a payee may be unreachable, out of quote slots, or without a payment backend)", wait.as_millis())))
        }
    }
}

/// Quote, check, pay, record; on success the packet carries its bundle.
/// `paying` turns true when the payment step starts.
async fn settle(ctx: &Ctx, caller: &str, o: &mut Outgoing, paying: &mut bool) -> Result<(), ErrorBody> {
    let quote = round_trip(ctx, o, Stage::Quote, Vec::new()).await?;
    let p = &o.packet;
    let split = shares(p.fee_sats, &p.routers);
    let payees: Vec<_> = p.routers.iter().chain(std::iter::once(&p.destination)).copied().collect();
    if quote.invoices.len() != payees.len() {
        return Err(failed(format!("the quote came back with {} invoices for {} payees", quote.invoices.len(), payees.len())));
    }
    // What the checks and the payment need, copied out under one lock (not
    // the whole settings, with the operator's entity map, per packet).
    let (skew_ms, payments, keys) = {
        let n = ctx.node();
        let keys: Vec<_> = payees.iter().map(|id| n.table.record(id).and_then(|r| r.lightning_key)).collect();
        (n.settings.clock_skew_ms, n.settings.payments.clone(), keys)
    };
    let mut hashes = Vec::new();
    let mut paid_sats = 0u64;
    for (i, (payee, invoice)) in payees.iter().zip(&quote.invoices).enumerate() {
        if invoice.is_empty() {
            hashes.push(None);
            continue;
        }
        let (role, share) = payee_share(&split, i);
        let e = Expected {
            packet_id: &o.pid,
            payee,
            lightning_key: keys[i].as_ref(),
            role,
            share_sats: share,
            created_ms: p.created_ms,
            skew_ms,
            currency: payments.network,
            max_expiry_secs: payments.max_invoice_expiry_secs,
        };
        let checked = check_invoice(invoice, &e).map_err(|f| failed(format!("payee {} quoted an unusable invoice: {}", hex(payee), f.as_str())))?;
        paid_sats = paid_sats.saturating_add(checked.amount_sats);
        hashes.push(Some(checked.payment_hash));
    }
    *paying = true;
    let preimages = match payments.backend {
        Backend::Stub => round_trip(ctx, o, Stage::Pay, quote.invoices.clone()).await?.preimages,
        Backend::Lightning => {
            let mut out = Vec::new();
            for invoice in &quote.invoices {
                out.push(if invoice.is_empty() { [0; 32] } else { pay_lightning(ctx, &payments.lightning_module, invoice, payments.max_routing_fee_msat).await? });
            }
            out
        }
    };
    let mut entries = Vec::with_capacity(payees.len());
    for (i, (invoice, hash)) in quote.invoices.into_iter().zip(&hashes).enumerate() {
        let preimage = preimages.get(i).copied().unwrap_or([0; 32]);
        if let Some(h) = hash {
            if sha256(&preimage) != *h {
                return Err(failed(format!("payee {} did not release the preimage of its invoice", hex(&payees[i]))));
            }
        }
        entries.push(Entry { invoice, preimage });
    }
    o.packet.payment = Bundle::Lightning(entries).encode();
    record_payment(ctx, caller, paid_sats, split.treasury).await;
    Ok(())
}

async fn pay_lightning(ctx: &Ctx, module: &str, invoice: &str, max_fee_msat: u64) -> Result<[u8; 32], ErrorBody> {
    let req = PayInvoiceRequest { invoice: invoice.to_string(), max_fee_msat };
    let body = ctx.client.call_module(module, PAY_INVOICE, encode(&req)).await.map_err(|e| ErrorBody::new(ErrorCode::ModuleUnavailable, format!("paying through module {module}: {e}")))?;
    let resp: PayInvoiceResponse = decode(&body).map_err(|e| failed(format!("module {module} answered pay_invoice with {e}")))?;
    Ok(resp.preimage)
}

/// The ledger and the caller's budget, in memory and then durably.
async fn record_payment(ctx: &Ctx, caller: &str, paid_sats: u64, treasury: u64) {
    let ops = {
        let mut n = ctx.node();
        let l = &mut n.pay.ledger;
        l.paid_sats = l.paid_sats.saturating_add(paid_sats);
        l.treasury_due_sats = l.treasury_due_sats.saturating_add(treasury);
        l.packets_paid += 1;
        let ledger = paystore::ledger_op(&n.pay.ledger);
        let (start, spent) = n.pay.spent.get(caller).copied().unwrap_or_default();
        vec![ledger, paystore::budget_op(caller, start, spent)]
    };
    if let Err(e) = ctx.client.storage_batch(super::store::TREE, ops).await {
        ctx.client.error(&format!("storing the payment ledger: {e} (the packet goes; the ledger in memory is ahead of storage)"));
    }
}
