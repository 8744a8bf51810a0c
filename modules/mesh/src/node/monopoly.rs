//! Anti-monopoly in the running node: who each router is (its entity),
//! which path a send may take, and the diversity rule a router applies to
//! the paths it carries.
//!
//! A router's entity, as this node sees it: the operator's map (config
//! `entities`, or `hostd module commons-mesh entity <node> <name>`); else
//! an entity certificate in its signed record from an authority this node
//! trusts (`entity_authorities`); else, for a neighbour linked from a
//! routable address, that address's network group (IPv4 /16, IPv6 /32);
//! else the router itself. What this cannot stop: one operator posing as
//! many entities across many network groups, where no trusted authority
//! vouches for anyone.

use super::state::Node;
use super::{store, Ctx};
use commons_mesh::mesh_api::{EntityShare, MonopolyStats, NodeId};
use commons_mesh::monopoly::{choose, diversity_violation, network_group, routable, Choice, Policy};
use commons_mesh::monopoly_settings::Mode;
use commons_mesh::routing::Path;
use hostd_sdk::protocol::BatchOp;
use std::collections::{BTreeMap, HashMap};

const ENTITY: &[u8] = b"entity/";

/// Entities the operator set at run time (storage), over the config's.
pub async fn load(client: &hostd_sdk::Client, n: &mut Node) -> Result<(), super::RunError> {
    let limit = n.settings.monopoly.max_entities.min(u32::MAX as usize) as u32;
    let stored = client.storage_iter_prefix(store::TREE, ENTITY, limit).await.map_err(|e| super::RunError::Storage(e.to_string()))?;
    n.entities = n.settings.monopoly.entities.clone();
    for (k, v) in stored {
        if let (Ok(id), Ok(name)) = (<[u8; 32]>::try_from(&k[ENTITY.len()..]), String::from_utf8(v)) {
            n.entities.insert(id, name);
        }
    }
    Ok(())
}

/// Set (or with `None` clear) `node`'s entity, durably.
pub async fn set_entity(ctx: &Ctx, node: NodeId, name: Option<String>) -> Result<(), String> {
    {
        let n = ctx.node();
        if name.is_some() && !n.entities.contains_key(&node) && n.entities.len() >= n.settings.monopoly.max_entities {
            return Err(format!("at most {} entities ([mesh] max_entities)", n.settings.monopoly.max_entities));
        }
    }
    let key = [ENTITY, &node[..]].concat();
    let op = match &name {
        Some(v) => BatchOp::Put { key, value: v.clone().into_bytes() },
        None => BatchOp::Delete { key },
    };
    ctx.client.storage_batch(store::TREE, vec![op]).await.map_err(|e| format!("storing the entity: {e}"))?;
    let mut n = ctx.node();
    match name {
        Some(v) => n.entities.insert(node, v),
        None => n.entities.remove(&node),
    };
    Ok(())
}

/// The entity `id`'s certificate names, if an authority this node trusts
/// signed it (this node's own: from its settings).
fn certified(n: &Node, id: &NodeId) -> Option<String> {
    let m = &n.settings.monopoly;
    if *id == n.me {
        return m.certificate.as_ref().filter(|c| m.authorities.contains(&c.authority)).map(|c| c.entity.clone());
    }
    if m.authorities.is_empty() {
        return None;
    }
    let rec = n.table.record(id)?;
    let cert = rec.entity_cert.as_ref()?;
    let mut cache = n.cert_cache.borrow_mut();
    if let Some((sig, entity)) = cache.get(id) {
        if *sig == rec.sig {
            return entity.clone();
        }
    }
    let entity = (m.authorities.contains(&cert.authority) && cert.verify(id)).then(|| cert.entity.clone());
    if cache.len() >= 4 * n.settings.max_routes {
        cache.clear();
    }
    cache.insert(*id, (rec.sig, entity.clone()));
    entity
}

/// `id`'s entity as this node sees it: the operator's map, a trusted
/// certificate, a routable network group, or the node itself.
pub fn entity_of(n: &Node, id: &NodeId) -> String {
    if let Some(e) = n.entities.get(id) {
        return e.clone();
    }
    if let Some(e) = certified(n, id) {
        return e;
    }
    match routable_neighbour(n, id) {
        Some(ip) => format!("net:{}", network_group(ip)),
        None => format!("node:{}", commons_mesh::mesh_api::hex(&id[..8])),
    }
}

/// `id`'s address if it is a neighbour linked from a routable one.
fn routable_neighbour(n: &Node, id: &NodeId) -> Option<std::net::IpAddr> {
    n.link_to(id).and_then(|l| n.links.get(&l)).and_then(|l| l.peer_ip).filter(|ip| routable(*ip))
}

/// Whether every router on `routers` is its own entity: none in the
/// operator's map or in a network group, none twice. Then no rule can be
/// broken, and nothing needs naming (the per-packet fast path).
fn all_distinct(n: &Node, routers: &[NodeId]) -> bool {
    routers.iter().enumerate().all(|(i, r)| !n.entities.contains_key(r) && routable_neighbour(n, r).is_none() && certified(n, r).is_none() && !routers[..i].contains(r))
}

pub fn entities_of(n: &Node, routers: &[NodeId]) -> Vec<String> {
    routers.iter().map(|r| entity_of(n, r)).collect()
}

fn policy(n: &Node) -> Policy {
    let m = &n.settings.monopoly;
    Policy { cap: m.cap, strict: m.mode == Mode::Strict, min_bytes: m.min_bytes }
}

/// The path a send of `bytes` takes among `paths` (best first), metered;
/// `Err(why)` when strict mode finds none compliant.
pub fn choose_path(n: &mut Node, paths: Vec<Path>, bytes: usize, now: u64) -> Result<Path, String> {
    let candidates: Vec<Vec<String>> = paths.iter().map(|p| entities_of(n, &p.routers)).collect();
    let i = match n.settings.monopoly.mode {
        Mode::Off => 0,
        _ => match choose(&candidates, &n.meter, &policy(n), now) {
            Choice::Compliant(i) => i,
            Choice::Relaxed(i) => {
                n.monopoly.relaxed += 1;
                i
            }
            Choice::Failed(why) => {
                n.monopoly.failed += 1;
                return Err(why);
            }
        },
    };
    n.meter.record(&candidates[i], bytes as u64, now);
    paths.into_iter().nth(i).ok_or_else(|| "no path".to_string())
}

/// A router's check of the path it is asked to carry.
pub fn refuses(n: &mut Node, routers: &[NodeId]) -> bool {
    if n.settings.monopoly.mode == Mode::Off || routers.len() < 2 || all_distinct(n, routers) {
        return false;
    }
    let refused = diversity_violation(&entities_of(n, routers)).is_some();
    if refused {
        n.monopoly.paths_refused += 1;
    }
    refused
}

pub fn stats(n: &Node, now: u64) -> MonopolyStats {
    // Route coverage: of the destinations with a path, the fraction each
    // entity has a path to.
    let mut reach: HashMap<String, usize> = HashMap::new();
    let dests = n.table.destinations();
    let mut reachable = 0usize;
    for d in &dests {
        let paths = n.table.paths(d, now);
        if paths.is_empty() {
            continue;
        }
        reachable += 1;
        let mut seen: Vec<String> = paths.iter().flat_map(|p| entities_of(n, &p.routers)).collect();
        seen.sort();
        seen.dedup();
        for e in seen {
            *reach.entry(e).or_default() += 1;
        }
    }
    let mut all: BTreeMap<String, EntityShare> = BTreeMap::new();
    for (e, k) in reach {
        let coverage = k as f64 / reachable.max(1) as f64;
        all.insert(e.clone(), EntityShare { share: n.meter.share(&e, now), entity: e, coverage });
    }
    for e in n.meter.entities(now) {
        all.entry(e.clone()).or_insert_with(|| EntityShare { share: n.meter.share(&e, now), entity: e, coverage: 0.0 });
    }
    MonopolyStats {
        mode: n.settings.monopoly.mode.as_str().to_string(),
        cap: n.settings.monopoly.cap,
        entities: all.into_values().collect(),
        relaxed: n.monopoly.relaxed,
        failed: n.monopoly.failed,
        paths_refused: n.monopoly.paths_refused,
    }
}
