//! Kernel probe: what this kernel can enforce. Read once at start-up; policies
//! are checked against it before any launch so a missing feature is an error
//! (or an explicit, visible downgrade), never a silent weakening.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use crate::cgroup::CgroupMode;

#[derive(Debug, Clone, Serialize)]
pub struct KernelFeatures {
    pub kernel_release: String,
    pub landlock_abi: u32,
    pub seccomp_filter: bool,
    pub user_namespaces: bool,
    pub cgroup: CgroupMode,
    pub cap_last_cap: u32,
    /// Why creating the sandbox's namespaces failed, when
    /// [`crate::environment::probe_namespaces`] was run and they were refused
    /// (a container runtime's seccomp profile, AppArmor, a masked /proc).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_namespace_refusal: Option<String>,
}

impl KernelFeatures {
    pub fn probe() -> KernelFeatures {
        KernelFeatures {
            kernel_release: kernel_release(),
            landlock_abi: landlock_abi(),
            seccomp_filter: seccomp_filter_available(),
            user_namespaces: user_namespaces_available(),
            cgroup: CgroupMode::detect(),
            cap_last_cap: read_trimmed("/proc/sys/kernel/cap_last_cap").and_then(|s| s.parse().ok()).unwrap_or(40),
            user_namespace_refusal: None,
        }
    }

    /// Why a sandbox cannot get its user namespace here: the namespace
    /// probe's refusal when it ran, else the sysctl/config reason.
    pub fn user_namespace_detail(&self) -> String {
        self.user_namespace_refusal
            .clone()
            .unwrap_or_else(|| "user namespaces are disabled (user.max_user_namespaces is 0, or no CONFIG_USER_NS)".into())
    }

    /// [`KernelFeatures::probe`], plus a real attempt at the sandbox's
    /// namespaces ([`crate::environment::probe_namespaces`]): what a
    /// container runtime refuses shows here, before any launch. Costs a
    /// process (~0.3 ms); the CLI's per-launch path uses `probe`.
    pub fn probe_thoroughly() -> KernelFeatures {
        let mut k = KernelFeatures::probe();
        if k.user_namespaces {
            if let Err(refusal) = crate::environment::probe_namespaces() {
                k.user_namespaces = false;
                k.user_namespace_refusal = Some(refusal.to_string());
            }
        }
        k
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn kernel_release() -> String {
    read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into())
}

/// landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) → ABI.
pub fn landlock_abi() -> u32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: the documented version query takes no attribute pointer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if rc < 0 {
        0
    } else {
        rc as u32
    }
}

fn seccomp_filter_available() -> bool {
    // PR_GET_SECCOMP succeeds on any kernel with CONFIG_SECCOMP; filter mode
    // support shows in /proc/self/status as "Seccomp_filters".
    std::fs::read_to_string("/proc/self/status").map(|s| s.contains("Seccomp_filters:")).unwrap_or(false)
}

fn user_namespaces_available() -> bool {
    let max: u64 = read_trimmed("/proc/sys/user/max_user_namespaces").and_then(|s| s.parse().ok()).unwrap_or(0);
    max > 0 && PathBuf::from("/proc/self/ns/user").exists()
}

/// Kernel features a policy can depend on; named in errors and in
/// `allow_downgrade`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    UserNamespace,
    Landlock,
    LandlockScope,
    LandlockNet,
    Seccomp,
    Cgroup,
    CgroupMemory,
    CgroupCpu,
    CgroupPids,
}

impl std::fmt::Display for Feature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Feature::UserNamespace => "user_namespace",
            Feature::Landlock => "landlock",
            Feature::LandlockScope => "landlock_scope",
            Feature::LandlockNet => "landlock_net",
            Feature::Seccomp => "seccomp",
            Feature::Cgroup => "cgroup",
            Feature::CgroupMemory => "cgroup_memory",
            Feature::CgroupCpu => "cgroup_cpu",
            Feature::CgroupPids => "cgroup_pids",
        };
        f.write_str(s)
    }
}
