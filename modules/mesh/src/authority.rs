//! The operator's entity-authority tool, run by hand (not under hostd):
//!
//! - `commons-mesh entity-authority new <key file>`: a new authority key
//!   (32 bytes hex, created with mode 0600, never overwritten); prints the
//!   public key for other nodes' `entity_authorities`.
//! - `commons-mesh entity-authority sign <key file> <entity> <node id>`:
//!   prints the `entity_certificate` for that node.

use commons_mesh::entity::EntityCert;
use commons_mesh::identity::Identity;
use commons_mesh::mesh_api::{hex, parse_node_id};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

const USAGE: &str = "entity-authority new <key file> | entity-authority sign <key file> <entity> <node id>";

fn load(path: &str) -> Result<Identity, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let secret = parse_node_id(text.trim()).map_err(|e| format!("{path}: {e}"))?;
    Identity::from_secret(secret).map_err(|e| format!("{path}: {e}"))
}

pub fn run(args: &[String]) -> Result<String, String> {
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["new", path] => {
            let id = Identity::generate().map_err(|e| e.to_string())?;
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|e| format!("{path}: {e}"))?;
            writeln!(f, "{}", hex(&id.secret())).map_err(|e| format!("{path}: {e}"))?;
            Ok(format!("authority public key (for entity_authorities): {}", hex(&id.node_id())))
        }
        ["sign", path, entity, node] => {
            commons_mesh::monopoly_settings::check_entity(entity)?;
            let node = parse_node_id(node)?;
            let cert = EntityCert::sign(&load(path)?, entity, &node);
            Ok(format!("entity_certificate = \"{}\"", cert.to_text()))
        }
        _ => Err(format!("usage: {USAGE}")),
    }
}
