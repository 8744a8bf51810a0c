//! One task per loaded module: start it (verify, sandbox, connection),
//! watch it, classify how it ended, restart it per its [`CrashWindow`] or
//! leave it failed, and stop it gracefully when asked.

use super::conn::{self, report_suppressed, ConnEnd};
use super::crash::{crash_reason, CrashWindow, Verdict};
use super::limit::LineBudget;
use super::{Host, LoadedModule, ModState};
use hostd_protocol::{Event, EventPayload, EventType, HostMessage};
use sandbox::Outcome;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;
use tokio::sync::{mpsc, oneshot};

/// Ask a module's supervisor to stop it; `done` fires once it has.
pub struct StopRequest {
    pub done: oneshot::Sender<()>,
}

fn set_state(host: &Host, name: &str, state: ModState) {
    host.with_module(name, |s| s.state = state);
}

struct Running {
    key: u64,
    exited: oneshot::Receiver<Outcome>,
    conn: tokio::task::JoinHandle<ConnEnd>,
}

pub(super) async fn supervise(host: Arc<Host>, name: String, mut control: mpsc::Receiver<StopRequest>) {
    let mut crashes = CrashWindow::new(host.config.daemon.restart);
    loop {
        set_state(&host, &name, ModState::Starting);
        let reason = match start_once(&host, &name).await {
            Err(e) => {
                tracing::error!(module = %name, "cannot start: {e}");
                let why = format!("start failed: {e}");
                host.with_module(&name, |s| {
                    s.note(&why);
                    s.last_exit = Some(why);
                });
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
                            let done = cmd.map(|StopRequest { done }| done);
                            graceful_stop(&host, &name, &mut run).await;
                            set_state(&host, &name, ModState::Stopped);
                            host.with_module(&name, LoadedModule::process_gone);
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
        let restarts = host
            .with_module(&name, |s| {
                s.process_gone();
                if let Some(r) = &reason {
                    s.last_exit = Some(r.to_string());
                    s.note(format!("exited: {r}"));
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
        let backoff = match crashes.record(Instant::now()) {
            Verdict::RestartAfter(backoff) => backoff,
            Verdict::GiveUp { crashes } => {
                tracing::error!(module = %name, crashes, "crash loop: not restarting; `hostd load` after fixing it");
                host.with_module(&name, |s| s.note(format!("{crashes} crashes: a crash loop; not restarted until `hostd load`")));
                set_state(&host, &name, ModState::Failed);
                if let Some(StopRequest { done }) = control.recv().await {
                    set_state(&host, &name, ModState::Stopped);
                    let _ = done.send(());
                }
                return;
            }
        };
        set_state(&host, &name, ModState::Backoff);
        tracing::info!(module = %name, "restarting in {} ms", backoff.as_millis());
        host.with_module(&name, |s| s.note(format!("restarting in {} ms", backoff.as_millis())));
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            cmd = control.recv() => {
                set_state(&host, &name, ModState::Stopped);
                if let Some(StopRequest { done }) = cmd { let _ = done.send(()); }
                return;
            }
        }
        host.with_module(&name, |s| s.restarts += 1);
    }
}

async fn graceful_stop(host: &Arc<Host>, name: &str, run: &mut Running) {
    set_state(host, name, ModState::Stopping);
    let grace = host.config.daemon.grace_ms;
    if let Some(c) = host.with_module(name, |s| s.conn.clone()).flatten() {
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
    Ids(#[from] crate::discovery::ModuleError),
    #[error("{op}: {source}")]
    Io { op: &'static str, source: std::io::Error },
    #[error("{0}")]
    Launcher(#[from] super::launcher::LauncherError),
    #[error("module {0} was unloaded")]
    Gone(String),
}

async fn start_once(host: &Arc<Host>, name: &str) -> Result<Running, StartError> {
    // Hash and signatures are checked on every start, against the fd that is
    // exec'd: the file on disk, or the binary a rollback pinned.
    let (module, pinned) =
        host.with_module(name, |s| (s.module.clone(), s.binary.clone().filter(|_| s.pinned))).ok_or_else(|| StartError::Gone(name.into()))?;
    let m = &module.manifest;
    let verified = match pinned {
        Some(fd) => {
            let file = std::fs::File::from(fd.try_clone().map_err(|source| StartError::Io { op: "dup the pinned binary", source })?);
            crate::trust::verify_file(name, &module.dir, file, &m.manifest, m.declared_threshold, &host.config.trust)?
        }
        None => crate::trust::verify(name, &module.dir, &m.manifest, m.declared_threshold, &host.config.trust)?,
    };
    if let Ok(kept) = verified.fd.try_clone() {
        host.with_module(name, |s| s.binary = Some(Arc::new(kept)));
    }
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
    host.with_module(name, |s| {
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

