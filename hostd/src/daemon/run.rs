//! `hostd run`: fork the launcher, start the runtime, load every enabled
//! module in dependency order, serve the control socket, and stop it all
//! in reverse order on SIGTERM/SIGINT.

use super::{bus, control, deps, launcher, node, notify, storage, supervisor, Host};
use crate::config::HostConfig;
use crate::privdrop::RunAs;
use hostd_protocol::{Event, EventPayload, EventType};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("hostd run needs root (it creates user namespaces with mapped ids and cgroups); run it as root or via the systemd unit")]
    NotRoot,
    #[error("{0}")]
    Launcher(#[from] launcher::LauncherError),
    #[error("tokio runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{path}: {source}")]
    Dir { path: std::path::PathBuf, source: std::io::Error },
    #[error("{0}")]
    Ids(#[from] crate::modules::ModuleError),
    #[error("{0}")]
    Control(#[from] control::ControlError),
    #[error("{0}")]
    Privileges(#[from] crate::privdrop::PrivError),
    #[error("{field} = {path:?} is a shared system directory; hostd would make it the hostd user's. Give it a directory of its own (e.g. /var/lib/hostd/data, /run/hostd)")]
    SharedDir { field: &'static str, path: std::path::PathBuf },
    #[error("module {module} has host id {id}, which is {what}: modules never run as root or as hostd; fix [identity] or {file}")]
    IdClash { module: String, id: u32, what: &'static str, file: std::path::PathBuf },
}

pub fn run(config: HostConfig) -> Result<(), RunError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(RunError::NotRoot);
    }
    for dir in [&config.paths.data_dir, &config.paths.run_dir] {
        std::fs::create_dir_all(dir).map_err(|source| RunError::Dir { path: dir.clone(), source })?;
    }
    let run_as = RunAs::lookup(&config.daemon.user)?;
    check_ids(&config, &run_as)?;
    hand_over(&config, &run_as)?;
    // Before any thread exists (DESIGN.md launch step 0). The launcher drops
    // to `run_as` itself, after delegating the sandbox cgroups.
    let launcher = launcher::fork_launcher(Some(&run_as), config.daemon.standbys)?;
    crate::privdrop::drop_to(&run_as, &crate::privdrop::DAEMON_CAPS)?;
    use crate::privdrop::{daemon_mask, launcher_mask, names};
    tracing::info!(
        user = %run_as.user,
        uid = run_as.uid,
        "dropped root; keeping {} (launcher: {})",
        names(daemon_mask()).join(", "),
        names(launcher_mask()).join(", ")
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("hostd").build().map_err(RunError::Runtime)?;
    runtime.block_on(serve(config, launcher))
}

/// No module may run as root or as hostd's own user or group.
fn check_ids(config: &HostConfig, run_as: &RunAs) -> Result<(), RunError> {
    let ids = crate::modules::IdMap::load(config)?;
    let r = config.identity;
    let range = r.first..r.first.saturating_add(r.count);
    for (what, id) in [("hostd's uid", run_as.uid), ("hostd's gid", run_as.gid)] {
        if range.contains(&id) {
            return Err(RunError::IdClash { module: "(any new)".into(), id, what, file: config.paths.data_dir.join("module-ids.toml") });
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
        return Err(RunError::IdClash { module: module.to_string(), id, what, file: config.paths.data_dir.join("module-ids.toml") });
    }
    Ok(())
}

/// System directories hostd never takes ownership of.
const SHARED_DIRS: [&str; 14] =
    ["/", "/run", "/var", "/var/lib", "/var/run", "/tmp", "/var/tmp", "/etc", "/usr", "/home", "/root", "/srv", "/opt", "/dev/shm"];

/// While still root: give hostd's user the directories it writes after the
/// drop: the data and run dirs, every module's data dir and database, and
/// the id file. A module's files/ is fixed up when the module starts.
fn hand_over(config: &HostConfig, run_as: &RunAs) -> Result<(), RunError> {
    use std::os::unix::fs::PermissionsExt;
    // Only directories of hostd's own are handed over: a run_dir of "/run"
    // must not turn /run into the hostd user's.
    for (field, dir) in [("paths.data_dir", &config.paths.data_dir), ("paths.run_dir", &config.paths.run_dir)] {
        let shared = SHARED_DIRS.iter().any(|d| dir.as_path() == std::path::Path::new(d));
        if shared || dir.parent().is_none() {
            return Err(RunError::SharedDir { field, path: dir.clone() });
        }
    }
    let mode = |path: &std::path::Path, m: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).map_err(|source| RunError::Dir { path: path.into(), source })
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
        for entry in std::fs::read_dir(&modules).map_err(|source| RunError::Dir { path: modules.clone(), source })?.flatten() {
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

async fn serve(config: HostConfig, launcher: launcher::Launcher) -> Result<(), RunError> {
    launcher.start_reader();
    let d = &config.daemon;
    let host = Arc::new(Host {
        bus: bus::Bus::new(d.max_frame_bytes),
        storage: storage::StorageEnv::new(d.storage_block_cache_bytes as usize, d.storage_write_buffer_bytes as usize),
        launcher,
        node: Box::new(node::Standalone),
        slots: Mutex::new(BTreeMap::new()),
        metrics: Mutex::new(BTreeMap::new()),
        ids: Mutex::new(crate::modules::IdMap::load(&config)?),
        started: std::time::Instant::now(),
        config,
    });
    let control_path = host.config.control_socket();
    let control_host = host.clone();
    let mut control = tokio::spawn(async move { control::serve(control_host, &control_path).await });
    tokio::spawn(supervisor::monitor(host.clone()));

    let (found, bad) = crate::modules::discover(&host.config);
    for (dir, e) in &bad {
        tracing::error!(dir = %dir.display(), "module not loaded: {e}");
    }
    let enabled: Vec<&crate::modules::ModuleDir> =
        found.iter().filter(|m| !host.config.daemon.disabled.contains(&m.manifest.manifest.name)).collect();
    let (order, unloadable) = deps::resolve(&enabled);
    for (name, e) in &unloadable {
        tracing::error!(module = %name, "module not loaded: {e}");
    }
    for name in &order {
        if let Some(m) = found.iter().find(|m| &m.manifest.manifest.name == name) {
            if let Err(e) = supervisor::load(&host, m.clone()) {
                tracing::error!(module = %name, "module not loaded: {e}");
            }
        }
    }
    host.bus.publish(Event {
        event_type: EventType::ConfigLoaded,
        publisher: None,
        payload: EventPayload::ConfigLoaded { changed: Vec::new() },
    });
    host.bus.publish(Event { event_type: EventType::NodeStartupCompleted, publisher: None, payload: EventPayload::None });
    tracing::info!(modules = order.len(), "hostd running");
    notify::notify(&format!("READY=1\nSTATUS={} modules started", order.len()));

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(RunError::Runtime)?;
    let failed = tokio::select! {
        _ = tokio::signal::ctrl_c() => None,
        _ = term.recv() => None,
        r = &mut control => Some(r),
    };
    tracing::info!("shutting down");
    notify::notify("STOPPING=1");
    host.bus.publish(Event { event_type: EventType::NodeShutdown, publisher: None, payload: EventPayload::None });
    let loaded: Vec<String> = host.slots().keys().cloned().collect();
    // Modules loaded at runtime first, then the start order reversed, so
    // dependents stop before what they depend on.
    let mut stop_order: Vec<String> = loaded.iter().filter(|n| !order.contains(n)).cloned().collect();
    stop_order.extend(order.iter().rev().filter(|n| loaded.contains(n)).cloned());
    for name in &stop_order {
        supervisor::stop(&host, name).await;
    }
    host.bus.publish(Event { event_type: EventType::NodeShutdownCompleted, publisher: None, payload: EventPayload::None });
    let _ = std::fs::remove_file(host.config.control_socket());
    match failed {
        Some(Ok(Err(e))) => Err(e.into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_never_get_root_or_hostds_own_ids() {
        let data = std::env::temp_dir().join(format!("hostd-ids-{}", std::process::id()));
        std::fs::create_dir_all(&data).expect("mkdir");
        let mut config = HostConfig::default();
        config.paths.data_dir = data.clone();
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
        let _ = std::fs::remove_dir_all(&data);
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
