//! `hostd run`: fork the launcher, start the runtime, load every enabled
//! module in dependency order, serve the control socket, and stop it all
//! in reverse order on SIGTERM/SIGINT.

use super::{bus, control, deps, launcher, layout, lifecycle, monitor, node, notify, startup, storage, Host};
use crate::config::HostConfig;
use crate::daemon::privileges::RunAs;
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
    Ids(#[from] crate::discovery::ModuleError),
    #[error("{0}")]
    Control(#[from] control::ControlError),
    #[error("{0}")]
    Privileges(#[from] crate::daemon::privileges::PrivError),
    #[error("{0}")]
    Layout(#[from] layout::LayoutError),
    #[error("node: {0}")]
    Node(String),
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
    layout::check_ids(&config, &run_as)?;
    layout::hand_over(&config, &run_as)?;
    // Before any thread exists (docs/architecture.md, launch step 0). The launcher drops
    // to `run_as` itself, after delegating the sandbox cgroups.
    let control = control::bind(&config, (run_as.uid, run_as.gid))?;
    let rules = launcher::LauncherRules::new(&config.paths.data_dir, config.identity, config.sandbox.allow_downgrade.clone());
    let launcher = launcher::fork_launcher(Some(&run_as), config.daemon.standbys, rules)?;
    log_environment(launcher.environment());
    crate::daemon::privileges::drop_to(&run_as, &crate::daemon::privileges::DAEMON_CAPS)?;
    use crate::daemon::privileges::{daemon_mask, hostd_launcher_mask, names};
    tracing::info!(
        user = %run_as.user,
        uid = run_as.uid,
        "dropped root; keeping {} (launcher: {})",
        if daemon_mask() == 0 { "no capability".to_string() } else { names(daemon_mask()).join(", ") },
        names(hostd_launcher_mask()).join(", ")
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("hostd").build().map_err(RunError::Runtime)?;
    runtime.block_on(serve(config, launcher, control))
}

/// Where hostd runs (container, cgroup layout, what it did), once at start;
/// each problem is a warning naming what to change.
fn log_environment(env: &serde_json::Value) {
    let text = |k: &str| env[k].as_str().unwrap_or("?").to_string();
    tracing::info!(
        container = %env["container"].as_str().unwrap_or("none"),
        cgroup_layout = %text("cgroup_layout"),
        cgroup_namespace = %text("cgroup_namespace"),
        namespaces = %text("namespaces"),
        "host environment: hostd will {}",
        text("hostd_will")
    );
    for problem in env["problems"].as_array().into_iter().flatten() {
        tracing::warn!("host environment: {}", problem.as_str().unwrap_or_default());
    }
}

async fn serve(config: HostConfig, launcher: launcher::Launcher, control_socket: control::ControlSocket) -> Result<(), RunError> {
    launcher.start_reader();
    let d = &config.daemon;
    let host = Arc::new(Host {
        bus: bus::Bus::new(d.max_frame_bytes, super::event_queue::QueueBounds::of(d)),
        storage: storage::StorageEnv::new(d.storage_block_cache_bytes as usize, d.storage_write_buffer_bytes as usize),
        launcher,
        node: node::Node::from_config(&config.node).map_err(RunError::Node)?,
        mesh: Arc::new(super::mesh::Mesh::new(config.mesh.clone(), config.metrics.listen.as_deref()).map_err(RunError::Runtime)?),
        loaded: Mutex::new(BTreeMap::new()),
        metrics: Mutex::new(BTreeMap::new()),
        ids: Mutex::new(crate::discovery::IdMap::load(&config)?),
        started: std::time::Instant::now(),
        config,
    });
    host.node.start(&host);
    let control_host = host.clone();
    let mut control = tokio::spawn(async move { control::serve(control_host, control_socket).await });
    tokio::spawn(monitor::monitor(host.clone()));
    if let Some(listen) = host.config.metrics.listen.clone() {
        tokio::spawn(super::metrics_http::serve(host.clone(), listen));
    }

    let (found, bad) = crate::discovery::discover(&host.config);
    for (dir, e) in &bad {
        tracing::error!(dir = %dir.display(), "module not loaded: {e}");
    }
    let enabled: Vec<&crate::discovery::ModuleDir> =
        found.iter().filter(|m| !host.config.daemon.disabled.contains(&m.manifest.manifest.name)).collect();
    let (order, unloadable) = deps::resolve(&enabled);
    for (name, e) in &unloadable {
        tracing::error!(module = %name, "module not loaded: {e}");
    }
    let ready_by = std::time::Instant::now() + std::time::Duration::from_millis(u64::from(host.config.daemon.ready_timeout_ms));
    let mut started = Vec::new();
    for name in &order {
        if let Some(m) = found.iter().find(|m| &m.manifest.manifest.name == name) {
            // Its dependencies first: up, or definitively failed.
            let needs: Vec<String> = m.manifest.dependencies.keys().cloned().collect();
            startup::settle(&host, &needs, ready_by).await;
            match lifecycle::load(&host, m.clone()) {
                Ok(()) => started.push(name.clone()),
                Err(e) => tracing::error!(module = %name, "module not loaded: {e}"),
            }
        }
    }
    startup::settle(&host, &started, ready_by).await;
    // Modules that handshook by now may subscribe a moment later: the bus
    // keeps these two for them.
    host.bus.publish_startup(Event {
        event_type: EventType::ConfigLoaded,
        publisher: None,
        payload: EventPayload::ConfigLoaded { changed: Vec::new() },
    });
    host.bus.publish_startup(Event { event_type: EventType::NodeStartupCompleted, publisher: None, payload: EventPayload::None });
    host.bus.end_startup();
    let (status, all_up) = startup::status_line(&host, &started);
    if all_up {
        tracing::info!("hostd running: {status}");
    } else {
        tracing::warn!("ready, but not every module is up: {status}");
    }
    notify::notify(&format!("READY=1\nSTATUS={status}"));

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(RunError::Runtime)?;
    let failed = tokio::select! {
        _ = tokio::signal::ctrl_c() => None,
        _ = term.recv() => None,
        r = &mut control => Some(r),
    };
    tracing::info!("shutting down");
    notify::notify("STOPPING=1");
    host.bus.publish(Event { event_type: EventType::NodeShutdown, publisher: None, payload: EventPayload::None });
    let loaded: Vec<String> = host.loaded().keys().cloned().collect();
    // Modules loaded at runtime first, then the start order reversed, so
    // dependents stop before what they depend on.
    let mut stop_order: Vec<String> = loaded.iter().filter(|n| !order.contains(n)).cloned().collect();
    stop_order.extend(order.iter().rev().filter(|n| loaded.contains(n)).cloned());
    for name in &stop_order {
        lifecycle::stop(&host, name).await;
    }
    host.bus.publish(Event { event_type: EventType::NodeShutdownCompleted, publisher: None, payload: EventPayload::None });
    let _ = std::fs::remove_file(host.config.control_socket());
    match failed {
        Some(Ok(Err(e))) => Err(e.into()),
        _ => Ok(()),
    }
}
