//! The `[mesh]` keys of payment-gated routing: the network, how this node
//! pays and gets paid, the replay store's bounds, per-module budgets and
//! the treasury. Checked together at load, so a configuration that could
//! let a pruned payment hash verify again, or run the stub backend on
//! mainnet, never starts.

use crate::bolt11::Currency;
use crate::settings::{bad, int, SettingsError};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Pays and issues through the Lightning module's inter-module calls.
    Lightning,
    /// Test backend: a payee issues its invoice with its mesh key and
    /// releases the preimage when asked, recording the credit; no money
    /// moves. Refused on mainnet.
    Stub,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Lightning => "lightning",
            Backend::Stub => "stub",
        }
    }
}

pub fn network_name(c: Currency) -> &'static str {
    match c {
        Currency::Bitcoin => "mainnet",
        Currency::Testnet => "testnet",
        Currency::Signet => "signet",
        Currency::Regtest => "regtest",
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PaymentSettings {
    pub network: Currency,
    pub backend: Backend,
    /// The module serving `mesh_api::lightning` calls.
    pub lightning_module: String,
    /// Bound in this node's record: invoices signed by it are this node's.
    pub lightning_key: Option<[u8; 33]>,
    pub invoice_expiry_secs: u64,
    pub max_invoice_expiry_secs: u64,
    /// Seed 003: payment hashes are kept 24 h.
    pub replay_retention_secs: u64,
    pub max_replay_entries: usize,
    pub replay_prune_ms: u64,
    /// Invoices issued and not yet paid, held at most.
    pub max_pending_quotes: usize,
    pub quote_timeout_ms: u64,
    /// Per link, invoices issued for quotes per second.
    pub quotes_per_sec: u32,
    /// A quote and payment round trip, end to end.
    pub pay_timeout_ms: u64,
    pub max_routing_fee_msat: u64,
    /// Sats the node may spend per window on behalf of a calling module
    /// that names no budget of its own in `pay_budgets`.
    pub budget_sats: u64,
    pub budgets: BTreeMap<String, u64>,
    pub budget_window_secs: u64,
    pub treasury_address: Option<String>,
    /// Confirmations a CTV proof's funding output needs.
    pub ctv_min_confirmations: u64,
}

impl Default for PaymentSettings {
    fn default() -> PaymentSettings {
        PaymentSettings {
            network: Currency::Bitcoin,
            backend: Backend::Lightning,
            lightning_module: "lightning".into(),
            lightning_key: None,
            invoice_expiry_secs: 600,
            max_invoice_expiry_secs: 22 * 3600,
            replay_retention_secs: 86_400,
            max_replay_entries: 1_000_000,
            replay_prune_ms: 60_000,
            max_pending_quotes: 65_536,
            quote_timeout_ms: 60_000,
            quotes_per_sec: 1000,
            pay_timeout_ms: 10_000,
            max_routing_fee_msat: 10_000,
            budget_sats: 0,
            budgets: BTreeMap::new(),
            budget_window_secs: 86_400,
            treasury_address: None,
            ctv_min_confirmations: 1,
        }
    }
}

/// A compressed secp256k1 public key in hex.
fn hex33(s: &str) -> Option<[u8; 33]> {
    let key = mesh_api::parse_hex::<33>(s).ok()?;
    secp256k1::PublicKey::from_slice(&key).ok()?;
    Some(key)
}

impl PaymentSettings {
    /// Set `k` if it is a payment key; `Ok(false)` if it is not one.
    pub fn set(&mut self, k: &str, v: &toml::Value) -> Result<bool, SettingsError> {
        let text = || v.as_str().ok_or_else(|| bad(k, "expected a string"));
        match k {
            "network" => {
                self.network = match text()? {
                    "mainnet" => Currency::Bitcoin,
                    "testnet" => Currency::Testnet,
                    "signet" => Currency::Signet,
                    "regtest" => Currency::Regtest,
                    other => return Err(bad(k, format!("{other:?}: expected mainnet, testnet, signet or regtest"))),
                }
            }
            "payment_backend" => {
                self.backend = match text()? {
                    "lightning" => Backend::Lightning,
                    "stub" => Backend::Stub,
                    other => return Err(bad(k, format!("{other:?}: expected lightning or stub"))),
                }
            }
            "lightning_module" => self.lightning_module = text()?.to_string(),
            "lightning_key" => self.lightning_key = Some(hex33(text()?).ok_or_else(|| bad(k, "expected a compressed secp256k1 public key in hex (66 characters)"))?),
            "invoice_expiry_secs" => self.invoice_expiry_secs = int(k, v, 60, 7 * 86_400)?,
            "max_invoice_expiry_secs" => self.max_invoice_expiry_secs = int(k, v, 60, 7 * 86_400)?,
            "replay_retention_secs" => self.replay_retention_secs = int(k, v, 1, 30 * 86_400)?,
            "max_replay_entries" => self.max_replay_entries = int(k, v, 1, 100_000_000)? as usize,
            "replay_prune_ms" => self.replay_prune_ms = int(k, v, 100, 3_600_000)?,
            "max_pending_quotes" => self.max_pending_quotes = int(k, v, 1, 10_000_000)? as usize,
            "quote_timeout_ms" => self.quote_timeout_ms = int(k, v, 100, 3_600_000)?,
            "quotes_per_sec" => self.quotes_per_sec = int(k, v, 1, 1_000_000)? as u32,
            "pay_timeout_ms" => self.pay_timeout_ms = int(k, v, 100, 600_000)?,
            "max_routing_fee_msat" => self.max_routing_fee_msat = int(k, v, 0, i64::MAX)?,
            "pay_budget_sats" => self.budget_sats = int(k, v, 0, i64::MAX)?,
            "pay_budget_window_secs" => self.budget_window_secs = int(k, v, 1, 366 * 86_400)?,
            "pay_budgets" => {
                let t = v.as_table().ok_or_else(|| bad(k, "expected a table of module = sats"))?;
                for (module, sats) in t {
                    self.budgets.insert(module.clone(), int(&format!("{k}.{module}"), sats, 0, i64::MAX)?);
                }
            }
            "treasury_address" => self.treasury_address = Some(text()?.to_string()),
            "ctv_min_confirmations" => self.ctv_min_confirmations = int(k, v, 0, 10_000)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The rules between keys; `max_ttl_secs` and `clock_skew_ms` bound
    /// how old a packet's creation time may be when it arrives.
    pub fn check(&self, max_ttl_secs: u32, clock_skew_ms: u64) -> Result<(), SettingsError> {
        if self.backend == Backend::Stub && self.network == Currency::Bitcoin {
            return Err(bad("payment_backend", "the stub backend moves no money and is refused on mainnet; set network = \"regtest\" (or testnet/signet) or payment_backend = \"lightning\""));
        }
        if self.invoice_expiry_secs > self.max_invoice_expiry_secs {
            return Err(bad("invoice_expiry_secs", format!("{} is above max_invoice_expiry_secs {}", self.invoice_expiry_secs, self.max_invoice_expiry_secs)));
        }
        // A stored hash must outlive every packet its invoice could still
        // verify on: invoice life + packet ttl + clock skew.
        let reach = self.max_invoice_expiry_secs + u64::from(max_ttl_secs) + clock_skew_ms.div_ceil(1000);
        if reach >= self.replay_retention_secs {
            return Err(bad(
                "max_invoice_expiry_secs",
                format!("{} s + max_ttl_secs {max_ttl_secs} + clock skew must stay below replay_retention_secs {} (else a pruned payment hash could verify again)", self.max_invoice_expiry_secs, self.replay_retention_secs),
            ));
        }
        if let Some(a) = &self.treasury_address {
            crate::address::check(a, self.network).map_err(|why| bad("treasury_address", format!("{a:?}: {why}")))?;
        }
        Ok(())
    }

    /// The budget of calling module `module`, in sats per window.
    pub fn budget_of(&self, module: &str) -> u64 {
        self.budgets.get(module).copied().unwrap_or(self.budget_sats)
    }
}
