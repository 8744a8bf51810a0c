//! A policy compiled against this kernel, once: the kernel check (a
//! missing feature is an error unless the policy allows that downgrade),
//! the seccomp program, and every string and number the child needs as C
//! values, so that between clone and exec nothing is parsed or decided.

use serde::Serialize;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::cgroup::CgroupMode;
use crate::error::SandboxError;
use crate::features::KernelFeatures;
use crate::policy::{Feature, Policy, LANDLOCK_ABI_NET, LANDLOCK_ABI_SCOPE};

/// A policy compiled against this kernel: everything the child needs, ready
/// to use without parsing or deciding anything.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub policy: Policy,
    pub(crate) seccomp: Option<seccompiler::BpfProgram>,
    pub(crate) hostname: CString,
    pub(crate) root_tmpfs_opts: CString,
    pub(crate) data: Option<StagedData>,
    pub(crate) ro_binds: Vec<StagedBind>,
    /// (host node, staged path) for each /dev node, when the policy has /dev.
    pub(crate) dev_nodes: Vec<(CString, CString)>,
    pub(crate) envp: Vec<CString>,
    pub(crate) rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
    pub(crate) cap_last_cap: u32,
    pub(crate) landlock_abi: u32,
    pub(crate) landlock_partial_ok: bool,
    /// v1 hosts cannot CLONE_INTO_CGROUP, so the child unshares its cgroup
    /// namespace only after the parent has placed it.
    pub(crate) unshare_cgroup_late: bool,
    /// Features this policy runs without, by its own explicit permission.
    pub downgrades: Vec<Downgrade>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Downgrade {
    pub feature: Feature,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub(crate) struct StagedData {
    pub source: CString,
    pub staged_target: CString,
    pub allow_exec: bool,
    pub read_only: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct StagedBind {
    pub source: CString,
    pub staged_target: CString,
    pub is_dir: bool,
}

pub(crate) fn cstr(s: impl AsRef<[u8]>, what: &str) -> Result<CString, SandboxError> {
    CString::new(s.as_ref()).map_err(|_| SandboxError::PolicyInvalid {
        origin: "policy".into(),
        field: what.into(),
        message: "contains a NUL byte".into(),
    })
}

fn staged(target: &Path) -> Result<CString, SandboxError> {
    let mut v = b"/tmp".to_vec();
    v.extend_from_slice(target.as_os_str().as_bytes());
    cstr(v, "mount target")
}

/// Check the policy against the kernel and compile it.
pub fn prepare(policy: &Policy, kernel: &KernelFeatures) -> Result<Prepared, SandboxError> {
    policy.validate("policy")?;
    let downgrades = check_kernel(policy, kernel)?;
    let landlock_abi = if policy.landlock.is_some() { kernel.landlock_abi } else { 0 };
    prepare_checked(policy, kernel, downgrades, landlock_abi)
}

/// What the policy needs from this kernel: `Err(MissingFeature)` for the
/// first missing feature the policy does not allow to be missing, else the
/// downgrades it does allow (each one logged).
pub fn check_kernel(policy: &Policy, kernel: &KernelFeatures) -> Result<Vec<Downgrade>, SandboxError> {
    let mut downgrades = Vec::new();
    // `detail` is built only for a feature that is missing (this runs on
    // every launch).
    let mut need = |feature: Feature, present: bool, detail: &dyn Fn() -> String| -> Result<(), SandboxError> {
        if present {
            return Ok(());
        }
        let detail = detail();
        if policy.allow_downgrade.contains(&feature) {
            tracing::warn!(policy = %policy.name, %feature, %detail, "running without a kernel feature (allowed by policy)");
            downgrades.push(Downgrade { feature, detail });
            Ok(())
        } else {
            Err(SandboxError::MissingFeature { policy: policy.name.clone(), feature, detail })
        }
    };
    need(Feature::UserNamespace, kernel.user_namespaces, &|| kernel.user_namespace_detail())?;
    need(Feature::Seccomp, policy.seccomp.is_none() || kernel.seccomp_filter, &|| "no seccomp filter mode".into())?;
    if let Some(ll) = &policy.landlock {
        need(Feature::Landlock, kernel.landlock_abi >= ll.min_abi, &|| {
            format!("Landlock ABI {} < required {}", kernel.landlock_abi, ll.min_abi)
        })?;
        if ll.scope_abstract_unix || ll.scope_signal {
            need(Feature::LandlockScope, kernel.landlock_abi >= LANDLOCK_ABI_SCOPE, &|| {
                format!("Landlock ABI {} has no scoping (needs {LANDLOCK_ABI_SCOPE}, Linux 6.12)", kernel.landlock_abi)
            })?;
        }
        if !ll.tcp_bind.is_empty() || !ll.tcp_connect.is_empty() {
            need(Feature::LandlockNet, kernel.landlock_abi >= LANDLOCK_ABI_NET, &|| {
                format!("Landlock ABI {} has no TCP rules (needs {LANDLOCK_ABI_NET}, Linux 6.7)", kernel.landlock_abi)
            })?;
        }
    }
    let cg = &policy.cgroup;
    if cg.enabled {
        match &kernel.cgroup {
            CgroupMode::Unavailable { reason } => need(Feature::Cgroup, false, &|| reason.clone())?,
            mode => {
                for (feature, set, controller) in [
                    (Feature::CgroupMemory, cg.memory_max.is_some(), "memory"),
                    (Feature::CgroupCpu, cg.cpu_max.is_some(), "cpu"),
                    (Feature::CgroupPids, cg.pids_max.is_some(), "pids"),
                ] {
                    need(feature, !set || mode.has_controller(controller), &|| missing_controller(mode, controller))?;
                }
            }
        }
    }
    Ok(downgrades)
}

/// Why a controller is missing, and where it has to be enabled.
pub(crate) fn missing_controller(mode: &CgroupMode, controller: &str) -> String {
    match mode {
        CgroupMode::Unified { mount, own, .. } => format!(
            "the {controller} controller is not in {}/cgroup.controllers: the parent cgroup (outside hostd's delegation: \
             systemd's Delegate=, or the container runtime) must enable it in its cgroup.subtree_control",
            crate::cgroup::join_cgroup(mount, own.to_string_lossy().as_ref()).display()
        ),
        _ => format!("no cgroup v1 hierarchy with the {controller} controller holds this process"),
    }
}

fn prepare_checked(
    policy: &Policy,
    kernel: &KernelFeatures,
    downgrades: Vec<Downgrade>,
    landlock_abi: u32,
) -> Result<Prepared, SandboxError> {
    let seccomp = match &policy.seccomp {
        Some(s) if kernel.seccomp_filter => {
            Some(s.compile().map_err(|message| SandboxError::Seccomp { policy: policy.name.clone(), message })?)
        }
        _ => None,
    };
    let data = match &policy.rootfs.data {
        Some(d) => Some(StagedData {
            source: cstr(d.source.as_os_str().as_bytes(), "rootfs.data.source")?,
            staged_target: staged(&d.target)?,
            allow_exec: d.allow_exec,
            read_only: d.read_only,
        }),
        None => None,
    };
    let mut ro_binds = Vec::new();
    for b in &policy.rootfs.ro_binds {
        let meta = std::fs::metadata(&b.source).map_err(|e| SandboxError::io(&b.source, "stat bind source", e))?;
        ro_binds.push(StagedBind {
            source: cstr(b.source.as_os_str().as_bytes(), "rootfs.ro_binds.source")?,
            staged_target: staged(&b.target)?,
            is_dir: meta.is_dir(),
        });
    }
    if let Some(d) = &policy.rootfs.data {
        if !d.source.is_dir() {
            return Err(SandboxError::PolicyInvalid {
                origin: "policy".into(),
                field: "rootfs.data.source".into(),
                message: format!("{} is not a directory", d.source.display()),
            });
        }
    }
    let mut dev_nodes = Vec::new();
    if policy.rootfs.dev {
        for node in crate::policy::DEV_NODES {
            dev_nodes.push((cstr(node, "dev node")?, staged(Path::new(node))?));
        }
    }
    let envp = policy.env.iter().map(|(k, v)| cstr(format!("{k}={v}"), "env")).collect::<Result<_, _>>()?;
    let r = policy.rlimits;
    let rlimits = [
        (libc::RLIMIT_NOFILE, r.nofile),
        (libc::RLIMIT_CORE, r.core),
        (libc::RLIMIT_FSIZE, r.fsize),
        (libc::RLIMIT_MEMLOCK, r.memlock),
    ]
    .into_iter()
    .filter_map(|(res, v)| v.map(|v| (res, v)))
    .collect();
    Ok(Prepared {
        policy: policy.clone(),
        seccomp,
        hostname: cstr(&policy.hostname, "hostname")?,
        root_tmpfs_opts: cstr(format!("mode=0755,size={},nr_inodes=256", policy.rootfs.tmpfs_size_bytes), "rootfs")?,
        data,
        ro_binds,
        dev_nodes,
        envp,
        rlimits,
        cap_last_cap: kernel.cap_last_cap,
        landlock_abi,
        landlock_partial_ok: policy.allow_downgrade.contains(&Feature::Landlock),
        unshare_cgroup_late: policy.namespaces.cgroup && !matches!(kernel.cgroup, CgroupMode::Unified { .. }),
        downgrades,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::V1Hierarchy;

    fn kernel(landlock_abi: u32, cgroup: CgroupMode) -> KernelFeatures {
        KernelFeatures {
            kernel_release: "test".into(),
            landlock_abi,
            seccomp_filter: true,
            user_namespaces: true,
            cgroup,
            cap_last_cap: 40,
            user_namespace_refusal: None,
        }
    }

    fn v1(controllers: &[&str]) -> CgroupMode {
        CgroupMode::Legacy {
            hierarchies: controllers.iter().map(|c| V1Hierarchy { controller: c.to_string(), own_dir: format!("/x/{c}").into() }).collect(),
        }
    }

    fn missing(policy: &Policy, k: &KernelFeatures) -> Option<Feature> {
        match check_kernel(policy, k) {
            Err(SandboxError::MissingFeature { feature, .. }) => Some(feature),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => None,
        }
    }

    #[test]
    fn a_missing_feature_is_refused_by_name() {
        let strict = Policy::default();
        let full = v1(&["memory", "cpu", "pids"]);
        assert_eq!(missing(&strict, &kernel(7, full.clone())), None);
        assert_eq!(missing(&strict, &kernel(LANDLOCK_ABI_SCOPE - 1, full.clone())), Some(Feature::Landlock), "min_abi is 6");
        let mut below_scope = strict.clone();
        below_scope.landlock.as_mut().expect("landlock").min_abi = 1;
        assert_eq!(missing(&below_scope, &kernel(5, full.clone())), Some(Feature::LandlockScope));
        assert_eq!(missing(&strict, &kernel(7, v1(&["cpu", "pids"]))), Some(Feature::CgroupMemory));
        assert_eq!(missing(&strict, &kernel(7, CgroupMode::Unavailable { reason: "none".into() })), Some(Feature::Cgroup));
        let mut no_userns = kernel(7, full.clone());
        no_userns.user_namespaces = false;
        assert_eq!(missing(&strict, &no_userns), Some(Feature::UserNamespace));
        let mut no_seccomp = kernel(7, full);
        no_seccomp.seccomp_filter = false;
        assert_eq!(missing(&strict, &no_seccomp), Some(Feature::Seccomp));
    }

    #[test]
    fn an_allowed_downgrade_is_reported_not_refused() {
        let p = Policy { allow_downgrade: vec![Feature::Landlock, Feature::LandlockScope], ..Policy::default() };
        let downgrades = check_kernel(&p, &kernel(2, v1(&["memory", "cpu", "pids"]))).expect("allowed");
        let features: Vec<Feature> = downgrades.iter().map(|d| d.feature).collect();
        assert_eq!(features, [Feature::Landlock, Feature::LandlockScope]);
        assert!(downgrades[0].detail.contains("ABI 2"), "{:?}", downgrades[0]);
    }

    #[test]
    fn tcp_rules_need_the_network_abi() {
        let mut p = Policy::default();
        let ll = p.landlock.as_mut().expect("landlock");
        ll.min_abi = 1;
        ll.scope_abstract_unix = false;
        ll.scope_signal = false;
        ll.tcp_connect = vec![8333];
        assert_eq!(missing(&p, &kernel(LANDLOCK_ABI_NET - 1, v1(&["memory", "cpu", "pids"]))), Some(Feature::LandlockNet));
        assert_eq!(missing(&p, &kernel(LANDLOCK_ABI_NET, v1(&["memory", "cpu", "pids"]))), None);
    }
}
