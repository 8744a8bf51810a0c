//! The launcher: a single-threaded process forked before the tokio runtime
//! starts, because a sandbox's user namespace can only be created from a
//! single-threaded process (DESIGN.md, launch step 0).
//!
//! hostd talks to it over a SOCK_SEQPACKET pair: one JSON message per
//! packet, file descriptors (binary, IPC end, stdout, stderr) passed with
//! SCM_RIGHTS. The launcher owns every sandbox (pidfd, cgroup) and reports
//! each exit; when hostd goes away (EOF on the socket) it kills every
//! sandbox and exits, so a killed hostd leaves no module behind.

use sandbox::fdpass::{recv_packet, send_packet, seqpacket_pair};
use sandbox::{CgroupRoot, Command, KernelFeatures, Outcome, Policy, Usage};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use super::lock;
use crate::privdrop::RunAs;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Largest control message; a policy is a few KiB of JSON.
const MAX_PACKET: usize = 1 << 20;
const SPAWN_FDS: usize = 4;

#[derive(Debug, Serialize, Deserialize)]
enum ToLauncher {
    /// Fds follow: binary, IPC end (fd 3 inside), stdout, stderr.
    Spawn { key: u64, policy: Box<Policy>, argv: Vec<String> },
    Signal { key: u64, signal: i32 },
    Kill { key: u64 },
    Usage { key: u64 },
    /// The module was unloaded: kill its standbys.
    Forget { name: String },
}

#[derive(Debug, Serialize, Deserialize)]
enum FromLauncher {
    /// First packet: set up (cgroups delegated, privileges dropped) or not.
    Ready,
    StartFailed { error: String },
    Spawned { key: u64, pid: i32 },
    SpawnFailed { key: u64, error: String },
    Exited { key: u64, outcome: Outcome },
    Usage { key: u64, usage: Usage },
}

#[derive(Debug, thiserror::Error)]
pub enum LauncherError {
    #[error("launcher: {op}: {source}")]
    Io { op: &'static str, source: std::io::Error },
    #[error("launcher could not start module {module}: {error}")]
    Spawn { module: String, error: String },
    #[error("the launcher process is gone")]
    Gone,
    #[error("the launcher could not start: {0}")]
    Start(String),
}

fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> LauncherError {
    move |source| LauncherError::Io { op, source }
}

fn send_json<T: Serialize>(sock: RawFd, msg: &T, fds: &[RawFd]) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(msg).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    send_packet(sock, &bytes, fds)
}

// ---------------------------------------------------------------- launcher side

/// Fork the launcher. Must run while the process is single-threaded.
/// With `run_as`, the launcher hands the sandbox cgroups to that user and
/// drops to it keeping [`crate::privdrop::LAUNCHER_CAPS`]. Returns once the
/// launcher says it is ready, or with the reason it could not start.
/// `standbys`: how many sandboxes to keep made ahead for relaunched modules
/// (see `sandbox::Standbys`).
pub fn fork_launcher(run_as: Option<&RunAs>, standbys: usize) -> Result<Launcher, LauncherError> {
    let (ours, theirs) = seqpacket_pair().map_err(io("socketpair"))?;
    // SAFETY: we are single-threaded here (checked by the caller's design:
    // this runs before the tokio runtime); the child only runs `serve`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(LauncherError::Io { op: "fork", source: std::io::Error::last_os_error() });
    }
    if pid == 0 {
        drop(ours);
        // The launcher must not outlive hostd: its sandboxes would be orphans.
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
        let code = match serve(theirs, run_as, standbys) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("hostd launcher: {e}");
                1
            }
        };
        // SAFETY: leave without running hostd's atexit/destructors twice.
        unsafe { libc::_exit(code) };
    }
    drop(theirs);
    let mut buf = vec![0u8; 64 * 1024];
    match recv_packet(ours.as_raw_fd(), &mut buf, SPAWN_FDS).map_err(io("launcher start"))? {
        Some((n, _)) => match serde_json::from_slice::<FromLauncher>(&buf[..n]) {
            Ok(FromLauncher::Ready) => Ok(Launcher::new(ours, pid)),
            Ok(FromLauncher::StartFailed { error }) => Err(LauncherError::Start(error)),
            _ => Err(LauncherError::Start("unexpected first message".into())),
        },
        None => Err(LauncherError::Gone),
    }
}

/// Cgroups and privileges, before the launcher takes requests.
fn set_up(run_as: Option<&RunAs>) -> Result<(KernelFeatures, Option<CgroupRoot>), String> {
    sandbox::clear_supplementary_groups().map_err(|e| format!("setgroups: {e}"))?;
    let kernel = KernelFeatures::probe();
    let mut cgroups = match CgroupRoot::new(kernel.cgroup.clone()) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("hostd launcher: cgroups unavailable: {e}");
            None
        }
    };
    if let Some(r) = run_as {
        crate::privdrop::become_launcher(r, cgroups.as_mut()).map_err(|e| e.to_string())?;
    }
    Ok((kernel, cgroups))
}

struct Sandbox {
    child: sandbox::Child,
}

fn serve(sock: OwnedFd, run_as: Option<&RunAs>, standbys: usize) -> Result<(), LauncherError> {
    let (kernel, cgroups) = match set_up(run_as) {
        Ok(v) => v,
        Err(error) => {
            send_json(sock.as_raw_fd(), &FromLauncher::StartFailed { error: error.clone() }, &[]).map_err(io("send start failure"))?;
            return Err(LauncherError::Start(error));
        }
    };
    send_json(sock.as_raw_fd(), &FromLauncher::Ready, &[]).map_err(io("send ready"))?;
    // Relaunches (crash restarts, reloads) go into a sandbox made ahead of time.
    let standbys = sandbox::Standbys::new(standbys);
    let mut sandboxes: HashMap<u64, Sandbox> = HashMap::new();
    let mut buf = vec![0u8; MAX_PACKET];
    loop {
        let mut pollfds = vec![libc::pollfd { fd: sock.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        let keys: Vec<u64> = sandboxes.keys().copied().collect();
        for k in &keys {
            pollfds.push(libc::pollfd { fd: sandboxes[k].child.pidfd(), events: libc::POLLIN, revents: 0 });
        }
        // Standbys are made only when nothing else is waiting.
        let timeout = if standbys.wanted() { 0 } else { -1 };
        // SAFETY: pollfds is a live array of the given length.
        let rc = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, timeout) };
        if rc == 0 {
            standbys.replenish(cgroups.as_ref());
            continue;
        }
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(LauncherError::Io { op: "poll", source: e });
        }
        for (i, k) in keys.iter().enumerate() {
            if pollfds[i + 1].revents != 0 {
                if let Some(mut sb) = sandboxes.remove(k) {
                    let outcome = sb.child.wait().unwrap_or(Outcome::KilledByHost);
                    send_json(sock.as_raw_fd(), &FromLauncher::Exited { key: *k, outcome }, &[]).map_err(io("send exit"))?;
                    drop(sb);
                    // Reported first; the rmdir can wait until now.
                    if let Some(cg) = cgroups.as_ref() {
                        cg.remove_emptied();
                    }
                }
            }
        }
        if pollfds[0].revents == 0 {
            continue;
        }
        let Some((n, mut fds)) = recv_packet(sock.as_raw_fd(), &mut buf, SPAWN_FDS).map_err(io("recv"))? else {
            // hostd is gone: Child's Drop kills and reaps every sandbox.
            return Ok(());
        };
        let msg: ToLauncher = match serde_json::from_slice(&buf[..n]) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("hostd launcher: undecodable request: {e}");
                continue;
            }
        };
        let reply = match msg {
            ToLauncher::Spawn { key, policy, argv } => {
                let result = spawn_one(&policy, &kernel, cgroups.as_ref(), &standbys, argv, &mut fds);
                match result {
                    Ok(child) => {
                        let pid = child.pid();
                        sandboxes.insert(key, Sandbox { child });
                        FromLauncher::Spawned { key, pid }
                    }
                    Err(error) => FromLauncher::SpawnFailed { key, error },
                }
            }
            ToLauncher::Signal { key, signal } => {
                if let Some(sb) = sandboxes.get(&key) {
                    // SAFETY: pidfd_send_signal on a pidfd we own.
                    unsafe { libc::syscall(libc::SYS_pidfd_send_signal, sb.child.pidfd(), signal, std::ptr::null::<u8>(), 0) };
                }
                continue;
            }
            ToLauncher::Kill { key } => {
                if let Some(sb) = sandboxes.get_mut(&key) {
                    sb.child.kill();
                }
                continue;
            }
            ToLauncher::Forget { name } => {
                standbys.forget(&name);
                continue;
            }
            ToLauncher::Usage { key } => {
                let usage = sandboxes.get(&key).map(|sb| sb.child.usage()).unwrap_or_default();
                FromLauncher::Usage { key, usage }
            }
        };
        send_json(sock.as_raw_fd(), &reply, &[]).map_err(io("send reply"))?;
    }
}

fn spawn_one(
    policy: &Policy,
    kernel: &KernelFeatures,
    cgroups: Option<&CgroupRoot>,
    standbys: &sandbox::Standbys,
    argv: Vec<String>,
    fds: &mut Vec<OwnedFd>,
) -> Result<sandbox::Child, String> {
    if fds.len() != SPAWN_FDS {
        return Err(format!("expected {SPAWN_FDS} fds with a spawn request, got {}", fds.len()));
    }
    let stderr = fds.pop();
    let stdout = fds.pop();
    let ipc = fds.pop();
    let exec_fd = fds.pop().ok_or("no binary fd")?;
    let argv = argv
        .into_iter()
        .map(|a| CString::new(a).map_err(|_| "argv contains a NUL byte".to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let prepared = sandbox::prepare(policy, kernel).map_err(|e| e.to_string())?;
    let cmd = Command { exec_fd, argv, stdin: None, stdout, stderr, ipc };
    standbys.spawn(&prepared, cgroups, cmd).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------- hostd side

#[derive(Default)]
struct Waiters {
    spawned: HashMap<u64, oneshot::Sender<Result<i32, String>>>,
    exited: HashMap<u64, oneshot::Sender<Outcome>>,
    usage: HashMap<u64, Vec<oneshot::Sender<Usage>>>,
    gone: bool,
}

/// hostd's handle on the launcher. Requests go out under a lock (sends on
/// a SEQPACKET socket are short and atomic); one reader thread routes the
/// replies to whoever waits for them.
pub struct Launcher {
    sock: Arc<OwnedFd>,
    pid: i32,
    send_lock: Mutex<()>,
    waiters: Arc<Mutex<Waiters>>,
    next_key: std::sync::atomic::AtomicU64,
}

/// A started sandbox as hostd sees it.
pub struct Spawned {
    pub key: u64,
    pub pid: i32,
    pub exited: oneshot::Receiver<Outcome>,
}

impl Launcher {
    fn new(sock: OwnedFd, pid: i32) -> Launcher {
        Launcher {
            sock: Arc::new(sock),
            pid,
            send_lock: Mutex::new(()),
            waiters: Arc::new(Mutex::new(Waiters::default())),
            next_key: std::sync::atomic::AtomicU64::new(1),
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Start routing replies. Call once, after the runtime is up.
    pub fn start_reader(&self) {
        let sock = self.sock.clone();
        let waiters = self.waiters.clone();
        std::thread::Builder::new()
            .name("launcher-replies".into())
            .spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let msg = match recv_packet(sock.as_raw_fd(), &mut buf, SPAWN_FDS) {
                        Ok(Some((n, _))) => serde_json::from_slice::<FromLauncher>(&buf[..n]),
                        Ok(None) | Err(_) => break,
                    };
                    let Ok(msg) = msg else { continue };
                    let mut w = lock(&waiters);
                    match msg {
                        FromLauncher::Spawned { key, pid } => {
                            if let Some(tx) = w.spawned.remove(&key) {
                                let _ = tx.send(Ok(pid));
                            }
                        }
                        FromLauncher::SpawnFailed { key, error } => {
                            w.exited.remove(&key);
                            if let Some(tx) = w.spawned.remove(&key) {
                                let _ = tx.send(Err(error));
                            }
                        }
                        FromLauncher::Exited { key, outcome } => {
                            if let Some(tx) = w.exited.remove(&key) {
                                let _ = tx.send(outcome);
                            }
                        }
                        FromLauncher::Ready | FromLauncher::StartFailed { .. } => {}
                        FromLauncher::Usage { key, usage } => {
                            if let Some(list) = w.usage.get_mut(&key) {
                                if !list.is_empty() {
                                    let _ = list.remove(0).send(usage);
                                }
                                if list.is_empty() {
                                    w.usage.remove(&key);
                                }
                            }
                        }
                    }
                }
                tracing::error!("the launcher process is gone; no module can be started");
                let mut w = lock(&waiters);
                w.gone = true;
                w.spawned.clear();
                w.exited.clear();
                w.usage.clear();
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!("cannot start the launcher reply thread: {e}"));
    }

    fn send(&self, msg: &ToLauncher, fds: &[RawFd]) -> Result<(), LauncherError> {
        let _g = lock(&self.send_lock);
        send_json(self.sock.as_raw_fd(), msg, fds).map_err(|_| LauncherError::Gone)
    }

    /// Start `policy` with `exec_fd` as the binary and `ipc` as its fd 3.
    pub async fn spawn(
        &self,
        policy: &Policy,
        argv: Vec<String>,
        exec_fd: OwnedFd,
        ipc: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    ) -> Result<Spawned, LauncherError> {
        let key = self.next_key.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (stx, srx) = oneshot::channel();
        let (etx, erx) = oneshot::channel();
        {
            let mut w = lock(&self.waiters);
            if w.gone {
                return Err(LauncherError::Gone);
            }
            w.spawned.insert(key, stx);
            w.exited.insert(key, etx);
        }
        let fds = [exec_fd.as_raw_fd(), ipc.as_raw_fd(), stdout.as_raw_fd(), stderr.as_raw_fd()];
        self.send(&ToLauncher::Spawn { key, policy: Box::new(policy.clone()), argv }, &fds)?;
        // Our copies close here; the sandbox holds its own.
        drop((exec_fd, ipc, stdout, stderr));
        match srx.await {
            Ok(Ok(pid)) => Ok(Spawned { key, pid, exited: erx }),
            Ok(Err(error)) => Err(LauncherError::Spawn { module: policy.name.clone(), error }),
            Err(_) => Err(LauncherError::Gone),
        }
    }

    pub fn signal(&self, key: u64, signal: i32) {
        let _ = self.send(&ToLauncher::Signal { key, signal }, &[]);
    }

    /// SIGKILL the sandbox and everything in its cgroup.
    pub fn kill(&self, key: u64) {
        let _ = self.send(&ToLauncher::Kill { key }, &[]);
    }

    /// Module `name` is gone: its standbys too.
    pub fn forget(&self, name: &str) {
        let _ = self.send(&ToLauncher::Forget { name: name.to_string() }, &[]);
    }

    pub async fn usage(&self, key: u64) -> Usage {
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).usage.entry(key).or_default().push(tx);
        if self.send(&ToLauncher::Usage { key }, &[]).is_err() {
            return Usage::default();
        }
        rx.await.unwrap_or_default()
    }
}
