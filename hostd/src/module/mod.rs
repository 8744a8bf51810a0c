//! The module model: what a module *is* before it runs — its strict
//! `module.toml` (`manifest`), the 26 permissions and the one table of what
//! each unlocks (`permissions`), hash and signature checks against the
//! host's trust anchors (`trust`), whether the entry point can run in an
//! empty sandbox root at all (`elf`), module directories, discovery and host
//! uid allocation (`discovery`), the manifest → sandbox policy generator
//! (`policygen`) and the operator's audit of it (`policy_show`).

pub mod discovery;
pub mod elf;
pub mod manifest;
pub mod permissions;
pub mod policy_network;
pub mod policy_show;
pub mod policygen;
pub mod reference;
pub mod trust;
