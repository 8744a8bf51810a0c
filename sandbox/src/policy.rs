//! The `Policy` value: everything about one confinement, as data.
//!
//! A policy is what an operator audits (`hostd policy show`) and what the
//! launcher enforces; nothing the launcher does is decided anywhere else.
//! Every field has a secure default, so `Policy::default()` is the strictest
//! useful sandbox: all namespaces, no filesystem beyond an empty read-only
//! root, the baseline seccomp allowlist, Landlock with no grants.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::seccomp::SeccompPolicy;

// Defaults are per field, not `#[serde(default)]` on the struct: that would
// build a whole `Policy::default()` — parsing the seccomp baseline — for
// every policy read, even one that brings its own seccomp rules.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Short identifier: cgroup directory name and default hostname.
    #[serde(default = "default_name")]
    pub name: String,
    #[serde(default)]
    pub namespaces: Namespaces,
    #[serde(default)]
    pub identity: Identity,
    #[serde(default = "default_hostname")]
    pub hostname: String,
    #[serde(default)]
    pub rootfs: RootFs,
    #[serde(default)]
    pub rlimits: Rlimits,
    #[serde(default)]
    pub cgroup: CgroupLimits,
    /// `None` disables Landlock entirely (only for weakened test controls).
    #[serde(default = "default_landlock")]
    pub landlock: Option<LandlockPolicy>,
    /// `None` disables seccomp entirely (only for weakened test controls).
    #[serde(default = "default_seccomp")]
    pub seccomp: Option<SeccompPolicy>,
    #[serde(default)]
    pub capabilities: CapabilityPolicy,
    /// The complete environment of the sandboxed process; nothing is inherited.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// File mode creation mask of the sandboxed process.
    #[serde(default = "default_umask")]
    pub umask: u32,
    /// Kernel features this policy may run without. Anything missing that is
    /// not listed here makes the launch fail.
    #[serde(default)]
    pub allow_downgrade: Vec<Feature>,
}

fn default_name() -> String {
    "sandbox".into()
}

fn default_hostname() -> String {
    "hostd-sandbox".into()
}

fn default_landlock() -> Option<LandlockPolicy> {
    Some(LandlockPolicy::default())
}

fn default_seccomp() -> Option<SeccompPolicy> {
    Some(SeccompPolicy::baseline())
}

fn default_umask() -> u32 {
    0o077
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            name: default_name(),
            namespaces: Namespaces::default(),
            identity: Identity::default(),
            hostname: default_hostname(),
            rootfs: RootFs::default(),
            rlimits: Rlimits::default(),
            cgroup: CgroupLimits::default(),
            landlock: default_landlock(),
            seccomp: default_seccomp(),
            capabilities: CapabilityPolicy::default(),
            env: BTreeMap::new(),
            umask: default_umask(),
            allow_downgrade: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Namespaces {
    pub user: bool,
    pub mount: bool,
    pub pid: bool,
    pub net: bool,
    pub ipc: bool,
    pub uts: bool,
    pub cgroup: bool,
}

impl Default for Namespaces {
    fn default() -> Self {
        Namespaces { user: true, mount: true, pid: true, net: true, ipc: true, uts: true, cgroup: true }
    }
}

/// Which host ids the sandbox's single inside id maps to. Each sandbox gets
/// its own unprivileged host uid/gid so two sandboxes never share an owner.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Identity {
    pub host_uid: u32,
    pub host_gid: u32,
    pub inside_uid: u32,
    pub inside_gid: u32,
}

impl Default for Identity {
    fn default() -> Self {
        Identity { host_uid: 62000, host_gid: 62000, inside_uid: 0, inside_gid: 0 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RootFs {
    /// Size cap of the tmpfs that becomes `/` (it is remounted read-only).
    pub tmpfs_size_bytes: u64,
    /// Keep `/` writable after pivot_root (weakened test controls only).
    pub writable_root: bool,
    /// Read-only bind mounts from the host.
    pub ro_binds: Vec<BindMount>,
    /// The one read-write directory, mounted nosuid,nodev,noexec.
    pub data: Option<DataMount>,
    /// Minimal /dev: null, zero, full, random, urandom.
    pub dev: bool,
    /// procfs with hidepid=invisible,subset=pid.
    pub proc: bool,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs { tmpfs_size_bytes: 1 << 20, writable_root: false, ro_binds: Vec::new(), data: None, dev: true, proc: true }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BindMount {
    pub source: PathBuf,
    pub target: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DataMount {
    pub source: PathBuf,
    #[serde(default = "default_data_target")]
    pub target: PathBuf,
    /// Drop noexec (weakened test controls only).
    #[serde(default)]
    pub allow_exec: bool,
    /// Mount it read-only too (Landlock already denies writes when the
    /// rules grant only reading; this makes the mount agree).
    #[serde(default)]
    pub read_only: bool,
}

fn default_data_target() -> PathBuf {
    PathBuf::from("/data")
}

/// `None` leaves a limit as inherited; every default is set.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Rlimits {
    pub nofile: Option<u64>,
    pub core: Option<u64>,
    pub fsize: Option<u64>,
    pub memlock: Option<u64>,
}

impl Default for Rlimits {
    fn default() -> Self {
        Rlimits { nofile: Some(256), core: Some(0), fsize: Some(64 << 20), memlock: Some(0) }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CgroupLimits {
    pub enabled: bool,
    pub memory_max: Option<u64>,
    /// Swap allowed on top of memory_max; 0 means none (the default).
    pub memory_swap_max: Option<u64>,
    pub cpu_max: Option<CpuMax>,
    pub pids_max: Option<u64>,
}

impl Default for CgroupLimits {
    fn default() -> Self {
        CgroupLimits {
            enabled: true,
            memory_max: Some(256 << 20),
            memory_swap_max: Some(0),
            cpu_max: Some(CpuMax { quota_us: 100_000, period_us: 100_000 }),
            pids_max: Some(64),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CpuMax {
    pub quota_us: u64,
    pub period_us: u64,
}

/// Landlock ABI 4, Linux 6.7: TCP bind/connect rules (landlock(7)).
pub const LANDLOCK_ABI_NET: u32 = 4;
/// Landlock ABI 6, Linux 6.12: abstract-unix-socket and signal scoping.
pub const LANDLOCK_ABI_SCOPE: u32 = 6;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LandlockPolicy {
    /// Refuse to launch on a kernel below this ABI unless `landlock` is in
    /// `allow_downgrade`. The default is [`LANDLOCK_ABI_SCOPE`], the first ABI
    /// with signal/abstract-socket scoping.
    pub min_abi: u32,
    /// Paths inside the sandbox and what may be done beneath them.
    pub rules: Vec<FsRule>,
    pub tcp_bind: Vec<u16>,
    pub tcp_connect: Vec<u16>,
    pub scope_abstract_unix: bool,
    pub scope_signal: bool,
}

impl Default for LandlockPolicy {
    fn default() -> Self {
        LandlockPolicy {
            min_abi: LANDLOCK_ABI_SCOPE,
            rules: Vec::new(),
            tcp_bind: Vec::new(),
            tcp_connect: Vec::new(),
            scope_abstract_unix: true,
            scope_signal: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FsRule {
    pub path: PathBuf,
    pub access: Vec<FsAccess>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum FsAccess {
    Execute,
    ReadFile,
    ReadDir,
    WriteFile,
    Truncate,
    RemoveFile,
    RemoveDir,
    MakeReg,
    MakeDir,
    MakeSym,
    Refer,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CapabilityPolicy {
    /// Drop every capability (bounding, ambient, inheritable, permitted,
    /// effective) and lock securebits. `false` only for weakened controls.
    pub drop_all: bool,
}

impl Default for CapabilityPolicy {
    fn default() -> Self {
        CapabilityPolicy { drop_all: true }
    }
}

/// Kernel features a policy can depend on (defined with the probe).
pub use crate::features::Feature;

/// Device nodes of the minimal /dev (bound from the host's).
pub const DEV_NODES: [&str; 5] = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"];

impl Policy {
    /// Landlock grants the launcher adds to every ruleset besides
    /// `landlock.rules` (and besides the verified binary's fd, which gets
    /// execute + read_file): the /dev nodes and /proc this policy mounts.
    /// `hostd policy show` prints exactly these.
    pub fn implicit_landlock_rules(&self) -> Vec<FsRule> {
        let mut rules = Vec::new();
        if self.rootfs.dev {
            for node in DEV_NODES {
                let writable = !node.ends_with("random");
                let access = if writable { vec![FsAccess::ReadFile, FsAccess::WriteFile] } else { vec![FsAccess::ReadFile] };
                rules.push(FsRule { path: node.into(), access });
            }
        }
        if self.rootfs.proc {
            rules.push(FsRule { path: "/proc".into(), access: vec![FsAccess::ReadFile, FsAccess::ReadDir] });
        }
        rules
    }

    /// Parse a policy file (TOML, or JSON when the text starts with `{`).
    pub fn from_text(text: &str, origin: &str) -> Result<Policy, crate::SandboxError> {
        let parsed = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| e.to_string())
        } else {
            toml::from_str(text).map_err(|e| e.to_string())
        };
        let policy: Policy =
            parsed.map_err(|message| crate::SandboxError::PolicyParse { origin: origin.into(), message })?;
        policy.validate(origin)?;
        Ok(policy)
    }

    /// Checks that cannot be expressed in the types.
    pub fn validate(&self, origin: &str) -> Result<(), crate::SandboxError> {
        let bad = |field: &str, why: String| crate::SandboxError::PolicyInvalid {
            origin: origin.into(),
            field: field.into(),
            message: why,
        };
        if self.name.is_empty()
            || self.name.len() > 64
            || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad("name", format!("{:?} must be 1-64 chars of [A-Za-z0-9_-]", self.name)));
        }
        if self.hostname.is_empty() || self.hostname.len() > 64 {
            return Err(bad("hostname", "must be 1-64 bytes".into()));
        }
        if self.identity.host_uid == 0 || self.identity.host_gid == 0 {
            return Err(bad("identity", "a sandbox must never map to host root (uid/gid 0)".into()));
        }
        if !self.namespaces.mount && (self.rootfs.data.is_some() || !self.rootfs.ro_binds.is_empty()) {
            return Err(bad("rootfs", "mounts need the mount namespace".into()));
        }
        let check_target = |field: &str, p: &std::path::Path| -> Result<(), crate::SandboxError> {
            if !p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                return Err(bad(field, format!("{} must be absolute without '..'", p.display())));
            }
            if p == std::path::Path::new("/") || p.starts_with("/proc") || p.starts_with("/dev") {
                return Err(bad(field, format!("{} would shadow /, /proc or /dev", p.display())));
            }
            Ok(())
        };
        if let Some(d) = &self.rootfs.data {
            check_target("rootfs.data.target", &d.target)?;
        }
        for b in &self.rootfs.ro_binds {
            check_target("rootfs.ro_binds.target", &b.target)?;
        }
        if let Some(cpu) = self.cgroup.cpu_max {
            if cpu.period_us < 1000 || cpu.period_us > 1_000_000 || cpu.quota_us < 1000 {
                return Err(bad("cgroup.cpu_max", "period must be 1000..=1000000 us and quota >= 1000 us".into()));
            }
        }
        if let Some(s) = &self.seccomp {
            s.validate().map_err(|m| bad("seccomp", m))?;
        }
        Ok(())
    }
}
