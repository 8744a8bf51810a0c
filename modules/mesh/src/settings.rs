//! The module's `[mesh]` configuration (its config.toml with the
//! operator's `[modules.commons-mesh]` on top, as hostd merged it). Every
//! timer and bound is a key; the defaults are seed 003's values where it
//! names one. Unknown keys and bad values are errors naming the key.

use crate::monopoly_settings::MonopolySettings;
use crate::pay_settings::PaymentSettings;
use crate::record::FeeSchedule;
use mesh_api::MeshMode;

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub enabled: bool,
    pub mode: MeshMode,
    /// Read by hostd (it owns the listener); kept here for `status`.
    pub listen_addr: String,
    /// Peers to link to at start, and again whenever the link drops.
    pub peers: Vec<String>,
    pub fees: FeeSchedule,
    pub advert_interval_ms: u64,
    pub route_expiry_ms: u64,
    pub discovery_timeout_ms: u64,
    /// After the first route response, how long to wait for better ones.
    pub discovery_collect_ms: u64,
    pub max_hops: u8,
    pub max_routes: usize,
    pub keepalive_ms: u64,
    pub keepalive_misses: u32,
    pub default_ttl_secs: u32,
    pub max_ttl_secs: u32,
    pub clock_skew_ms: u64,
    pub dedup_capacity: usize,
    pub max_sources: usize,
    /// Per source, bytes/s of free traffic this node carries.
    pub free_bytes_per_sec: u64,
    pub route_requests_per_sec: u32,
    pub control_per_sec: u32,
    pub handler_queue: usize,
    pub handler_in_flight: usize,
    pub max_handlers: usize,
    pub confirm_timeout_ms: u64,
    pub link_queue_frames: usize,
    pub max_links: usize,
    /// One packet in this many asks for an ACK (quality measurement).
    pub ack_every: u64,
    pub payments: PaymentSettings,
    pub monopoly: MonopolySettings,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            enabled: true,
            mode: MeshMode::PaymentGated,
            listen_addr: "0.0.0.0:8334".into(),
            peers: Vec::new(),
            fees: FeeSchedule { base_sats: 1, per_router_sats: 1, per_kib_sats: 1 },
            advert_interval_ms: 30_000,
            route_expiry_ms: 3_600_000,
            discovery_timeout_ms: 30_000,
            discovery_collect_ms: 250,
            max_hops: 10,
            max_routes: 1024,
            keepalive_ms: 10_000,
            keepalive_misses: 3,
            default_ttl_secs: 60,
            max_ttl_secs: 3600,
            clock_skew_ms: 30_000,
            dedup_capacity: 262_144,
            max_sources: 10_000,
            free_bytes_per_sec: 1 << 20,
            route_requests_per_sec: 5,
            control_per_sec: 20_000,
            handler_queue: 1024,
            handler_in_flight: 32,
            max_handlers: 64,
            confirm_timeout_ms: 5_000,
            link_queue_frames: 1024,
            max_links: 64,
            ack_every: 8,
            payments: PaymentSettings::default(),
            monopoly: MonopolySettings::default(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("module config [mesh] {key}: {why}")]
pub struct SettingsError {
    pub key: String,
    pub why: String,
}

pub(crate) fn bad(key: &str, why: impl Into<String>) -> SettingsError {
    SettingsError { key: key.into(), why: why.into() }
}

pub(crate) fn int(key: &str, v: &toml::Value, min: i64, max: i64) -> Result<u64, SettingsError> {
    match v.as_integer() {
        Some(i) if (min..=max).contains(&i) => Ok(i as u64),
        Some(i) => Err(bad(key, format!("{i} is outside {min}..={max}"))),
        None => Err(bad(key, format!("expected an integer, found {v}"))),
    }
}

impl Settings {
    /// From the module's whole merged config (the `[mesh]` table in it).
    pub fn from_config(config: &toml::Table) -> Result<Settings, SettingsError> {
        let mut s = Settings::default();
        let Some(mesh) = config.get("mesh") else { return Ok(s) };
        let mesh = mesh.as_table().ok_or_else(|| bad("", "[mesh] must be a table"))?;
        for (k, v) in mesh {
            let k = k.as_str();
            match k {
                "enabled" => s.enabled = v.as_bool().ok_or_else(|| bad(k, "expected true or false"))?,
                "mode" => s.mode = v.as_str().ok_or_else(|| bad(k, "expected a string"))?.parse().map_err(|e: String| bad(k, e))?,
                "listen_addr" => s.listen_addr = v.as_str().ok_or_else(|| bad(k, "expected \"ip:port\""))?.to_string(),
                "peers" => {
                    let list = v.as_array().ok_or_else(|| bad(k, "expected a list of \"ip:port\""))?;
                    s.peers = list.iter().map(|p| p.as_str().map(str::to_string).ok_or_else(|| bad(k, "expected strings"))).collect::<Result<_, _>>()?;
                    for p in &s.peers {
                        p.parse::<std::net::SocketAddr>().map_err(|e| bad(k, format!("{p:?}: {e}")))?;
                    }
                }
                "fee_base_sats" => s.fees.base_sats = int(k, v, 0, i64::MAX)?,
                "fee_per_router_sats" => s.fees.per_router_sats = int(k, v, 0, i64::MAX)?,
                "fee_per_kib_sats" => s.fees.per_kib_sats = int(k, v, 0, i64::MAX)?,
                "advert_interval_ms" => s.advert_interval_ms = int(k, v, 100, 86_400_000)?,
                "route_expiry_ms" => s.route_expiry_ms = int(k, v, 500, 7 * 86_400_000)?,
                "discovery_timeout_ms" => s.discovery_timeout_ms = int(k, v, 100, 600_000)?,
                "discovery_collect_ms" => s.discovery_collect_ms = int(k, v, 0, 60_000)?,
                "max_hops" => s.max_hops = int(k, v, 1, crate::packet::MAX_ROUTERS as i64)? as u8,
                "max_routes" => s.max_routes = int(k, v, 1, 1_000_000)? as usize,
                "keepalive_ms" => s.keepalive_ms = int(k, v, 100, 3_600_000)?,
                "keepalive_misses" => s.keepalive_misses = int(k, v, 1, 1000)? as u32,
                "default_ttl_secs" => s.default_ttl_secs = int(k, v, 1, 86_400)? as u32,
                "max_ttl_secs" => s.max_ttl_secs = int(k, v, 1, 86_400)? as u32,
                "clock_skew_ms" => s.clock_skew_ms = int(k, v, 0, 3_600_000)?,
                "dedup_capacity" => s.dedup_capacity = int(k, v, 1024, 100_000_000)? as usize,
                "max_sources" => s.max_sources = int(k, v, 1, 10_000_000)? as usize,
                "free_bytes_per_sec" => s.free_bytes_per_sec = int(k, v, 1, i64::MAX)?,
                "route_requests_per_sec" => s.route_requests_per_sec = int(k, v, 1, 1_000_000)? as u32,
                "control_per_sec" => s.control_per_sec = int(k, v, 1, 10_000_000)? as u32,
                "handler_queue" => s.handler_queue = int(k, v, 1, 1_000_000)? as usize,
                "handler_in_flight" => s.handler_in_flight = int(k, v, 1, 4096)? as usize,
                "max_handlers" => s.max_handlers = int(k, v, 1, 10_000)? as usize,
                "confirm_timeout_ms" => s.confirm_timeout_ms = int(k, v, 10, 3_600_000)?,
                "link_queue_frames" => s.link_queue_frames = int(k, v, 16, 1_000_000)? as usize,
                "max_links" => s.max_links = int(k, v, 1, 100_000)? as usize,
                "ack_every" => s.ack_every = int(k, v, 1, 1_000_000)?,
                other => {
                    if !s.payments.set(other, v)? && !s.monopoly.set(other, v)? {
                        return Err(bad(other, "unknown key (see docs/commons-mesh.md for the keys)"));
                    }
                }
            }
        }
        if s.default_ttl_secs > s.max_ttl_secs {
            return Err(bad("default_ttl_secs", format!("{} is above max_ttl_secs {}", s.default_ttl_secs, s.max_ttl_secs)));
        }
        s.payments.check(s.max_ttl_secs, s.clock_skew_ms)?;
        s.monopoly.check()?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seeds_and_bad_keys_are_named() {
        let s = Settings::from_config(&toml::Table::new()).unwrap();
        assert_eq!((s.mode, s.route_expiry_ms, s.discovery_timeout_ms, s.max_hops), (MeshMode::PaymentGated, 3_600_000, 30_000, 10));
        let parse = |t: &str| Settings::from_config(&t.parse::<toml::Table>().unwrap());
        assert_eq!(parse("[mesh]\nmode = \"open\"\npeers = [\"169.254.1.2:9000\"]").unwrap().mode, MeshMode::Open);
        assert_eq!(parse("[mesh]\nmode = \"free\"").unwrap_err().key, "mode");
        assert_eq!(parse("[mesh]\nmax_hops = 11").unwrap_err().key, "max_hops");
        assert_eq!(parse("[mesh]\npeers = [\"nowhere\"]").unwrap_err().key, "peers");
        assert_eq!(parse("[mesh]\nroute_expiry = 5").unwrap_err().key, "route_expiry");
        // Payments: the stub never runs on mainnet, and a pruned hash can never verify again.
        assert_eq!(parse("[mesh]\npayment_backend = \"stub\"").unwrap_err().key, "payment_backend");
        let stub = parse("[mesh]\npayment_backend = \"stub\"\nnetwork = \"regtest\"\npay_budgets = { meshping = 500 }").unwrap();
        assert_eq!((stub.payments.budget_of("meshping"), stub.payments.budget_of("other")), (500, 0));
        assert_eq!(parse("[mesh]\nmax_invoice_expiry_secs = 86000").unwrap_err().key, "max_invoice_expiry_secs");
        assert_eq!(parse("[mesh]\nreplay_retention_secs = 5\nmax_invoice_expiry_secs = 60\nmax_ttl_secs = 2\ndefault_ttl_secs = 1\ninvoice_expiry_secs = 60").unwrap_err().key, "max_invoice_expiry_secs");
        assert_eq!(parse("[mesh]\ntreasury_address = \"tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7\"").unwrap_err().key, "treasury_address");
        assert_eq!(parse("[mesh]\nlightning_key = \"02ab\"").unwrap_err().key, "lightning_key");
        assert_eq!(parse("[mesh]\nentity_cap = 1.5").unwrap_err().key, "entity_cap");
        assert_eq!(parse("[mesh]\nanti_monopoly = \"maybe\"").unwrap_err().key, "anti_monopoly");
        assert_eq!(parse("[mesh]\nentities = { \"xyz\" = \"acme\" }").unwrap_err().key, "entities.xyz");
        let id = "11".repeat(32);
        assert_eq!(parse(&format!("[mesh]\nentities = {{ \"{id}\" = \"acme\" }}")).unwrap().monopoly.entities.get(&[0x11; 32]).map(String::as_str), Some("acme"));
    }
}
