//! manifest + host config + kernel probe → the `sandbox::Policy` a module
//! runs under. A pure function: same inputs, same policy, same digest.
//!
//! Filesystem: the module sees an empty read-only root and, only if it holds
//! a filesystem permission, its own `data/modules/<name>/files/` at `/data`:
//! * none of read/write/manage_filesystem: nothing mounted, no Landlock grant;
//! * read_filesystem: mounted read-only; Landlock read_file + read_dir;
//! * write_filesystem: read-write; Landlock write_file, truncate, make_reg,
//!   remove_file (plus reading only with read_filesystem);
//! * manage_filesystem: additionally make_dir, remove_dir, make_sym, refer.
//!
//! Syscalls: every permission is served over fd 3 or governed by Landlock,
//! so none adds to the baseline allowlist (policies/seccomp-baseline.toml).

use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

use crate::config::{HostConfig, Limits};
use crate::manifest::ValidManifest;
use crate::permissions::Permission;
use sandbox::policy::{CgroupLimits, CpuMax, DataMount, FsAccess, FsRule, LandlockPolicy, Policy};
use sandbox::seccomp::SeccompPolicy;

/// Where the module's data dir appears inside its sandbox.
pub const DATA_TARGET: &str = "/data";

/// Landlock rights on `/data` for a permission set; empty = no access.
pub fn data_access(perms: &std::collections::BTreeSet<Permission>) -> Vec<FsAccess> {
    let mut access = Vec::new();
    if perms.contains(&Permission::ReadFilesystem) {
        access.extend([FsAccess::ReadFile, FsAccess::ReadDir]);
    }
    if perms.contains(&Permission::WriteFilesystem) || perms.contains(&Permission::ManageFilesystem) {
        access.extend([FsAccess::WriteFile, FsAccess::Truncate, FsAccess::MakeReg, FsAccess::RemoveFile]);
    }
    if perms.contains(&Permission::ManageFilesystem) {
        // Refer: renames (and links) across directories. No MakeSym: the
        // seccomp baseline kills link and symlink for every module, and the
        // two layers say the same thing.
        access.extend([FsAccess::MakeDir, FsAccess::RemoveDir, FsAccess::Refer]);
    }
    access.sort();
    access.dedup();
    access
}

/// The effective limits: the host's (default or per-module), tightened by
/// whatever the manifest asks for, never loosened.
pub fn effective_limits(host: Limits, m: &ValidManifest) -> Limits {
    let mut l = host;
    if let Some(r) = m.manifest.resources {
        let tighten = |host: u64, asked: Option<u64>| asked.map_or(host, |a| a.min(host));
        l.memory_max_bytes = tighten(l.memory_max_bytes, r.memory_max_bytes);
        l.pids_max = tighten(l.pids_max, r.pids_max);
        l.nofile = tighten(l.nofile, r.nofile);
        l.cpu_percent = r.cpu_percent.map_or(l.cpu_percent, |c| c.min(l.cpu_percent));
    }
    l
}

pub fn generate(m: &ValidManifest, config: &HostConfig, host_id: u32) -> Policy {
    let name = &m.manifest.name;
    let limits = effective_limits(config.limits_for(name), m);
    let access = data_access(&m.permissions);
    let mut policy = Policy { name: name.clone(), hostname: name.clone(), ..Policy::default() };
    policy.identity.host_uid = host_id;
    policy.identity.host_gid = host_id;
    policy.rootfs.tmpfs_size_bytes = limits.tmpfs_bytes;
    // The module's files/ is group hostd (setgid): files it creates stay
    // readable and writable by hostd's file requests, and by nobody else.
    policy.umask = 0o007;
    if !access.is_empty() {
        policy.rootfs.data = Some(DataMount {
            source: config.module_data_dir(name).join("files"),
            target: DATA_TARGET.into(),
            allow_exec: false,
            read_only: !access.contains(&FsAccess::WriteFile),
        });
    }
    policy.landlock = Some(LandlockPolicy {
        min_abi: config.sandbox.min_landlock_abi,
        rules: if access.is_empty() { Vec::new() } else { vec![FsRule { path: DATA_TARGET.into(), access }] },
        ..LandlockPolicy::default()
    });
    policy.seccomp = Some(SeccompPolicy::baseline());
    policy.rlimits.nofile = Some(limits.nofile);
    policy.rlimits.fsize = Some(limits.fsize_bytes);
    policy.rlimits.core = Some(0);
    policy.rlimits.memlock = Some(0);
    policy.cgroup = CgroupLimits {
        enabled: true,
        memory_max: Some(limits.memory_max_bytes),
        memory_swap_max: Some(0),
        cpu_max: Some(CpuMax { quota_us: u64::from(limits.cpu_percent) * 1000, period_us: 100_000 }),
        pids_max: Some(limits.pids_max),
    };
    policy.env = BTreeMap::from([
        ("HOSTD_MODULE".to_string(), name.clone()),
        ("HOSTD_MODULE_VERSION".to_string(), m.version.to_string()),
        ("HOSTD_IPC_FD".to_string(), "3".to_string()),
    ]);
    policy.allow_downgrade = config.sandbox.allow_downgrade.clone();
    policy
}

/// `sha256:` of the policy's canonical JSON: what an operator can compare
/// between `policy show` and a running module.
pub fn digest(policy: &Policy) -> String {
    #[derive(Serialize)]
    struct Canonical<'a> {
        domain: &'static str,
        policy: &'a Policy,
    }
    let json = serde_json::to_vec(&Canonical { domain: "hostd/policy/v1", policy }).unwrap_or_default();
    format!("sha256:{}", hex::encode(Sha256::digest(&json)))
}
