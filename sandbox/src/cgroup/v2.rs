//! Pure cgroup v2 (cgroups(7), "Cgroups version 2"): the sandboxes' cgroups
//! are children of hostd's own delegated cgroup, and a child is born in its
//! cgroup by CLONE_INTO_CGROUP (Linux 5.7). memory.oom.group needs Linux
//! 4.19, cgroup.kill 5.14, memory.peak 5.19 (older kernels report none).

use std::cell::Cell;
use std::fs;
use std::path::{Path, PathBuf};

use super::{open_dir, read_keyed, read_u64, write_file, Cgroup, Kind, Usage, SANDBOX_CONTROLLERS, SUPERVISOR_LEAF};
use crate::error::SandboxError;
use crate::policy::CgroupLimits;

/// Create `dir` with `limits` written, ready for CLONE_INTO_CGROUP.
pub(super) fn create(dir: PathBuf, limits: &CgroupLimits) -> Result<Cgroup, SandboxError> {
    fs::create_dir(&dir).map_err(|e| SandboxError::Cgroup { path: dir.clone(), op: "mkdir", source: e })?;
    // Built before the limits so a failed write removes the directory again.
    let mut cg = Cgroup { kind: Kind::V2 { dir: dir.clone(), dirfd: None }, emptied: Cell::new(false), graveyard: None };
    if let Some(m) = limits.memory_max {
        write_file(&dir.join("memory.max"), &m.to_string())?;
        if dir.join("memory.swap.max").exists() {
            write_file(&dir.join("memory.swap.max"), &limits.memory_swap_max.unwrap_or(0).to_string())?;
        }
        // One OOM kill takes the whole sandbox, not a random member.
        write_file(&dir.join("memory.oom.group"), "1")?;
    }
    if let Some(c) = limits.cpu_max {
        write_file(&dir.join("cpu.max"), &format!("{} {}", c.quota_us, c.period_us))?;
    }
    if let Some(p) = limits.pids_max {
        write_file(&dir.join("pids.max"), &p.to_string())?;
    }
    let fd = open_dir(&dir)?;
    if let Kind::V2 { dirfd, .. } = &mut cg.kind {
        *dirfd = Some(fd);
    }
    Ok(cg)
}

pub(super) fn usage(dir: &Path) -> Usage {
    Usage {
        memory_current: read_u64(&dir.join("memory.current")),
        memory_peak: read_u64(&dir.join("memory.peak")),
        cpu_usage_usec: read_keyed(&dir.join("cpu.stat"), "usage_usec"),
        pids_current: read_u64(&dir.join("pids.current")),
        oom_kills: read_keyed(&dir.join("memory.events"), "oom_kill"),
        cpu_nr_throttled: read_keyed(&dir.join("cpu.stat"), "nr_throttled"),
    }
}

/// The files a delegate writes in the sandboxes' parent (what systemd's
/// Delegate= hands to a service user).
pub(super) const DELEGATED_FILES: [&str; 3] = ["cgroup.procs", "cgroup.subtree_control", "cgroup.threads"];

/// Move our own processes into `<own>/supervisor` and enable the controllers
/// for our children: the no-internal-processes rule forbids a cgroup with
/// processes from enabling controllers for its children — also at the root
/// of a container's private cgroup namespace, which is not the real root.
/// Nothing above `own` is touched.
pub(super) fn prepare_base(own: &Path) -> Result<PathBuf, SandboxError> {
    let available = fs::read_to_string(own.join("cgroup.controllers")).unwrap_or_default();
    let wanted: Vec<&str> = SANDBOX_CONTROLLERS.into_iter().filter(|c| available.split_whitespace().any(|a| a == *c)).collect();
    let ctl: Vec<String> = wanted.iter().map(|c| format!("+{c}")).collect();
    // A process forked by one we are moving can land in `own` after we read
    // cgroup.procs (several hostd starting at once in one container); the
    // write then fails with EBUSY and we move the newcomers too.
    const ROUNDS: usize = 5;
    for round in 1..=ROUNDS {
        let enabled = fs::read_to_string(own.join("cgroup.subtree_control")).unwrap_or_default();
        if wanted.iter().all(|c| enabled.split_whitespace().any(|e| e == *c)) {
            return Ok(own.to_path_buf());
        }
        let procs = fs::read_to_string(own.join("cgroup.procs")).unwrap_or_default();
        if !procs.trim().is_empty() {
            let leaf = own.join(SUPERVISOR_LEAF);
            match fs::create_dir(&leaf) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(SandboxError::Cgroup { path: leaf, op: "mkdir", source: e }),
            }
            // Every process of our cgroup is ours to move (we are its
            // delegate; in a container, what dockerd's dind entrypoint does).
            // One that exited meanwhile is no error.
            for pid in procs.split_whitespace() {
                match write_file(&leaf.join("cgroup.procs"), pid) {
                    Err(SandboxError::Cgroup { source, .. }) if source.raw_os_error() == Some(libc::ESRCH) => {}
                    other => other?,
                }
            }
        }
        match write_file(&own.join("cgroup.subtree_control"), &ctl.join(" ")) {
            Err(SandboxError::Cgroup { source, .. }) if source.raw_os_error() == Some(libc::EBUSY) && round < ROUNDS => continue,
            other => other?,
        }
    }
    Ok(own.to_path_buf())
}
