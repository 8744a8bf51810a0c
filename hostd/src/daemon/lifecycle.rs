//! Module lifecycle: load (dependencies, data dirs, storage, then the
//! supervisor), unload (refused, or cascading over dependents), stop, reload.

use super::supervisor::{self, StopRequest};
use super::storage::StoreLimits;
use super::{deps, layout, Host, LoadedModule, ModState};
use crate::discovery::ModuleDir;
use hostd_protocol::{Event, EventPayload, EventType};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("module {0} is already loaded")]
    AlreadyLoaded(String),
    #[error("module {0} is not loaded")]
    NotLoaded(String),
    #[error("module {module} is needed by {}; unload them first or pass --cascade", .dependents.join(", "))]
    HasDependents { module: String, dependents: Vec<String> },
    #[error("{0}")]
    Dependency(#[from] deps::DepError),
    #[error("{0}")]
    Module(#[from] crate::discovery::ModuleError),
    #[error("storage: {0}")]
    Storage(#[from] super::storage::StorageError),
    #[error("data directory: {0}")]
    Layout(#[from] layout::LayoutError),
    #[error("storage of module {module} is still in use after {waited_ms} ms (daemon.storage_close_wait_ms); try again")]
    StoreBusy { module: String, waited_ms: u64 },
    #[error("module {module} did not come up: {why}; it stays loaded and is restarted with backoff (see `hostd status` and `hostd logs {module}`)")]
    StartFailed { module: String, why: String },
    #[error("reload of {module}: the new version did not come up, so the previous version runs again (from the binary it ran from; the file on disk is still the new one): {why}")]
    RolledBack { module: String, why: String },
    #[error("reload of {module} refused, the running instance keeps running: {why}")]
    ReloadRefused { module: String, why: String },
}

/// Load a module: check its dependencies against what is loaded, open its
/// storage and start supervising it.
pub fn load(host: &Arc<Host>, module: ModuleDir) -> Result<(), LifecycleError> {
    load_from(host, module, None)
}

/// [`load`], starting from `pinned` (a binary kept open) instead of the
/// file on disk.
fn load_from(host: &Arc<Host>, module: ModuleDir, pinned: Option<Arc<std::os::fd::OwnedFd>>) -> Result<(), LifecycleError> {
    let name = module.manifest.manifest.name.clone();
    {
        let slots = host.loaded();
        if slots.get(&name).is_some_and(|s| s.state != ModState::Stopped) {
            return Err(LifecycleError::AlreadyLoaded(name));
        }
        let loaded: Vec<&ModuleDir> = slots.values().map(|s| &s.module).chain(std::iter::once(&module)).collect();
        let (_, bad) = deps::resolve(&loaded);
        if let Some((_, e)) = bad.into_iter().find(|(n, _)| *n == name) {
            return Err(e.into());
        }
    }
    let uid = super::lock(&host.ids).assign(&name, &host.config)?;
    // A launcher round trip (it is quick): the runtime is multi-threaded.
    tokio::task::block_in_place(|| layout::prepare_module_dirs(&host.config, &name, uid, |dir, uid| host.launcher.give_blocking(dir, uid)))?;
    let d = &host.config.daemon;
    let store = host.storage.open(&name, &host.config.module_data_dir(&name).join("db"), StoreLimits::of(d))?;
    let (tx, rx) = mpsc::channel(4);
    let mut slot = LoadedModule::new(module, d.max_blocking_per_module as usize, host.config.node.max_calls_per_module as usize);
    slot.store = Some(Arc::new(store));
    slot.control = Some(tx);
    slot.pinned = pinned.is_some();
    slot.binary = pinned;
    slot.state = ModState::Starting;
    host.loaded().insert(name.clone(), slot);
    tokio::spawn(supervisor::supervise(host.clone(), name, rx));
    Ok(())
}

/// Stop and forget a module. With `cascade`, modules that depend on it are
/// unloaded first; without, their presence is an error naming them.
pub async fn unload(host: &Arc<Host>, name: &str, cascade: bool) -> Result<Vec<String>, LifecycleError> {
    let dependents = {
        let slots = host.loaded();
        if !slots.contains_key(name) {
            return Err(LifecycleError::NotLoaded(name.into()));
        }
        deps::dependents(name, slots.values().filter(|s| s.name() != name).map(|s| &s.module))
    };
    let mut unloaded = Vec::new();
    if !dependents.is_empty() {
        if !cascade {
            return Err(LifecycleError::HasDependents { module: name.into(), dependents });
        }
        for d in dependents {
            if host.loaded().contains_key(&d) {
                unloaded.extend(Box::pin(unload(host, &d, true)).await?);
            }
        }
    }
    stop_and_remove(host, name).await?;
    host.launcher.forget(name);
    publish_unloaded(host, name);
    tracing::info!(module = name, "unloaded");
    unloaded.push(name.to_string());
    Ok(unloaded)
}

/// Stop the module's process (graceful, then kill) and its supervisor.
pub async fn stop(host: &Arc<Host>, name: &str) {
    let control = host.with_module(name, |s| s.control.take()).flatten();
    if let Some(tx) = control {
        let (done, wait) = oneshot::channel();
        if tx.send(StopRequest { done }).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// Re-read the module's directory and restart it. The new version is
/// checked *before* the running one is stopped — manifest, binary hash,
/// signatures, its own dependencies and what loaded dependents require of
/// it — so a tampered or incompatible reload leaves the old instance
/// running and says why. (The start checks hash and signatures again,
/// against the fd it execs.) Dependents stay loaded; they see
/// ModuleUnloaded and ModuleLoaded.
pub async fn reload(host: &Arc<Host>, name: &str) -> Result<(), LifecycleError> {
    let (dir, old_binary) = host.with_module(name, |s| (s.module.dir.clone(), s.binary.clone())).ok_or_else(|| LifecycleError::NotLoaded(name.into()))?;
    let fresh = crate::discovery::load_dir(&dir, &host.config, true)?;
    check_replacement(host, name, &fresh).map_err(|why| LifecycleError::ReloadRefused { module: name.into(), why })?;
    let old = stop_and_remove(host, name).await?;
    let restarts = old.as_ref().map(|s| s.restarts).unwrap_or(0);
    publish_unloaded(host, name);
    load(host, fresh)?;
    host.with_module(name, |s| s.restarts = restarts);
    let Err(new_failed) = wait_up(host, name).await else { return Ok(()) };
    // The new version passed every check and still did not come up: start
    // the previous one again, from the binary it ran from (its file on disk
    // has been replaced), with its manifest.
    let (Some(old), Some(binary)) = (old, old_binary) else { return Err(new_failed) };
    stop_and_remove(host, name).await?;
    publish_unloaded(host, name);
    load_from(host, old.module, Some(binary))?;
    host.with_module(name, |s| s.restarts = restarts);
    let why = match new_failed {
        LifecycleError::StartFailed { why, .. } => why,
        other => other.to_string(),
    };
    match wait_up(host, name).await {
        Ok(()) => Err(LifecycleError::RolledBack { module: name.into(), why }),
        Err(again) => Err(LifecycleError::StartFailed { module: name.into(), why: format!("{why}; the previous version did not come up either: {again}") }),
    }
}

/// After a load or reload: wait until the module is up (running and
/// handshaken) or one start of it has failed, at most the handshake
/// timeout plus [`START_SLACK`] (a start is spawn + handshake, and the
/// handshake is bounded by that timeout).
pub async fn wait_up(host: &Arc<Host>, name: &str) -> Result<(), LifecycleError> {
    let limit = std::time::Duration::from_millis(u64::from(host.config.daemon.handshake_timeout_ms)) + START_SLACK;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let seen = host.with_module(name, |s| (s.state == ModState::Running && s.handshaken, s.last_exit.clone(), s.state));
        let why = match seen {
            None => Some("it was unloaded while starting".to_string()),
            Some((true, _, _)) => return Ok(()),
            // A fresh slot has no last exit: any is a failed start of it.
            Some((false, Some(exit), _)) => Some(exit),
            Some((false, None, state)) if tokio::time::Instant::now() >= deadline => {
                Some(format!("still {state} after {} ms", limit.as_millis()))
            }
            Some(_) => None,
        };
        if let Some(why) = why {
            return Err(LifecycleError::StartFailed { module: name.into(), why });
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Beyond the handshake timeout, what a start may take (spawn, launcher
/// round trips) before `wait_up` gives up on it.
const START_SLACK: std::time::Duration = std::time::Duration::from_secs(5);

/// Stop the module, forget it, and close its database once no storage
/// work of it is running any more: requests still in flight hold the store,
/// and opening it again while they do fails on RocksDB's lock ("lock hold
/// by current process").
async fn stop_and_remove(host: &Arc<Host>, name: &str) -> Result<Option<LoadedModule>, LifecycleError> {
    stop(host, name).await;
    let mut gone = host.loaded().remove(name);
    let Some(store) = gone.as_mut().and_then(|s| s.store.take()) else { return Ok(gone) };
    // `[daemon] storage_close_wait_ms`: how long to wait for requests
    // already on the blocking pool before giving up.
    let wait = std::time::Duration::from_millis(u64::from(host.config.daemon.storage_close_wait_ms));
    let deadline = tokio::time::Instant::now() + wait;
    while Arc::strong_count(&store) > 1 {
        if tokio::time::Instant::now() >= deadline {
            return Err(LifecycleError::StoreBusy { module: name.into(), waited_ms: wait.as_millis() as u64 });
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    drop(store);
    Ok(gone)
}

/// Whether `fresh` may replace the loaded `name`: its binary and
/// signatures verify, its dependencies are loaded in versions it accepts,
/// and every loaded module that requires it accepts its version.
fn check_replacement(host: &Host, name: &str, fresh: &ModuleDir) -> Result<(), String> {
    let m = &fresh.manifest;
    crate::trust::verify(name, &fresh.dir, &m.manifest, m.declared_threshold, &host.config.trust).map_err(|e| e.to_string())?;
    let loaded = host.loaded();
    let others: Vec<&ModuleDir> = loaded.values().filter(|s| s.name() != name).map(|s| &s.module).collect();
    for d in &others {
        if let Some(req) = d.manifest.dependencies.get(name) {
            if !req.matches(&m.version) {
                return Err(format!("module {} requires {name} {req}, and the new version is {}", d.manifest.manifest.name, m.version));
            }
        }
    }
    let with_fresh: Vec<&ModuleDir> = others.into_iter().chain(std::iter::once(fresh)).collect();
    let (_, bad) = deps::resolve(&with_fresh);
    match bad.into_iter().find(|(n, _)| n == name) {
        Some((_, e)) => Err(e.to_string()),
        None => Ok(()),
    }
}

pub(super) fn publish_unloaded(host: &Host, name: &str) {
    host.bus.publish(Event {
        event_type: EventType::ModuleUnloaded,
        publisher: None,
        payload: EventPayload::ModuleUnloaded { module_name: name.into() },
    });
}
