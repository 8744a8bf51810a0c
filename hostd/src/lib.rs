//! hostd as a library; the `hostd` binary (`cli/`) is its command line.
//!
//! The map, by role:
//! * `module/` — what a module is before it runs: manifest, permissions,
//!   trust, discovery, manifest → sandbox policy, `policy show`;
//! * `daemon/` — `hostd run`: the launcher process, connections, the
//!   permission-checked hub, event bus, storage, lifecycle, control socket,
//!   and the privilege drop;
//! * `config` — the host config (`hostd.toml`) every role reads (its
//!   `[node]` section in `node_config`, `[mesh]` in `mesh_config`);
//! * `spelling` — "did you mean" for config and manifest errors;
//! * `beneath` — path resolution that cannot leave a directory.
//!
//! The sandbox itself is the `sandbox` crate; the wire protocol is
//! `hostd-protocol`. `docs/architecture.md` has the whole picture.

pub mod beneath;
pub mod config;
pub mod daemon;
pub mod module;
pub mod mesh_config;
pub mod node_config;
pub mod spelling;
#[cfg(test)]
mod scratch;

pub use module::{discovery, elf, manifest, permissions, policy_show, policygen, reference, trust};
