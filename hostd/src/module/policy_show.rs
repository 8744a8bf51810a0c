//! `hostd policy show`: the exact policy a module will run under, for an
//! operator to audit. The JSON form is `PolicyReport` (schema
//! `docs/policy-show.schema.json`, id `hostd/policy-show/v1`); fields are
//! only ever added.

use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

use crate::config::HostConfig;
use crate::discovery::{IdMap, ModuleDir};
use crate::permissions::{unlocks, Permission};
use crate::policygen;
use crate::trust::{self, Verification};
use sandbox::policy::Policy;
use sandbox::seccomp::SeccompPolicy;
use sandbox::KernelFeatures;

pub const SCHEMA_ID: &str = "hostd/policy-show/v1";

#[derive(Debug, Serialize)]
pub struct PolicyReport {
    pub schema: &'static str,
    pub module: ModuleInfo,
    pub verification: VerificationReport,
    pub permissions: Vec<PermissionReport>,
    pub namespaces: Vec<&'static str>,
    pub identity: sandbox::policy::Identity,
    pub mounts: Vec<MountReport>,
    pub landlock: LandlockReport,
    pub seccomp: SeccompPolicy,
    pub rlimits: sandbox::policy::Rlimits,
    pub cgroup: sandbox::policy::CgroupLimits,
    pub environment: std::collections::BTreeMap<String, String>,
    pub module_config: toml::Table,
    pub network: super::policy_network::NetworkReport,
    pub kernel: KernelReport,
    /// Features the module runs without, by the host config's explicit leave.
    pub downgrades: Vec<sandbox::Downgrade>,
    /// Set when hostd will refuse to start the module on this kernel.
    pub refused: Option<String>,
    pub policy_digest: String,
    /// The complete policy, as the launcher receives it.
    pub policy: Policy,
}

#[derive(Debug, Serialize)]
pub struct ModuleInfo {
    pub name: String,
    pub version: String,
    pub dir: String,
    pub entry_point: String,
    pub installed: bool,
}

#[derive(Debug, Serialize)]
pub struct VerificationReport {
    pub ok: bool,
    pub error: Option<String>,
    pub details: Option<Verification>,
    pub trusted_anchors: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct PermissionReport {
    pub name: Permission,
    pub description: &'static str,
    pub unlocks: Vec<crate::permissions::RequestKind>,
}

#[derive(Debug, Serialize)]
pub struct MountReport {
    pub target: String,
    pub source: String,
    pub fstype: &'static str,
    pub options: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct LandlockReport {
    pub enabled: bool,
    pub abi_in_force: u32,
    pub min_abi: u32,
    pub rules: Vec<sandbox::policy::FsRule>,
    pub implicit_rules: Vec<String>,
    pub scope_abstract_unix: bool,
    pub scope_signal: bool,
    pub tcp_bind: Vec<u16>,
    pub tcp_connect: Vec<u16>,
}

#[derive(Debug, Serialize)]
pub struct KernelReport {
    pub release: String,
    pub landlock_abi: u32,
    pub seccomp_filter: bool,
    pub user_namespaces: bool,
    pub cgroup: String,
}

pub fn build(m: &ModuleDir, host: &HostConfig, kernel: &KernelFeatures, installed: bool) -> Result<PolicyReport, String> {
    let name = &m.manifest.manifest.name;
    let ids = IdMap::load(host).map_err(|e| e.to_string())?;
    let id = ids.peek(name, host).map_err(|e| e.to_string())?;
    let policy = policygen::generate(&m.manifest, host, id);
    let verification = match trust::inspect(name, &m.dir, &m.manifest.manifest, m.manifest.declared_threshold, &host.trust) {
        Ok((_fd, v)) => {
            let error = v.refusal(name).map(|e| e.to_string());
            VerificationReport { ok: error.is_none(), error, details: Some(v), trusted_anchors: anchors(host) }
        }
        Err(e) => VerificationReport { ok: false, error: Some(e.to_string()), details: None, trusted_anchors: anchors(host) },
    };
    // Only the kernel can refuse a module here; its data dir is created at load.
    let (downgrades, refused) = match sandbox::check_kernel(&policy, kernel) {
        Ok(d) => (d, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let abi = kernel.landlock_abi;
    let ll = policy.landlock.clone().unwrap_or_default();
    Ok(PolicyReport {
        schema: SCHEMA_ID,
        module: ModuleInfo {
            name: name.clone(),
            version: m.manifest.version.to_string(),
            dir: m.dir.display().to_string(),
            entry_point: m.manifest.manifest.entry_point.clone(),
            installed,
        },
        verification,
        permissions: m
            .manifest
            .permissions
            .iter()
            .map(|p| PermissionReport { name: *p, description: p.description(), unlocks: unlocks(*p) })
            .collect(),
        namespaces: namespaces(&policy),
        identity: policy.identity,
        mounts: mounts(&policy),
        landlock: LandlockReport {
            enabled: policy.landlock.is_some(),
            abi_in_force: abi,
            min_abi: ll.min_abi,
            rules: ll.rules.clone(),
            implicit_rules: implicit_rules(&policy),
            scope_abstract_unix: ll.scope_abstract_unix,
            scope_signal: ll.scope_signal,
            tcp_bind: ll.tcp_bind.clone(),
            tcp_connect: ll.tcp_connect.clone(),
        },
        seccomp: policy.seccomp.clone().unwrap_or_else(SeccompPolicy::baseline),
        rlimits: policy.rlimits,
        cgroup: policy.cgroup,
        environment: policy.env.clone(),
        module_config: m.config.clone(),
        network: super::policy_network::build(&m.manifest.permissions, &m.config, host),
        kernel: KernelReport {
            release: kernel.kernel_release.clone(),
            landlock_abi: kernel.landlock_abi,
            seccomp_filter: kernel.seccomp_filter,
            user_namespaces: kernel.user_namespaces,
            cgroup: format!("{:?}", kernel.cgroup),
        },
        downgrades,
        refused,
        policy_digest: policygen::digest(&policy),
        policy,
    })
}

fn anchors(host: &HostConfig) -> Vec<String> {
    host.trust.anchors.iter().map(|a| format!("{} {}", a.name, a.public_key)).collect()
}

fn namespaces(p: &Policy) -> Vec<&'static str> {
    let n = p.namespaces;
    [(n.user, "user"), (n.mount, "mount"), (n.pid, "pid"), (n.net, "net"), (n.ipc, "ipc"), (n.uts, "uts"), (n.cgroup, "cgroup")]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
}

fn mounts(p: &Policy) -> Vec<MountReport> {
    let r = &p.rootfs;
    let mut out = vec![MountReport {
        target: "/".into(),
        source: "tmpfs".into(),
        fstype: "tmpfs",
        options: vec![
            if r.writable_root { "rw" } else { "ro" }.into(),
            "nosuid".into(),
            "nodev".into(),
            "noexec".into(),
            format!("size={}", r.tmpfs_size_bytes),
        ],
    }];
    if let Some(d) = &r.data {
        let mut o = vec![if d.read_only { "ro" } else { "rw" }.to_string(), "nosuid".into(), "nodev".into()];
        if !d.allow_exec {
            o.push("noexec".into());
        }
        out.push(MountReport { target: d.target.display().to_string(), source: d.source.display().to_string(), fstype: "bind", options: o });
    }
    for b in &r.ro_binds {
        out.push(MountReport {
            target: b.target.display().to_string(),
            source: b.source.display().to_string(),
            fstype: "bind",
            options: vec!["ro".into(), "nosuid".into(), "nodev".into()],
        });
    }
    if r.dev {
        for n in sandbox::policy::DEV_NODES {
            out.push(MountReport { target: n.into(), source: n.into(), fstype: "bind", options: vec!["rw".into()] });
        }
    }
    if r.proc {
        out.push(MountReport {
            target: "/proc".into(),
            source: "proc".into(),
            fstype: "proc",
            options: vec!["nosuid".into(), "nodev".into(), "noexec".into(), "hidepid=invisible".into(), "subset=pid".into()],
        });
    }
    out
}

/// Rules the launcher adds to every Landlock ruleset (from the sandbox
/// crate's own list, so this cannot drift from what is enforced).
fn implicit_rules(p: &Policy) -> Vec<String> {
    let mut v = vec!["the verified binary (by fd): execute, read_file".to_string()];
    for rule in p.implicit_landlock_rules() {
        let access: Vec<String> = rule.access.iter().map(|a| format!("{a:?}")).collect();
        v.push(format!("{}: {}", rule.path.display(), access.join(", ")));
    }
    v
}

/// The terminal form.
pub fn render(r: &PolicyReport) -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "module {} {}  ({}{})", r.module.name, r.module.version, r.module.dir, if r.module.installed { "" } else { ", not installed" });
    let _ = writeln!(w, "policy digest {}", r.policy_digest);
    if let Some(why) = &r.refused {
        let _ = writeln!(w, "\n!! WILL NOT START on this host: {why}");
    }
    for d in &r.downgrades {
        let _ = writeln!(w, "!! DOWNGRADE allowed by host config: {} ({})", d.feature, d.detail);
    }
    let _ = writeln!(w, "\nverification: {}", if r.verification.ok { "OK" } else { "FAILED" });
    if let Some(e) = &r.verification.error {
        let _ = writeln!(w, "  error: {e}");
    }
    if let Some(v) = &r.verification.details {
        let _ = writeln!(w, "  binary {} ({} bytes), hash matches manifest", v.binary_sha256, v.binary_size);
        let signers = if v.signed_by.is_empty() { "nobody".to_string() } else { v.signed_by.join(", ") };
        let _ = writeln!(w, "  signed by trusted maintainers: {signers}; required {}; threshold {}", v.required, if v.threshold_met { "met" } else { "NOT met" });
        for rj in &v.rejected {
            let _ = writeln!(w, "  not counted: {rj}");
        }
    }
    let _ = writeln!(w, "\npermissions ({}):", r.permissions.len());
    if r.permissions.is_empty() {
        let _ = writeln!(w, "  none: every request except handshake/log/health/CLI spec is denied");
    }
    for p in &r.permissions {
        let reqs: Vec<String> = p.unlocks.iter().map(|k| k.to_string()).collect();
        let _ = writeln!(w, "  {:<22} {}\n  {:<22} unlocks: {}", p.name.as_str(), p.description, "", reqs.join(", "));
    }
    let id = r.identity;
    let _ = writeln!(w, "\nnamespaces: {}", r.namespaces.join(", "));
    let _ = writeln!(w, "identity: uid {} → host {}, gid {} → host {}; no supplementary groups; all capabilities dropped, securebits locked, no_new_privs", id.inside_uid, id.host_uid, id.inside_gid, id.host_gid);
    let _ = writeln!(w, "\nmounts:");
    for m in &r.mounts {
        let _ = writeln!(w, "  {:<14} {:<6} {:<40} {}", m.target, m.fstype, m.source, m.options.join(","));
    }
    let ll = &r.landlock;
    let _ = writeln!(w, "\nlandlock: ABI {} in force (minimum {}), scope: abstract unix sockets {}, signals {}", ll.abi_in_force, ll.min_abi, on(ll.scope_abstract_unix), on(ll.scope_signal));
    if ll.rules.is_empty() {
        let _ = writeln!(w, "  no filesystem grants (the module sees no data dir)");
    }
    for rule in &ll.rules {
        let acc: Vec<String> = rule.access.iter().map(|a| format!("{a:?}")).collect();
        let _ = writeln!(w, "  {}: {}", rule.path.display(), acc.join(", "));
    }
    for i in &ll.implicit_rules {
        let _ = writeln!(w, "  (always) {i}");
    }
    let _ = writeln!(w, "  TCP bind: {:?}, TCP connect: {:?}", ll.tcp_bind, ll.tcp_connect);
    let _ = writeln!(w, "\nseccomp: default {:?}; x86_64 only (i386/x32 killed); {} allowed syscalls:", r.seccomp.default_action, r.seccomp.rules.len());
    for rule in &r.seccomp.rules {
        let args = if rule.args.is_empty() { String::new() } else { format!(" if {}", args_text(&rule.args)) };
        let _ = writeln!(w, "  allow {}{}  — {}", rule.syscall, args, rule.why);
    }
    for e in &r.seccomp.errno {
        let args = if e.args.is_empty() { String::new() } else { format!(" if {}", args_text(&e.args)) };
        let _ = writeln!(w, "  {} {}{}  — {}", e.errno, e.syscall, args, e.why);
    }
    let rl = r.rlimits;
    let _ = writeln!(w, "\nrlimits: nofile {}, core {}, fsize {}, memlock {}", opt(rl.nofile), opt(rl.core), opt(rl.fsize), opt(rl.memlock));
    let cg = &r.cgroup;
    let cpu = cg.cpu_max.map(|c| format!("{} {}", c.quota_us, c.period_us)).unwrap_or_else(|| "unlimited".into());
    let _ = writeln!(w, "cgroup: memory.max {}, swap {}, cpu.max {cpu}, pids.max {}", opt(cg.memory_max), opt(cg.memory_swap_max), opt(cg.pids_max));
    let _ = writeln!(w, "environment (nothing inherited):");
    for (k, v) in &r.environment {
        let _ = writeln!(w, "  {k}={v}");
    }
    super::policy_network::render(w, &r.network);
    let k = &r.kernel;
    let _ = writeln!(w, "\nkernel: {} landlock ABI {}, seccomp filter {}, user namespaces {}, cgroups {}", k.release, k.landlock_abi, k.seccomp_filter, k.user_namespaces, k.cgroup);
    s
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "unlimited".into(), |n| n.to_string())
}

fn on(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

fn args_text(args: &[sandbox::seccomp::ArgCondition]) -> String {
    args.iter()
        .map(|a| {
            let v = |v: &sandbox::seccomp::Value| match v {
                sandbox::seccomp::Value::Number(n) => format!("{n:#x}"),
                sandbox::seccomp::Value::Named(s) => s.clone(),
            };
            let mask = a.mask.as_ref().map(|m| format!(" & {}", v(m))).unwrap_or_default();
            format!("arg{}{} {:?} {} ({} bit)", a.index, mask, a.op, v(&a.value), a.width)
        })
        .collect::<Vec<_>>()
        .join(" and ")
}

/// Load a module for `policy show`: by name from the modules dir, or from
/// any directory (`--dir`, e.g. before installing it).
pub fn load(host: &HostConfig, module: Option<&str>, dir: Option<&Path>) -> Result<(ModuleDir, bool), String> {
    match (module, dir) {
        (_, Some(d)) => crate::discovery::load_dir(d, host, false).map(|m| (m, false)).map_err(|e| e.to_string()),
        (Some(name), None) => {
            crate::manifest::check_name(name)?;
            crate::discovery::load_dir(&host.module_dir(name), host, true).map(|m| (m, true)).map_err(|e| e.to_string())
        }
        (None, None) => Err("name a module or pass --dir".into()),
    }
}
