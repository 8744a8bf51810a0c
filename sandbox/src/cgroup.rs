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

use serde::Serialize;
use std::cell::Cell;
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::SandboxError;
use crate::policy::CgroupLimits;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum CgroupMode {
    /// Pure cgroup v2: `base` is the directory we create sandboxes under.
    Unified { mount: PathBuf, own: PathBuf, controllers: Vec<String> },
    /// v1 hierarchies (possibly beside an empty cgroup2 mount).
    Legacy { hierarchies: Vec<V1Hierarchy> },
    Unavailable { reason: String },
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct V1Hierarchy {
    pub controller: String,
    /// Our own cgroup directory in that hierarchy.
    pub own_dir: PathBuf,
}

/// The v1 hierarchies a sandbox gets a cgroup in. Each one costs a mkdir,
/// a migration of the child (an RCU grace period) and an rmdir per launch,
/// so accounting-only cpuacct is left out unless it shares cpu's hierarchy;
/// CPU time is then summed from the members' /proc stat instead.
const V1_CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];

impl CgroupMode {
    pub fn detect() -> CgroupMode {
        let own = match fs::read_to_string("/proc/self/cgroup") {
            Ok(s) => s,
            Err(e) => return CgroupMode::Unavailable { reason: format!("/proc/self/cgroup: {e}") },
        };
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut v1_mounts: Vec<(Vec<String>, PathBuf)> = Vec::new();
        let mut v2_mount: Option<PathBuf> = None;
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else { continue };
            let mut r = right.split_whitespace();
            let fstype = r.next().unwrap_or("");
            let _source = r.next();
            let opts = r.next().unwrap_or("");
            let mount_point = left.split_whitespace().nth(4).map(PathBuf::from);
            match (fstype, mount_point) {
                ("cgroup2", Some(mp)) => {
                    v2_mount.get_or_insert(mp);
                }
                ("cgroup", Some(mp)) => {
                    let ctrls = opts.split(',').map(str::to_string).collect();
                    v1_mounts.push((ctrls, mp));
                }
                _ => {}
            }
        }
        let mut hierarchies = Vec::new();
        let mut unified_path = None;
        for line in own.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
            if id == "0" && ctrls.is_empty() {
                unified_path = Some(PathBuf::from(path));
                continue;
            }
            for c in ctrls.split(',') {
                if !V1_CONTROLLERS.contains(&c) {
                    continue;
                }
                if let Some((_, mp)) = v1_mounts.iter().find(|(opts, _)| opts.iter().any(|o| o == c)) {
                    hierarchies.push(V1Hierarchy { controller: c.to_string(), own_dir: join_cgroup(mp, path) });
                }
            }
        }
        if hierarchies.is_empty() {
            if let (Some(mount), Some(own)) = (v2_mount, unified_path) {
                let dir = join_cgroup(&mount, own.to_string_lossy().as_ref());
                let controllers = fs::read_to_string(dir.join("cgroup.controllers"))
                    .map(|s| s.split_whitespace().map(str::to_string).collect())
                    .unwrap_or_default();
                return CgroupMode::Unified { mount, own, controllers };
            }
            return CgroupMode::Unavailable { reason: "no cgroup v2 mount and no v1 memory/cpu/pids hierarchy".into() };
        }
        CgroupMode::Legacy { hierarchies }
    }

    pub fn has_controller(&self, c: &str) -> bool {
        match self {
            CgroupMode::Unified { controllers, .. } => controllers.iter().any(|x| x == c),
            CgroupMode::Legacy { hierarchies } => hierarchies.iter().any(|h| h.controller == c),
            CgroupMode::Unavailable { .. } => false,
        }
    }
}

fn join_cgroup(mount: &Path, rel: &str) -> PathBuf {
    mount.join(rel.trim_start_matches('/'))
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
const SUPERVISOR_LEAF: &str = "supervisor";

/// v1 directory (beneath our own cgroup) handed to hostd's service user:
/// on v1 our own cgroup may be a hierarchy's root, which is not ours to chown.
const V1_DELEGATED: &str = "hostd-sandboxes";

impl CgroupRoot {
    pub fn new(mode: CgroupMode) -> Result<CgroupRoot, SandboxError> {
        let v2_base = match &mode {
            CgroupMode::Unified { mount, own, .. } => {
                let own_dir = join_cgroup(mount, own.to_string_lossy().as_ref());
                // Under systemd's DelegateSubgroup=supervisor we start in the
                // leaf; the delegated cgroup, where sandboxes go, is its parent.
                let base = match (own_dir.file_name(), own_dir.parent()) {
                    (Some(n), Some(parent)) if n == SUPERVISOR_LEAF && own.parent().is_some() => parent.to_path_buf(),
                    _ => own_dir,
                };
                Some(prepare_v2_base(&base)?)
            }
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
                    for f in ["cgroup.procs", "cgroup.subtree_control", "cgroup.threads"] {
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
        match &self.mode {
            CgroupMode::Unified { .. } => {
                let base = self.v2_base.as_ref().ok_or_else(|| SandboxError::CgroupSetup("v2 base missing".into()))?;
                let dir = base.join(&leaf);
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
                cg.graveyard = Some(self.graveyard.clone());
                Ok(cg)
            }
            CgroupMode::Legacy { hierarchies } => {
                let mut dirs = Vec::new();
                for h in hierarchies {
                    let dir = self.v1_base(h).join(&leaf);
                    match fs::create_dir(&dir) {
                        Ok(()) => dirs.push((h.controller.clone(), dir)),
                        // cpu and cpuacct are often co-mounted: one directory serves both.
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dirs.iter().any(|(_, d)| d == &dir) => {
                            dirs.push((h.controller.clone(), dir))
                        }
                        Err(e) => {
                            // Dropping removes what was already created.
                            drop(Cgroup { kind: Kind::V1 { dirs }, emptied: Cell::new(false), graveyard: None });
                            return Err(SandboxError::Cgroup { path: dir, op: "mkdir", source: e });
                        }
                    }
                }
                let mut cg = Cgroup { kind: Kind::V1 { dirs }, emptied: Cell::new(false), graveyard: None };
                cg.write_v1_limits(limits)?;
                cg.graveyard = Some(self.graveyard.clone());
                Ok(cg)
            }
            CgroupMode::Unavailable { reason } => Err(SandboxError::CgroupSetup(reason.clone())),
        }
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

/// Move our own processes into `<own>/supervisor` and enable the controllers
/// for our children. Nothing above `own` is touched.
fn prepare_v2_base(own: &Path) -> Result<PathBuf, SandboxError> {
    let available = fs::read_to_string(own.join("cgroup.controllers")).unwrap_or_default();
    let wanted: Vec<&str> = ["memory", "cpu", "pids"].into_iter().filter(|c| available.split_whitespace().any(|a| a == *c)).collect();
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
        // Every process of our cgroup is ours (we are its delegate); move them all.
        for pid in procs.split_whitespace() {
            write_file(&leaf.join("cgroup.procs"), pid)?;
        }
    }
    let ctl: Vec<String> = wanted.iter().map(|c| format!("+{c}")).collect();
    if !ctl.is_empty() {
        write_file(&own.join("cgroup.subtree_control"), &ctl.join(" "))?;
    }
    Ok(own.to_path_buf())
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
    fn dir_for(&self, controller: &str) -> Option<&Path> {
        match &self.kind {
            Kind::V2 { dir, .. } => Some(dir),
            Kind::V1 { dirs } => dirs.iter().find(|(c, _)| c == controller).map(|(_, d)| d.as_path()),
        }
    }

    fn write_v1_limits(&self, limits: &CgroupLimits) -> Result<(), SandboxError> {
        if let (Some(m), Some(dir)) = (limits.memory_max, self.dir_for("memory")) {
            write_file(&dir.join("memory.limit_in_bytes"), &m.to_string())?;
            let memsw = dir.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                let swap = limits.memory_swap_max.unwrap_or(0);
                write_file(&memsw, &(m + swap).to_string())?;
            } else if limits.memory_swap_max.unwrap_or(0) == 0 {
                // Without swap accounting, swappiness 0 is the closest to "no swap".
                let _ = write_file(&dir.join("memory.swappiness"), "0");
            }
        }
        if let (Some(c), Some(dir)) = (limits.cpu_max, self.dir_for("cpu")) {
            write_file(&dir.join("cpu.cfs_period_us"), &c.period_us.to_string())?;
            write_file(&dir.join("cpu.cfs_quota_us"), &c.quota_us.to_string())?;
        }
        if let (Some(p), Some(dir)) = (limits.pids_max, self.dir_for("pids")) {
            write_file(&dir.join("pids.max"), &p.to_string())?;
        }
        Ok(())
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
        if let Kind::V1 { dirs } = &self.kind {
            let mut seen: Vec<&Path> = Vec::new();
            for (_, dir) in dirs {
                if seen.contains(&dir.as_path()) {
                    continue;
                }
                seen.push(dir);
                write_file(&dir.join("cgroup.procs"), &pid.to_string())?;
            }
        }
        Ok(())
    }

    pub fn usage(&self) -> Usage {
        match &self.kind {
            Kind::V2 { dir, .. } => Usage {
                memory_current: read_u64(&dir.join("memory.current")),
                memory_peak: read_u64(&dir.join("memory.peak")),
                cpu_usage_usec: read_keyed(&dir.join("cpu.stat"), "usage_usec"),
                pids_current: read_u64(&dir.join("pids.current")),
                oom_kills: read_keyed(&dir.join("memory.events"), "oom_kill"),
                cpu_nr_throttled: read_keyed(&dir.join("cpu.stat"), "nr_throttled"),
            },
            Kind::V1 { .. } => {
                let mem = self.dir_for("memory");
                Usage {
                    memory_current: mem.and_then(|d| read_u64(&d.join("memory.usage_in_bytes"))),
                    memory_peak: mem.and_then(|d| read_u64(&d.join("memory.max_usage_in_bytes"))),
                    cpu_usage_usec: self
                        .dir_for("cpu")
                        .and_then(|d| read_u64(&d.join("cpuacct.usage")))
                        .map(|ns| ns / 1000)
                        .or_else(|| Some(self.pids().into_iter().filter_map(proc_cpu_usec).sum())),
                    pids_current: self.dir_for("pids").and_then(|d| read_u64(&d.join("pids.current"))),
                    oom_kills: mem.and_then(|d| read_keyed(&d.join("memory.oom_control"), "oom_kill")),
                    cpu_nr_throttled: self.dir_for("cpu").and_then(|d| read_keyed(&d.join("cpu.stat"), "nr_throttled")),
                }
            }
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

/// utime + stime of one live process, in microseconds.
fn proc_cpu_usec(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let ticks: u64 = fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(ticks * 1_000_000 / hz)
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
