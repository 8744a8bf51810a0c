//! Which cgroup layout this host has, read from /proc/self/cgroup and
//! /proc/self/mountinfo: pure v2, v1 hierarchies (hybrid hosts), or none.

use serde::Serialize;
use std::fs;
use std::path::PathBuf;

use super::join_cgroup;

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

