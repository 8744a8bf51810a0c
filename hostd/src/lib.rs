//! hostd as a library: manifests, trust, permissions, host config, and the
//! manifest → sandbox policy generator. The `hostd` binary is its CLI.

pub mod beneath;
pub mod config;
pub mod daemon;
pub mod manifest;
pub mod modules;
pub mod permissions;
pub mod policy_show;
pub mod policygen;
pub mod privdrop;
pub mod spelling;
pub mod trust;
