//! Module lifecycle: load (verify, storage, start), crash supervision with
//! exponential backoff and a crash-loop limit, graceful stop, unload with
//! dependents, reload.

use super::conn::{self, report_suppressed, ConnEnd};
use super::limit::LineBudget;
use super::{deps, ModState, Host, Slot};
use crate::modules::ModuleDir;
use hostd_protocol::{CrashReason, Event, EventPayload, EventType, HostMessage};
use sandbox::Outcome;
use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;
use tokio::sync::{mpsc, oneshot};

pub enum Command {
    Stop { done: oneshot::Sender<()> },
}

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
    Module(#[from] crate::modules::ModuleError),
    #[error("storage: {0}")]
    Storage(#[from] super::storage::StorageError),
    #[error("data directory {path}: {source}")]
    DataDir { path: std::path::PathBuf, source: std::io::Error },
}

/// Create `data/modules/<name>/{files,db}`. `files/` is the sandbox's
/// /data: owned by the module's uid, group hostd, mode 2770 (setgid, so
/// what the module creates stays reachable by hostd's file requests; the
/// sandbox's umask is 007). `db/` is hostd's alone and never mounted.
fn prepare_data_dirs(host: &Host, name: &str, uid: u32) -> Result<(), LifecycleError> {
    let base = host.config.module_data_dir(name);
    let err = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| LifecycleError::DataDir { path, source }
    };
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: getegid has no preconditions.
    let hostd_gid = unsafe { libc::getegid() };
    let modules = host.config.paths.data_dir.join("modules");
    std::fs::create_dir_all(&modules).map_err(err(&modules))?;
    std::fs::set_permissions(&modules, std::fs::Permissions::from_mode(0o711)).map_err(err(&modules))?;
    for (dir, mode, owner) in [(base.clone(), 0o711, None), (base.join("files"), 0o2770, Some(uid)), (base.join("db"), 0o700, None)] {
        std::fs::create_dir_all(&dir).map_err(err(&dir))?;
        if let Some(id) = owner {
            std::os::unix::fs::chown(&dir, Some(id), Some(hostd_gid)).map_err(err(&dir))?;
        }
        // After chown, which may clear the setgid bit.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).map_err(err(&dir))?;
    }
    Ok(())
}

/// Load a module: check its dependencies against what is loaded, open its
/// storage and start supervising it.
pub fn load(host: &Arc<Host>, module: ModuleDir) -> Result<(), LifecycleError> {
    let name = module.manifest.manifest.name.clone();
    {
        let slots = host.slots();
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
    prepare_data_dirs(host, &name, uid)?;
    let store = host.storage.open(&name, &host.config.module_data_dir(&name).join("db"), host.config.daemon.storage_quota_bytes)?;
    let (tx, rx) = mpsc::channel(4);
    let mut slot = Slot::new(module);
    slot.store = Some(Arc::new(store));
    slot.control = Some(tx);
    slot.state = ModState::Starting;
    host.slots().insert(name.clone(), slot);
    tokio::spawn(supervise(host.clone(), name, rx));
    Ok(())
}

/// Stop and forget a module. With `cascade`, modules that depend on it are
/// unloaded first; without, their presence is an error naming them.
pub async fn unload(host: &Arc<Host>, name: &str, cascade: bool) -> Result<Vec<String>, LifecycleError> {
    let dependents = {
        let slots = host.slots();
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
            if host.slots().contains_key(&d) {
                unloaded.extend(Box::pin(unload(host, &d, true)).await?);
            }
        }
    }
    stop(host, name).await;
    host.slots().remove(name);
    host.launcher.forget(name);
    publish_unloaded(host, name);
    tracing::info!(module = name, "unloaded");
    unloaded.push(name.to_string());
    Ok(unloaded)
}

/// Stop the module's process (graceful, then kill) and its supervisor.
pub async fn stop(host: &Arc<Host>, name: &str) {
    let control = host.with_slot(name, |s| s.control.take()).flatten();
    if let Some(tx) = control {
        let (done, wait) = oneshot::channel();
        if tx.send(Command::Stop { done }).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// Re-read the module's directory (manifest, config, binary hash and
/// signatures are checked again at start) and restart it. Dependents stay
/// loaded; they see ModuleUnloaded and ModuleLoaded.
pub async fn reload(host: &Arc<Host>, name: &str) -> Result<(), LifecycleError> {
    let dir = host.with_slot(name, |s| s.module.dir.clone()).ok_or_else(|| LifecycleError::NotLoaded(name.into()))?;
    let fresh = crate::modules::load_dir(&dir, &host.config, true)?;
    stop(host, name).await;
    let restarts = host.slots().remove(name).map(|s| s.restarts).unwrap_or(0);
    publish_unloaded(host, name);
    load(host, fresh)?;
    host.with_slot(name, |s| s.restarts = restarts);
    Ok(())
}

fn publish_unloaded(host: &Host, name: &str) {
    host.bus.publish(Event {
        event_type: EventType::ModuleUnloaded,
        publisher: None,
        payload: EventPayload::ModuleUnloaded { module_name: name.into() },
    });
}

fn crash_reason(outcome: Outcome, violation: Option<CrashReason>) -> CrashReason {
    match (outcome, violation) {
        // hostd closed the connection first: that is the cause, however the
        // process then ended (killed by us, or exiting on the refusal).
        (_, Some(v)) => v,
        (Outcome::Exited { code }, _) => CrashReason::Exited { code },
        (Outcome::Signaled { signal }, _) => CrashReason::Signaled { signal },
        (Outcome::SeccompViolation, _) => CrashReason::SeccompViolation,
        (Outcome::OomKilled, _) => CrashReason::OutOfMemory,
        (Outcome::KilledByHost, None) => CrashReason::Unresponsive,
    }
}

fn set_state(host: &Host, name: &str, state: ModState) {
    host.with_slot(name, |s| s.state = state);
}

struct Running {
    key: u64,
    exited: oneshot::Receiver<Outcome>,
    conn: tokio::task::JoinHandle<ConnEnd>,
}

async fn supervise(host: Arc<Host>, name: String, mut control: mpsc::Receiver<Command>) {
    let policy = host.config.daemon.restart;
    let mut crashes: VecDeque<Instant> = VecDeque::new();
    loop {
        set_state(&host, &name, ModState::Starting);
        let reason = match start_once(&host, &name).await {
            Err(e) => {
                tracing::error!(module = %name, "cannot start: {e}");
                host.with_slot(&name, |s| s.last_exit = Some(format!("start failed: {e}")));
                None
            }
            Ok(mut run) => {
                set_state(&host, &name, ModState::Running);
                let mut violation = None;
                let mut conn_done = false;
                let outcome = loop {
                    tokio::select! {
                        outcome = &mut run.exited => break outcome.unwrap_or(Outcome::KilledByHost),
                        end = &mut run.conn, if !conn_done => {
                            conn_done = true;
                            if let Ok(ConnEnd::Violation(v)) = end {
                                tracing::warn!(module = %name, "closing a faulty module: {v}");
                                violation = Some(v);
                                host.launcher.kill(run.key);
                            }
                        }
                        cmd = control.recv() => {
                            let done = cmd.map(|Command::Stop { done }| done);
                            graceful_stop(&host, &name, &mut run).await;
                            set_state(&host, &name, ModState::Stopped);
                            host.with_slot(&name, Slot::process_gone);
                            if let Some(d) = done { let _ = d.send(()); }
                            return;
                        }
                    }
                };
                // A module that hostd refused usually exits at once; its exit
                // can win the race with the connection's verdict, which is
                // the better reason. The connection ends right after the exit.
                if !conn_done {
                    if let Ok(Ok(ConnEnd::Violation(v))) = tokio::time::timeout(Duration::from_millis(200), &mut run.conn).await {
                        violation = Some(v);
                    }
                }
                run.conn.abort();
                Some(crash_reason(outcome, violation))
            }
        };
        let now = Instant::now();
        crashes.push_back(now);
        while crashes.front().is_some_and(|t| now.duration_since(*t) > Duration::from_secs(policy.window_secs)) {
            crashes.pop_front();
        }
        let restarts = host
            .with_slot(&name, |s| {
                s.process_gone();
                if let Some(r) = &reason {
                    s.last_exit = Some(r.to_string());
                }
                s.restarts
            })
            .unwrap_or(0);
        if let Some(r) = reason.clone() {
            tracing::warn!(module = %name, "module crashed: {r}");
            host.bus.publish(Event {
                event_type: EventType::ModuleCrashed,
                publisher: None,
                payload: EventPayload::ModuleCrashed { module_name: name.clone(), reason: r, restarts },
            });
        }
        if !policy.enabled || crashes.len() as u32 > policy.max_restarts {
            tracing::error!(module = %name, crashes = crashes.len(), "crash loop: not restarting; `hostd load` after fixing it");
            set_state(&host, &name, ModState::Failed);
            if let Some(Command::Stop { done }) = control.recv().await {
                set_state(&host, &name, ModState::Stopped);
                let _ = done.send(());
            }
            return;
        }
        let exp = (crashes.len() as u32).saturating_sub(1).min(20);
        let backoff = Duration::from_millis(policy.backoff_initial_ms.saturating_mul(1u64 << exp).min(policy.backoff_max_ms));
        set_state(&host, &name, ModState::Backoff);
        tracing::info!(module = %name, "restarting in {} ms", backoff.as_millis());
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            cmd = control.recv() => {
                set_state(&host, &name, ModState::Stopped);
                if let Some(Command::Stop { done }) = cmd { let _ = done.send(()); }
                return;
            }
        }
        host.with_slot(&name, |s| s.restarts += 1);
    }
}

async fn graceful_stop(host: &Arc<Host>, name: &str, run: &mut Running) {
    set_state(host, name, ModState::Stopping);
    let grace = host.config.daemon.grace_ms;
    if let Some(c) = host.with_slot(name, |s| s.conn.clone()).flatten() {
        c.try_send(&HostMessage::Shutdown { grace_ms: grace });
    }
    // The module is pid 1 of its pid namespace: SIGTERM reaches it only if
    // it installed a handler, so the Shutdown message above is the main path.
    host.launcher.signal(run.key, libc::SIGTERM);
    if tokio::time::timeout(Duration::from_millis(u64::from(grace)), &mut run.exited).await.is_err() {
        tracing::warn!(module = name, "did not stop within {grace} ms; killing its cgroup");
        host.launcher.kill(run.key);
        let _ = (&mut run.exited).await;
    }
    run.conn.abort();
}

#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("{0}")]
    Trust(#[from] crate::trust::TrustError),
    #[error("{0}")]
    Ids(#[from] crate::modules::ModuleError),
    #[error("{op}: {source}")]
    Io { op: &'static str, source: std::io::Error },
    #[error("{0}")]
    Launcher(#[from] super::launcher::LauncherError),
    #[error("module {0} was unloaded")]
    Gone(String),
}

async fn start_once(host: &Arc<Host>, name: &str) -> Result<Running, StartError> {
    let module = host.with_slot(name, |s| s.module.clone()).ok_or_else(|| StartError::Gone(name.into()))?;
    let m = &module.manifest;
    // Hash and signatures are checked on every start, against the fd that is exec'd.
    let verified = crate::trust::verify(name, &module.dir, &m.manifest, m.declared_threshold, &host.config.trust)?;
    let uid = super::lock(&host.ids).assign(name, &host.config)?;
    let policy = crate::policygen::generate(m, &host.config, uid);
    let io = |op| move |source| StartError::Io { op, source };
    let (host_end, module_end) = std::os::unix::net::UnixStream::pair().map_err(io("socketpair"))?;
    host_end.set_nonblocking(true).map_err(io("set_nonblocking"))?;
    let stream = tokio::net::UnixStream::from_std(host_end).map_err(io("register socket"))?;
    let (out_r, out_w) = sandbox::pipe().map_err(io("pipe"))?;
    let (err_r, err_w) = sandbox::pipe().map_err(io("pipe"))?;
    let argv = vec![m.manifest.entry_point.clone()];
    let spawned = host.launcher.spawn(&policy, argv, verified.fd, module_end.into(), out_w, err_w).await?;
    host.with_slot(name, |s| {
        s.pid = Some(spawned.pid);
        s.sandbox_key = Some(spawned.key);
        s.started_at = Some(Instant::now());
        s.handshaken = false;
    });
    tracing::info!(module = name, pid = spawned.pid, "started");
    capture_output(host, name, out_r, "stdout");
    capture_output(host, name, err_r, "stderr");
    let conn = tokio::spawn(conn::serve(host.clone(), name.to_string(), m.version.to_string(), stream));
    Ok(Running { key: spawned.key, exited: spawned.exited, conn })
}

/// Module stdout/stderr into hostd's log and the module's log ring, at most
/// `output_lines_per_sec` lines a second; the rest is counted and reported.
fn capture_output(host: &Arc<Host>, name: &str, fd: OwnedFd, stream: &'static str) {
    let Ok(rx) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else { return };
    let host = host.clone();
    let name = name.to_string();
    let mut budget = LineBudget::new(host.config.daemon.output_lines_per_sec);
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(rx).lines();
        loop {
            let line = match lines.next_line().await {
                Ok(Some(l)) => l,
                Ok(None) | Err(_) => break,
            };
            let admit = budget.admit();
            report_suppressed(&host, &name, admit.closed_window_suppressed);
            if !admit.keep {
                continue;
            }
            let line: String = line.chars().take(4096).collect();
            tracing::info!(module = %name, "{stream}: {line}");
            host.log_line(&name, format!("{stream}: {line}"));
        }
        report_suppressed(&host, &name, budget.take_suppressed());
    });
}

/// Every few seconds: cgroup usage against limits (ResourceLimitWarning)
/// and free space in the data directory (DiskSpaceLow).
pub async fn monitor(host: Arc<Host>) {
    let mut warned: std::collections::HashSet<(String, &'static str)> = std::collections::HashSet::new();
    let mut disk_warned = false;
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let running: Vec<(String, u64, u64, u64)> = host
            .slots()
            .values()
            .filter_map(|s| {
                let l = crate::policygen::effective_limits(host.config.limits_for(s.name()), &s.module.manifest);
                s.sandbox_key.map(|k| (s.name().to_string(), k, l.memory_max_bytes, l.pids_max))
            })
            .collect();
        let pct = u64::from(host.config.daemon.resource_warn_percent);
        for (name, key, mem_max, pids_max) in running {
            let u = host.launcher.usage(key).await;
            for (resource, used, limit) in [("memory", u.memory_current, mem_max), ("pids", u.pids_current, pids_max)] {
                let Some(used) = used else { continue };
                let over = used * 100 >= limit * pct;
                let k = (name.clone(), resource);
                if over && warned.insert(k.clone()) {
                    host.bus.publish(Event {
                        event_type: EventType::ResourceLimitWarning,
                        publisher: None,
                        payload: EventPayload::ResourceLimitWarning { module_name: name.clone(), resource: resource.into(), used, limit },
                    });
                } else if !over {
                    warned.remove(&k);
                }
            }
        }
        if let Some((avail, total)) = disk_space(&host.config.paths.data_dir) {
            let low = avail * 100 < total * u64::from(host.config.daemon.disk_low_percent);
            if low && !disk_warned {
                host.bus.publish(Event {
                    event_type: EventType::DiskSpaceLow,
                    publisher: None,
                    payload: EventPayload::DiskSpaceLow {
                        path: host.config.paths.data_dir.display().to_string(),
                        available_bytes: avail,
                        total_bytes: total,
                    },
                });
            }
            disk_warned = low;
        }
    }
}

fn disk_space(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: zeroed statvfs is a valid out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: NUL-terminated path and a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize))
}
