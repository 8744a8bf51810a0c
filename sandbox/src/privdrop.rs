//! Dropping root for good: become an unprivileged user keeping exactly a
//! given set of capabilities, nothing in the bounding, inheritable or
//! ambient sets beyond them, securebits locked so uid 0 never means anything
//! again, and no_new_privs set — verified from /proc afterwards.
//!
//! A launcher ([`become_launcher`]) keeps [`LAUNCHER_CAPS`]: what creating a
//! sandbox with a distinct host uid needs. It never reads module input, so
//! what it keeps cannot be steered by a module. Other processes (hostd's
//! daemon) choose their own, smaller set.

use crate::caps::{self, CAP_SETGID, CAP_SETUID};
use std::path::Path;

/// One Linux capability, with why hostd keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retained {
    pub cap: u32,
    pub name: &'static str,
    pub why: &'static str,
}

/// What the launcher keeps.
pub const LAUNCHER_CAPS: [Retained; 2] = [
    Retained {
        cap: CAP_SETUID,
        name: "CAP_SETUID",
        why: "write a sandbox's uid_map, mapping it to the module's own host uid (not hostd's)",
    },
    Retained {
        cap: CAP_SETGID,
        name: "CAP_SETGID",
        why: "write a sandbox's gid_map and clear supplementary groups before each clone",
    },
];

#[derive(Debug, thiserror::Error)]
pub enum PrivError {
    #[error("user {0:?} does not exist: create it (the package's sysusers.d/hostd.conf does) or set [daemon] user in hostd.toml")]
    NoUser(String),
    #[error("[daemon] user {user:?} has uid or gid 0: hostd must drop to an unprivileged user")]
    RootUser { user: String },
    #[error("/etc/passwd: {0}")]
    Passwd(std::io::Error),
    #[error("dropping privileges: {op}: {source}")]
    Syscall { op: &'static str, source: std::io::Error },
    #[error("after dropping privileges {set} is {got:#x}, expected {want:#x}")]
    Mismatch { set: &'static str, got: u64, want: u64 },
    #[error("handing {path} to user {user}: {source}")]
    Chown { path: std::path::PathBuf, user: String, source: std::io::Error },
    #[error("handing the sandbox cgroups to user {user}: {source}")]
    Cgroups { user: String, source: crate::SandboxError },
}

/// The unprivileged user hostd runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
}

impl RunAs {
    /// Look `user` up in /etc/passwd (hostd is static: no NSS).
    pub fn lookup(user: &str) -> Result<RunAs, PrivError> {
        let text = std::fs::read_to_string("/etc/passwd").map_err(PrivError::Passwd)?;
        let found = text.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[0] == user).then(|| Some((f[2].parse::<u32>().ok()?, f[3].parse::<u32>().ok()?))).flatten()
        });
        let (uid, gid) = found.ok_or_else(|| PrivError::NoUser(user.into()))?;
        if uid == 0 || gid == 0 {
            return Err(PrivError::RootUser { user: user.into() });
        }
        Ok(RunAs { user: user.into(), uid, gid })
    }

    /// chown `path` (not following symlinks) to this user.
    pub fn take(&self, path: &Path) -> Result<(), PrivError> {
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid))
            .map_err(|source| PrivError::Chown { path: path.into(), user: self.user.clone(), source })
    }

    /// chown a whole tree (a module's database) to this user.
    pub fn take_tree(&self, path: &Path) -> Result<(), PrivError> {
        self.take(path)?;
        let meta = std::fs::symlink_metadata(path).map_err(|source| PrivError::Chown { path: path.into(), user: self.user.clone(), source })?;
        if meta.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|source| PrivError::Chown { path: path.into(), user: self.user.clone(), source })?;
            for e in entries.flatten() {
                self.take_tree(&e.path())?;
            }
        }
        Ok(())
    }
}

/// The capability mask of `keep`.
pub fn mask(keep: &[Retained]) -> u64 {
    keep.iter().fold(0, |m, r| m | (1u64 << r.cap))
}

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(40)
}

fn sys(op: &'static str, rc: i64) -> Result<(), PrivError> {
    if rc < 0 {
        Err(PrivError::Syscall { op, source: std::io::Error::last_os_error() })
    } else {
        Ok(())
    }
}

/// Become `run_as` keeping exactly `keep` (effective and permitted; the
/// bounding set shrinks to it too). Call while single-threaded: capset
/// changes only the calling thread. Verifies the result from /proc.
pub fn drop_to(run_as: &RunAs, keep: &[Retained]) -> Result<(), PrivError> {
    let want = mask(keep);
    // SAFETY: prctl/setres*id/capset with plain integer arguments or
    // pointers to locals that outlive the call.
    unsafe {
        for cap in 0..=last_cap() {
            if want & (1 << cap) == 0 {
                sys("PR_CAPBSET_DROP", libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0).into())?;
            }
        }
        sys("PR_CAP_AMBIENT_CLEAR_ALL", libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0).into())?;
        // NO_SETUID_FIXUP keeps the permitted set across setresuid (we trim
        // it ourselves below); NOROOT makes uid 0 meaningless for good.
        sys("PR_SET_SECUREBITS", libc::prctl(libc::PR_SET_SECUREBITS, caps::SECBITS_LOCKED_DOWN, 0, 0, 0).into())?;
        // No supplementary groups: the primary gid is all hostd needs, and a
        // sandbox cloned by the launcher must not inherit any group.
        let gid = run_as.gid;
        sys("setgroups", libc::setgroups(0, std::ptr::null()).into())?;
        sys("setresgid", libc::setresgid(gid, gid, gid).into())?;
        sys("setresuid", libc::setresuid(run_as.uid, run_as.uid, run_as.uid).into())?;
        sys("capset", caps::capset(want, want, 0))?;
        sys("PR_SET_NO_NEW_PRIVS", libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0).into())?;
    }
    let now = CapSets::of_self();
    for (set, got, expect) in [("CapEff", now.effective, want), ("CapPrm", now.permitted, want), ("CapBnd", now.bounding, want), ("CapInh", now.inheritable, 0), ("CapAmb", now.ambient, 0)] {
        if got != expect {
            return Err(PrivError::Mismatch { set, got, want: expect });
        }
    }
    Ok(())
}

/// Make this process a launcher running as `run_as`: hand it the sandbox
/// cgroups, drop to it keeping [`LAUNCHER_CAPS`], and stay dumpable.
/// Used by hostd's launcher and by `hostd-sandbox run --user`.
pub fn become_launcher(run_as: &RunAs, cgroups: Option<&mut crate::CgroupRoot>) -> Result<(), PrivError> {
    become_launcher_keeping(run_as, cgroups, &LAUNCHER_CAPS)
}

/// [`become_launcher`], keeping `keep` (which must include
/// [`LAUNCHER_CAPS`]): hostd's launcher also does the ownership work the
/// daemon must not be able to do.
pub fn become_launcher_keeping(run_as: &RunAs, cgroups: Option<&mut crate::CgroupRoot>, keep: &[Retained]) -> Result<(), PrivError> {
    if let Some(cg) = cgroups {
        cg.delegate(run_as.uid, run_as.gid).map_err(|source| PrivError::Cgroups { user: run_as.user.clone(), source })?;
    }
    drop_to(run_as, keep)?;
    // Changing uid made us non-dumpable, and a child inherits that: its
    // /proc/<pid>/{setgroups,uid_map,gid_map} would then belong to root and
    // we could not write them. Only root or a process holding a superset of
    // our capabilities (not the daemon) could ptrace us.
    // SAFETY: prctl with integer arguments.
    sys("PR_SET_DUMPABLE", unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) }.into())
}

/// A process's capability sets, from /proc/<pid>/status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CapSets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub bounding: u64,
    pub ambient: u64,
}

impl CapSets {
    pub fn of_self() -> CapSets {
        CapSets::parse(&std::fs::read_to_string("/proc/self/status").unwrap_or_default())
    }

    pub fn of_pid(pid: u32) -> Option<CapSets> {
        std::fs::read_to_string(format!("/proc/{pid}/status")).ok().map(|s| CapSets::parse(&s))
    }

    pub fn parse(status: &str) -> CapSets {
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k).map(|v| u64::from_str_radix(v.trim(), 16).unwrap_or(0)))
                .unwrap_or(0)
        };
        CapSets {
            effective: field("CapEff:"),
            permitted: field("CapPrm:"),
            inheritable: field("CapInh:"),
            bounding: field("CapBnd:"),
            ambient: field("CapAmb:"),
        }
    }
}

/// Names of the capabilities in `mask` (capabilities(7)), else numbers.
pub fn names(mask: u64) -> Vec<String> {
    (0..64u32)
        .filter(|c| mask & (1u64 << c) != 0)
        .map(|c| caps::NAMES.get(c as usize).map(|n| n.to_string()).unwrap_or_else(|| format!("cap{c}")))
        .collect()
}

/// The launcher's documented mask, for tests and `hostd status`.
pub fn launcher_mask() -> u64 {
    mask(&LAUNCHER_CAPS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_parsing_and_masks() {
        let s = CapSets::parse("Name:\tx\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000009\nCapEff:\t0000000000000009\nCapBnd:\t0000000000000009\nCapAmb:\t0000000000000000\n");
        assert_eq!(s.effective, 0b1001);
        assert_eq!(names(s.permitted), vec!["CAP_CHOWN", "CAP_FOWNER"]);
        assert_eq!(names(launcher_mask()), vec!["CAP_SETGID", "CAP_SETUID"]);
    }
}
