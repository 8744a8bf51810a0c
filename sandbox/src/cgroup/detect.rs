//! Which cgroup layout this host has, read from /proc/self/cgroup and
//! /proc/self/mountinfo: pure v2, v1 hierarchies (hybrid hosts), or none —
//! and "none" with the reason and what to change when the hierarchy is
//! there but read-only (a container's default).

use serde::Serialize;
use std::fs;
use std::path::{Path, PathBuf};

use super::join_cgroup;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum CgroupMode {
    /// Pure cgroup v2: `own` is our cgroup as /proc/self/cgroup names it
    /// (relative to our cgroup namespace), beneath `mount`.
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

/// What to change when the cgroup hierarchy is mounted read-only; every
/// runtime we know mounts it so by default for unprivileged containers.
pub const READ_ONLY_FIX: &str = "run the container with --privileged, or (Podman) --security-opt unmask=/sys/fs/cgroup; \
or let policies run without cgroup limits by allowing the `cgroup` downgrade ([sandbox] allow_downgrade in the host config)";

struct Mount {
    point: PathBuf,
    read_only: bool,
    /// v1: the controllers in the super options (`rw,memory`).
    options: Vec<String>,
}

impl CgroupMode {
    pub fn detect() -> CgroupMode {
        let own = match fs::read_to_string("/proc/self/cgroup") {
            Ok(s) => s,
            Err(e) => return CgroupMode::Unavailable { reason: format!("/proc/self/cgroup: {e}") },
        };
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        CgroupMode::from_proc(&own, &mountinfo, |dir| fs::read_to_string(dir.join("cgroup.controllers")).ok())
    }

    /// The layout described by /proc/self/cgroup and /proc/self/mountinfo;
    /// `controllers` reads a v2 directory's cgroup.controllers.
    pub fn from_proc(self_cgroup: &str, mountinfo: &str, controllers: impl Fn(&Path) -> Option<String>) -> CgroupMode {
        let mut v1_mounts: Vec<Mount> = Vec::new();
        let mut v2_mount: Option<Mount> = None;
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else { continue };
            let mut r = right.split_whitespace();
            let fstype = r.next().unwrap_or("");
            let _source = r.next();
            let super_opts = r.next().unwrap_or("");
            let mut l = left.split_whitespace().skip(4);
            let (Some(point), Some(mount_opts)) = (l.next(), l.next()) else { continue };
            let read_only = mount_opts.split(',').any(|o| o == "ro") || super_opts.split(',').any(|o| o == "ro");
            let mount = Mount { point: PathBuf::from(point), read_only, options: super_opts.split(',').map(str::to_string).collect() };
            match fstype {
                // A later mount on the same point hides an earlier one.
                "cgroup2" => match &v2_mount {
                    Some(m) if m.point != mount.point => {}
                    _ => v2_mount = Some(mount),
                },
                "cgroup" => v1_mounts.push(mount),
                _ => {}
            }
        }
        let mut hierarchies = Vec::new();
        let mut read_only = Vec::new();
        let mut unified_path = None;
        for line in self_cgroup.lines() {
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
                if let Some(m) = v1_mounts.iter().rev().find(|m| m.options.iter().any(|o| o == c)) {
                    if m.read_only {
                        read_only.push(m.point.display().to_string());
                    }
                    hierarchies.push(V1Hierarchy { controller: c.to_string(), own_dir: join_cgroup(&m.point, path) });
                }
            }
        }
        if !read_only.is_empty() {
            return CgroupMode::Unavailable {
                reason: format!("the cgroup v1 hierarchies {} are mounted read-only: {READ_ONLY_FIX}", read_only.join(", ")),
            };
        }
        if hierarchies.is_empty() {
            if let (Some(mount), Some(own)) = (v2_mount, unified_path) {
                if mount.read_only {
                    return CgroupMode::Unavailable {
                        reason: format!("cgroup v2 is mounted read-only at {}: {READ_ONLY_FIX}", mount.point.display()),
                    };
                }
                let dir = join_cgroup(&mount.point, own.to_string_lossy().as_ref());
                let controllers = controllers(&dir).map(|s| s.split_whitespace().map(str::to_string).collect()).unwrap_or_default();
                return CgroupMode::Unified { mount: mount.point, own, controllers };
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

#[cfg(test)]
mod tests {
    use super::*;

    const V2_RW: &str = "67 60 0:34 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw\n";
    const V2_RO: &str = "67 60 0:34 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw\n";

    fn mode(self_cgroup: &str, mountinfo: &str) -> CgroupMode {
        CgroupMode::from_proc(self_cgroup, mountinfo, |_| Some("cpuset cpu io memory pids".into()))
    }

    #[test]
    fn layouts_are_told_apart() {
        // Private cgroup namespace (podman --cgroupns=private): we are at its root.
        let CgroupMode::Unified { mount, own, controllers } = mode("0::/\n", V2_RW) else { panic!() };
        assert_eq!((mount.as_path(), own.as_path()), (Path::new("/sys/fs/cgroup"), Path::new("/")));
        assert!(controllers.iter().any(|c| c == "pids"));
        // Host namespace (--cgroupns=host): the runtime's cgroup.
        let CgroupMode::Unified { own, .. } = mode("0::/libpod_parent/libpod-08610\n", V2_RW) else { panic!() };
        assert_eq!(own, Path::new("/libpod_parent/libpod-08610"));
        // Read-only (an unprivileged container): refused with what to change.
        let CgroupMode::Unavailable { reason } = mode("0::/\n", V2_RO) else { panic!() };
        assert!(reason.contains("read-only at /sys/fs/cgroup") && reason.contains("--privileged"), "{reason}");
        // Hybrid: v1 controllers win over the empty unified mount; read-only v1 is refused too.
        let v1 = "31 23 0:29 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        let CgroupMode::Legacy { hierarchies } = mode("4:memory:/a\n0::/\n", v1) else { panic!() };
        assert_eq!(hierarchies[0].own_dir, Path::new("/sys/fs/cgroup/memory/a"));
        let CgroupMode::Unavailable { reason } = mode("4:memory:/a\n0::/\n", &v1.replacen("rw,relatime", "ro,relatime", 1)) else { panic!() };
        assert!(reason.contains("/sys/fs/cgroup/memory"), "{reason}");
        assert!(matches!(mode("0::/\n", ""), CgroupMode::Unavailable { .. }));
    }
}
