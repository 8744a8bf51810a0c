//! The data directory's layout, and handing it to the hostd user:
//!
//! ```text
//! <data_dir>/                      hostd:hostd 0711 (traverse only)
//!   module-ids.toml                hostd's record of each module's host uid
//!   modules/                       0711
//!     <name>/                      0711
//!       files/                     <module uid>:hostd 2770, the sandbox's /data
//!       db/                        hostd 0700, the module's RocksDB (never mounted)
//! <run_dir>/                       hostd 0755, the control socket
//! ```
//!
//! While still root, `hostd run` hands these to the hostd user
//! ([`hand_over`]); each module's directories are made (or fixed up) when it
//! is loaded ([`prepare_module_dirs`]).

use crate::config::HostConfig;
use crate::daemon::privileges::{PrivError, RunAs};

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{path}: {source}")]
    Dir { path: std::path::PathBuf, source: std::io::Error },
    #[error("{0}")]
    Ids(#[from] crate::discovery::ModuleError),
    #[error("{0}")]
    Privileges(#[from] PrivError),
    #[error("{path}: {source}")]
    Give { path: std::path::PathBuf, source: crate::daemon::launcher::LauncherError },
    #[error("{field} = {path:?} is a shared system directory; hostd would make it the hostd user's. Give it a directory of its own (e.g. /var/lib/hostd/data, /run/hostd)")]
    SharedDir { field: &'static str, path: std::path::PathBuf },
    #[error("module {module} has host id {id}, which is {what}: modules never run as root or as hostd; fix [identity] or {file}")]
    IdClash { module: String, id: u32, what: &'static str, file: std::path::PathBuf },
}

/// Create `data/modules/<name>/{files,db}`. `files/` is the sandbox's
/// /data: owned by the module's uid, group hostd, mode 2770 (setgid, so
/// what the module creates stays reachable by hostd's file requests; the
/// sandbox's umask is 007). hostd may not chown, so `give` (the launcher)
/// hands it over. `db/` is hostd's alone and never mounted.
pub fn prepare_module_dirs(
    config: &HostConfig,
    name: &str,
    uid: u32,
    give: impl FnOnce(&std::fs::File, u32) -> Result<(), crate::daemon::launcher::LauncherError>,
) -> Result<(), LayoutError> {
    let base = config.module_data_dir(name);
    let err = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| LayoutError::Dir { path, source }
    };
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let modules = config.paths.data_dir.join("modules");
    std::fs::create_dir_all(&modules).map_err(err(&modules))?;
    std::fs::set_permissions(&modules, std::fs::Permissions::from_mode(0o711)).map_err(err(&modules))?;
    for (dir, mode) in [(base.clone(), 0o711), (base.join("db"), 0o700)] {
        std::fs::create_dir_all(&dir).map_err(err(&dir))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).map_err(err(&dir))?;
    }
    let files = base.join("files");
    std::fs::create_dir_all(&files).map_err(err(&files))?;
    // O_PATH: the module may have made it unreadable to hostd; the
    // launcher restores owner and mode through this fd.
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(&files)
        .map_err(err(&files))?;
    give(&dir, uid).map_err(|e| LayoutError::Give { path: files.clone(), source: e })
}

/// No module may run as root or as hostd's own user or group.
pub fn check_ids(config: &HostConfig, run_as: &RunAs) -> Result<(), LayoutError> {
    let ids = crate::discovery::IdMap::load(config)?;
    let r = config.identity;
    let range = r.first..r.first.saturating_add(r.count);
    for (what, id) in [("hostd's uid", run_as.uid), ("hostd's gid", run_as.gid)] {
        if range.contains(&id) {
            return Err(LayoutError::IdClash { module: "(any new)".into(), id, what, file: config.paths.data_dir.join("module-ids.toml") });
        }
    }
    for (module, id) in ids.iter() {
        let what = if id == 0 {
            "root"
        } else if id == run_as.uid || id == run_as.gid {
            "hostd's own"
        } else {
            continue;
        };
        return Err(LayoutError::IdClash { module: module.to_string(), id, what, file: config.paths.data_dir.join("module-ids.toml") });
    }
    Ok(())
}

/// System directories hostd never takes ownership of.
const SHARED_DIRS: [&str; 14] =
    ["/", "/run", "/var", "/var/lib", "/var/run", "/tmp", "/var/tmp", "/etc", "/usr", "/home", "/root", "/srv", "/opt", "/dev/shm"];

/// While still root: give hostd's user the directories it writes after the
/// drop: the data and run dirs, every module's data dir and database, and
/// the id file. A module's files/ is fixed up when the module starts.
pub fn hand_over(config: &HostConfig, run_as: &RunAs) -> Result<(), LayoutError> {
    use std::os::unix::fs::PermissionsExt;
    // Only directories of hostd's own are handed over: a run_dir of "/run"
    // must not turn /run into the hostd user's.
    for (field, dir) in [("paths.data_dir", &config.paths.data_dir), ("paths.run_dir", &config.paths.run_dir)] {
        let shared = SHARED_DIRS.iter().any(|d| dir.as_path() == std::path::Path::new(d));
        if shared || dir.parent().is_none() {
            return Err(LayoutError::SharedDir { field, path: dir.clone() });
        }
    }
    let mode = |path: &std::path::Path, m: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).map_err(|source| LayoutError::Dir { path: path.into(), source })
    };
    let data = &config.paths.data_dir;
    run_as.take(data)?;
    // Traverse-only: a sandbox (its own uid) must reach its files/ to
    // mount it, but may not list which other modules have data here.
    mode(data, 0o711)?;
    run_as.take(&config.paths.run_dir)?;
    // The control socket's own mode and group decide who may connect.
    mode(&config.paths.run_dir, 0o755)?;
    let ids = data.join("module-ids.toml");
    if ids.exists() {
        run_as.take(&ids)?;
    }
    let modules = data.join("modules");
    if modules.is_dir() {
        run_as.take(&modules)?;
        mode(&modules, 0o711)?;
        for entry in std::fs::read_dir(&modules).map_err(|source| LayoutError::Dir { path: modules.clone(), source })?.flatten() {
            let dir = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                run_as.take(&dir)?;
                if dir.join("db").is_dir() {
                    run_as.take_tree(&dir.join("db"))?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HostConfig;

    #[test]
    fn modules_never_get_root_or_hostds_own_ids() {
        let data = crate::scratch::Scratch::new("ids");
        let mut config = HostConfig::default();
        config.paths.data_dir = data.to_path_buf();
        let run_as = RunAs { user: "hostd".into(), uid: 700_005, gid: 990 };
        assert!(check_ids(&config, &run_as).is_ok());
        // The range that modules draw from contains hostd's uid.
        config.identity.first = 700_000;
        let e = check_ids(&config, &run_as).expect_err("hostd's uid in the module range");
        assert!(e.to_string().contains("700005"), "{e}");
        // A recorded id that is root, or hostd's.
        config.identity.first = 620_000;
        for bad in [0, 700_005] {
            std::fs::write(data.join("module-ids.toml"), format!("evil = {bad}\n")).expect("write ids");
            let e = check_ids(&config, &run_as).expect_err("recorded id");
            assert!(e.to_string().contains("module evil"), "{e}");
        }
    }

    #[test]
    fn shared_system_directories_are_never_handed_over() {
        let run_as = RunAs { user: "hostd".into(), uid: 700_005, gid: 990 };
        for (data, run, field) in [("/var/lib/hostd/data", "/run", "paths.run_dir"), ("/var/lib", "/run/hostd", "paths.data_dir")] {
            let mut config = HostConfig::default();
            config.paths.data_dir = data.into();
            config.paths.run_dir = run.into();
            let e = hand_over(&config, &run_as).expect_err("a shared directory");
            assert!(e.to_string().contains(field), "{e}");
        }
    }
}
