//! cgroups for sandboxes: a delegated cgroup v2 subtree beneath hostd's own
//! cgroup, or (hybrid/v1 hosts) a cgroup beneath our own in each v1 hierarchy.
//!
//! Rules this module keeps: never write to a cgroup above our own; never mount
//! or remount anything; on v2 the supervisor moves itself into a leaf
//! (`supervisor/`) so that its own cgroup may enable controllers for siblings
//! (the no-internal-processes rule), which is what systemd's
//! `DelegateSubgroup=supervisor` does for us in production.
//!
//! cgroups-rs is not used: its v2 create path writes `+ctrl` into every
//! ancestor's subtree_control (above our delegation) and ignores errors.
//!
//! Layout: this file holds what both versions share (detection, the root
//! sandboxes are created under, the per-sandbox handle, teardown); `v2.rs`
//! and `v1.rs` what differs; `placement.rs` how a new child gets into its
//! cgroup (born into it on v2, attached after the clone on v1).

mod detect;
mod placement;
mod v1;
mod v2;

pub(crate) use placement::Placement;

use serde::Serialize;
use std::cell::Cell;
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::SandboxError;
use crate::policy::CgroupLimits;

pub use detect::{CgroupMode, V1Hierarchy};

pub(crate) fn join_cgroup(mount: &Path, rel: &str) -> PathBuf {
    match rel.trim_start_matches('/') {
        "" => mount.to_path_buf(),
        rel => mount.join(rel),
    }
}

fn write_file(path: &Path, value: &str) -> Result<(), SandboxError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| SandboxError::Cgroup { path: path.into(), op: "open for write", source: e })?;
    f.write_all(value.as_bytes()).map_err(|e| SandboxError::Cgroup { path: path.into(), op: "write", source: e })
}

fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn read_keyed(path: &Path, key: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Where sandboxes go on this host; created once per supervisor.
#[derive(Debug)]
pub struct CgroupRoot {
    mode: CgroupMode,
    /// v2: the directory sandboxes are created in (our own cgroup, whose
    /// processes were moved to `supervisor/`).
    v2_base: Option<PathBuf>,
    /// v1, once delegated: the subdirectory of our own cgroup, in every
    /// hierarchy, that belongs to the unprivileged user.
    v1_sub: Option<&'static str>,
    /// Emptied sandbox cgroups whose directories are still to be removed.
    graveyard: Arc<Mutex<Vec<PathBuf>>>,
}

/// The leaf hostd's own processes live in on v2 (systemd's DelegateSubgroup=).
pub(crate) const SUPERVISOR_LEAF: &str = "supervisor";

/// The controllers sandbox limits use.
pub(crate) const SANDBOX_CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];

/// v2: the directory sandbox cgroups go in, for a process whose cgroup is
/// `own` beneath `mount`. In the `supervisor/` leaf — systemd's
/// DelegateSubgroup=supervisor, or moved there by an earlier hostd in the
/// same container — that is the leaf's parent; otherwise our own cgroup.
pub(crate) fn v2_base_dir(mount: &Path, own: &Path) -> PathBuf {
    let own_dir = join_cgroup(mount, own.to_string_lossy().as_ref());
    match (own_dir.file_name(), own_dir.parent()) {
        (Some(n), Some(parent)) if n == SUPERVISOR_LEAF && own.parent().is_some() => parent.to_path_buf(),
        _ => own_dir,
    }
}

/// v1 directory (beneath our own cgroup) handed to hostd's service user:
/// on v1 our own cgroup may be a hierarchy's root, which is not ours to chown.
const V1_DELEGATED: &str = "hostd-sandboxes";

impl CgroupRoot {
    pub fn new(mode: CgroupMode) -> Result<CgroupRoot, SandboxError> {
        let v2_base = match &mode {
            CgroupMode::Unified { mount, own, .. } => Some(v2::prepare_base(&v2_base_dir(mount, own))?),
            _ => None,
        };
        let root = CgroupRoot {
            mode,
            v2_base,
            v1_sub: None,
            graveyard: Arc::new(Mutex::new(Vec::new())),
        };
        root.sweep_stale();
        Ok(root)
    }

    /// Remove sandbox cgroups left by launchers that died without teardown
    /// (SIGKILL, power loss). Names carry the launcher pid; only directories
    /// of dead launchers are touched, and rmdir fails on any non-empty one.
    fn sweep_stale(&self) {
        let bases: Vec<PathBuf> = match &self.mode {
            CgroupMode::Unified { .. } => self.v2_base.iter().cloned().collect(),
            CgroupMode::Legacy { hierarchies } => hierarchies.iter().map(|h| self.v1_base(h)).collect(),
            CgroupMode::Unavailable { .. } => Vec::new(),
        };
        for base in bases {
            let Ok(entries) = fs::read_dir(&base) else { continue };
            for e in entries.flatten() {
                if let Some(pid) = leaf_launcher_pid(&e.file_name().to_string_lossy()) {
                    if !Path::new(&format!("/proc/{pid}")).exists() {
                        let _ = fs::remove_dir(e.path());
                    }
                }
            }
        }
    }

    pub fn mode(&self) -> &CgroupMode {
        &self.mode
    }

    fn v1_base(&self, h: &V1Hierarchy) -> PathBuf {
        match self.v1_sub {
            Some(sub) => h.own_dir.join(sub),
            None => h.own_dir.clone(),
        }
    }

    /// Hand the sandbox subtree to `uid`/`gid` so a process that dropped
    /// root can still create, limit, populate and remove sandbox cgroups
    /// (what systemd's Delegate= does for a service user). v2: our own
    /// cgroup and the files a delegate writes; v1: a subdirectory of our own
    /// cgroup in every hierarchy. Cgroups the user then creates are its own.
    pub fn delegate(&mut self, uid: u32, gid: u32) -> Result<(), SandboxError> {
        let chown = |p: &Path| {
            std::os::unix::fs::chown(p, Some(uid), Some(gid)).map_err(|e| SandboxError::Cgroup { path: p.into(), op: "chown", source: e })
        };
        match &self.mode {
            CgroupMode::Unified { .. } => {
                if let Some(base) = &self.v2_base {
                    chown(base)?;
                    for f in v2::DELEGATED_FILES {
                        chown(&base.join(f))?;
                    }
                }
            }
            CgroupMode::Legacy { hierarchies } => {
                for h in hierarchies {
                    let dir = h.own_dir.join(V1_DELEGATED);
                    match fs::create_dir(&dir) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(SandboxError::Cgroup { path: dir, op: "mkdir", source: e }),
                    }
                    chown(&dir)?;
                    for f in ["cgroup.procs", "tasks"] {
                        chown(&dir.join(f))?;
                    }
                }
                self.v1_sub = Some(V1_DELEGATED);
                self.sweep_stale();
            }
            CgroupMode::Unavailable { .. } => {}
        }
        Ok(())
    }

    /// rmdir the directories of sandboxes that have been torn down.
    pub fn remove_emptied(&self) {
        let dirs = std::mem::take(&mut *lock(&self.graveyard));
        remove_dirs(dirs.iter().map(PathBuf::as_path));
    }

    /// A fresh cgroup for sandbox `name`, with its limits written.
    pub fn create(&self, name: &str, limits: &CgroupLimits) -> Result<Cgroup, SandboxError> {
        let leaf = leaf_name(name);
        let mut cg = match &self.mode {
            CgroupMode::Unified { .. } => {
                let base = self.v2_base.as_ref().ok_or_else(|| SandboxError::CgroupSetup("v2 base missing".into()))?;
                v2::create(base.join(&leaf), limits)
            }
            CgroupMode::Legacy { hierarchies } => {
                v1::create(hierarchies.iter().map(|h| (h.controller.clone(), self.v1_base(h).join(&leaf))).collect(), limits)
            }
            CgroupMode::Unavailable { reason } => return Err(SandboxError::CgroupSetup(reason.clone())),
        }?;
        cg.graveyard = Some(self.graveyard.clone());
        Ok(cg)
    }
}

/// `hostd-<sandbox>-<launcher pid>-<n>`: unique per launcher, and the pid
/// lets a later launcher recognise leftovers of a dead one.
fn leaf_name(sandbox: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("hostd-{}-{}-{}", sandbox, std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// The launcher pid in a name made by [`leaf_name`].
fn leaf_launcher_pid(leaf: &str) -> Option<u32> {
    let rest = leaf.strip_prefix("hostd-")?;
    rest.rsplit('-').nth(1)?.parse().ok()
}

fn open_dir(dir: &Path) -> Result<OwnedFd, SandboxError> {
    let f = fs::File::open(dir).map_err(|e| SandboxError::Cgroup { path: dir.into(), op: "open", source: e })?;
    Ok(OwnedFd::from(f))
}


#[derive(Debug)]
enum Kind {
    V2 { dir: PathBuf, dirfd: Option<OwnedFd> },
    V1 { dirs: Vec<(String, PathBuf)> },
}

/// One sandbox's cgroup. Dropping it kills whatever is left inside and
/// removes the directories.
#[derive(Debug)]
pub struct Cgroup {
    kind: Kind,
    /// Seen empty after a kill: nothing can enter again (only we attach),
    /// so teardown need not look a second time.
    emptied: Cell<bool>,
    /// Where a fully built cgroup's directories go when it is dropped (its
    /// root removes them later, off the launch path); `None` removes them at once.
    graveyard: Option<Arc<Mutex<Vec<PathBuf>>>>,
}

/// Live usage read from the cgroup.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Usage {
    pub memory_current: Option<u64>,
    pub memory_peak: Option<u64>,
    pub cpu_usage_usec: Option<u64>,
    pub pids_current: Option<u64>,
    pub oom_kills: Option<u64>,
    pub cpu_nr_throttled: Option<u64>,
}

impl Cgroup {
    pub(super) fn dir_for(&self, controller: &str) -> Option<&Path> {
        match &self.kind {
            Kind::V2 { dir, .. } => Some(dir),
            Kind::V1 { dirs } => dirs.iter().find(|(c, _)| c == controller).map(|(_, d)| d.as_path()),
        }
    }

    /// v2 directory fd for CLONE_INTO_CGROUP.
    pub fn clone_into_fd(&self) -> Option<i32> {
        match &self.kind {
            Kind::V2 { dirfd: Some(fd), .. } => Some(fd.as_raw_fd()),
            _ => None,
        }
    }

    /// Place `pid` in every hierarchy (v1; on v2 CLONE_INTO_CGROUP already did).
    pub fn attach(&self, pid: i32) -> Result<(), SandboxError> {
        match &self.kind {
            Kind::V1 { dirs } => v1::attach(dirs, pid),
            Kind::V2 { .. } => Ok(()),
        }
    }

    pub fn usage(&self) -> Usage {
        match &self.kind {
            Kind::V2 { dir, .. } => v2::usage(dir),
            Kind::V1 { .. } => v1::usage(self),
        }
    }

    /// Every pid still in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        let dir = match &self.kind {
            Kind::V2 { dir, .. } => Some(dir.as_path()),
            Kind::V1 { .. } => self.dir_for("pids").or_else(|| self.dir_for("memory")),
        };
        dir.and_then(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
            .map(|s| s.split_whitespace().filter_map(|p| p.parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Kill everything inside: cgroup.kill on v2; on v1 SIGKILL each listed
    /// pid until the list is empty. (v1 has no atomic kill; the sandbox's pid
    /// namespace makes its init's death take every other member with it, so
    /// the loop only mops up.)
    pub fn kill_all(&self) {
        if let Kind::V2 { dir, .. } = &self.kind {
            if write_file(&dir.join("cgroup.kill"), "1").is_ok() {
                return;
            }
        }
        if self.emptied.get() {
            return;
        }
        for _ in 0..100 {
            let pids = self.pids();
            if pids.is_empty() {
                self.emptied.set(true);
                return;
            }
            for p in pids {
                // SAFETY: plain kill(2) of a pid listed in our own sandbox cgroup.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    fn dirs(&self) -> Vec<&Path> {
        match &self.kind {
            Kind::V2 { dir, .. } => vec![dir.as_path()],
            Kind::V1 { dirs } => dirs.iter().map(|(_, d)| d.as_path()).collect(),
        }
    }

    pub fn describe(&self) -> Vec<PathBuf> {
        match &self.kind {
            Kind::V2 { dir, .. } => vec![dir.clone()],
            Kind::V1 { dirs } => dirs.iter().map(|(_, d)| d.clone()).collect(),
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Killing is never deferred: nothing of the sandbox outlives this.
        self.kill_all();
        match &self.graveyard {
            Some(g) => lock(g).extend(self.dirs().into_iter().map(Path::to_path_buf)),
            None => remove_dirs(self.dirs().into_iter()),
        }
    }
}

impl Drop for CgroupRoot {
    fn drop(&mut self) {
        self.remove_emptied();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// rmdir each directory; exiting tasks linger for a moment after SIGKILL
/// and rmdir says EBUSY until then.
fn remove_dirs<'a>(dirs: impl Iterator<Item = &'a Path>) {
    for d in dirs {
        for attempt in 0..200 {
            match fs::remove_dir(d) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => {
                    if attempt == 199 {
                        tracing::warn!(cgroup = %d.display(), error = %e, "could not remove sandbox cgroup");
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn leaf_names_carry_the_launcher_pid() {
        let leaf = super::leaf_name("my-module");
        assert_eq!(super::leaf_launcher_pid(&leaf), Some(std::process::id()));
        assert_eq!(super::leaf_launcher_pid("not-ours"), None);
    }
}
