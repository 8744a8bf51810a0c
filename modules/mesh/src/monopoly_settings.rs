//! The `[mesh]` keys of anti-monopoly: the mode, the per-entity cap, how
//! much traffic makes shares meaningful, and the operator's entity map
//! (NodeId → entity; the CLI's `entity` command adds to it at run time).

use crate::settings::{bad, int, SettingsError};
use mesh_api::NodeId;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Measure shares, choose and forward without the rules.
    Off,
    /// Prefer compliant paths; with none, use the best and count it.
    Relaxed,
    /// Only compliant paths; with none, the send fails (RouteFailed "anti-monopoly").
    Strict,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Relaxed => "relaxed",
            Mode::Strict => "strict",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MonopolySettings {
    pub mode: Mode,
    /// Share of this node's routed bytes at or over which an entity is skipped.
    pub cap: f64,
    /// Routed bytes in the hour before shares count.
    pub min_bytes: u64,
    pub entities: BTreeMap<NodeId, String>,
    pub max_entities: usize,
    /// Authorities whose entity certificates this node believes.
    pub authorities: Vec<NodeId>,
    /// This node's own certificate, carried in its record.
    pub certificate: Option<crate::entity::EntityCert>,
}

impl Default for MonopolySettings {
    fn default() -> MonopolySettings {
        MonopolySettings { mode: Mode::Relaxed, cap: 0.30, min_bytes: 1 << 20, entities: BTreeMap::new(), max_entities: 10_000, authorities: Vec::new(), certificate: None }
    }
}

/// Entity names: 1–64 printable ASCII characters without spaces.
pub fn check_entity(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("entity {name:?}: 1–64 printable ASCII characters, no spaces"));
    }
    Ok(())
}

impl MonopolySettings {
    /// Set `k` if it is an anti-monopoly key; `Ok(false)` if it is not one.
    pub fn set(&mut self, k: &str, v: &toml::Value) -> Result<bool, SettingsError> {
        match k {
            "anti_monopoly" => {
                self.mode = match v.as_str().ok_or_else(|| bad(k, "expected a string"))? {
                    "off" => Mode::Off,
                    "relaxed" => Mode::Relaxed,
                    "strict" => Mode::Strict,
                    other => return Err(bad(k, format!("{other:?}: expected off, relaxed or strict"))),
                }
            }
            "entity_cap" => {
                let c = v.as_float().or_else(|| v.as_integer().map(|i| i as f64)).ok_or_else(|| bad(k, "expected a number"))?;
                if !(c > 0.0 && c <= 1.0) {
                    return Err(bad(k, format!("{c} is outside (0, 1]")));
                }
                self.cap = c;
            }
            "entity_min_bytes" => self.min_bytes = int(k, v, 0, i64::MAX)?,
            "max_entities" => self.max_entities = int(k, v, 1, 10_000_000)? as usize,
            "entities" => {
                let t = v.as_table().ok_or_else(|| bad(k, "expected a table of \"<node id hex>\" = \"entity\""))?;
                for (node, name) in t {
                    let key = format!("{k}.{node}");
                    let id = mesh_api::parse_node_id(node).map_err(|e| bad(&key, e))?;
                    let name = name.as_str().ok_or_else(|| bad(&key, "expected a string"))?;
                    check_entity(name).map_err(|e| bad(&key, e))?;
                    self.entities.insert(id, name.to_string());
                }
            }
            "entity_authorities" => {
                let list = v.as_array().ok_or_else(|| bad(k, "expected a list of x-only public keys (64 hex)"))?;
                for a in list {
                    let a = a.as_str().ok_or_else(|| bad(k, "expected strings"))?;
                    self.authorities.push(mesh_api::parse_node_id(a).map_err(|e| bad(k, e))?);
                }
            }
            "entity_certificate" => {
                let text = v.as_str().ok_or_else(|| bad(k, "expected \"<entity>:<authority>:<signature>\""))?;
                self.certificate = Some(crate::entity::EntityCert::from_text(text).map_err(|e| bad(k, e))?);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub fn check(&self) -> Result<(), SettingsError> {
        if self.entities.len() > self.max_entities {
            return Err(bad("entities", format!("{} entries; max_entities is {}", self.entities.len(), self.max_entities)));
        }
        Ok(())
    }
}
