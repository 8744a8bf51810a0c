//! hostd's side of the launcher: send requests, route replies and exit
//! reports to whoever waits for them.

use super::*;

#[derive(Default)]
struct Waiters {
    spawned: HashMap<u64, oneshot::Sender<Result<i32, String>>>,
    exited: HashMap<u64, oneshot::Sender<Outcome>>,
    usage: HashMap<u64, Vec<oneshot::Sender<Usage>>>,
    given: HashMap<u64, oneshot::Sender<Option<String>>>,
    gone: bool,
}

/// hostd's handle on the launcher. Requests go out under a lock (sends on
/// a SEQPACKET socket are short and atomic); one reader thread routes the
/// replies to whoever waits for them.
pub struct Launcher {
    sock: Arc<OwnedFd>,
    pid: i32,
    environment: serde_json::Value,
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
    pub(super) fn new(sock: OwnedFd, pid: i32, environment: serde_json::Value) -> Launcher {
        Launcher {
            sock: Arc::new(sock),
            pid,
            environment,
            send_lock: Mutex::new(()),
            waiters: Arc::new(Mutex::new(Waiters::default())),
            next_key: std::sync::atomic::AtomicU64::new(1),
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Where the launcher found itself: container, cgroup layout, what it
    /// did there, problems (`sandbox::environment::Environment`).
    pub fn environment(&self) -> &serde_json::Value {
        &self.environment
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
                        FromLauncher::Given { key, error } => {
                            if let Some(tx) = w.given.remove(&key) {
                                let _ = tx.send(error);
                            }
                        }
                        FromLauncher::Ready { .. } | FromLauncher::StartFailed { .. } => {}
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
                w.given.clear();
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

    /// Ask the launcher to give the directory or file behind `fd` to
    /// module uid `uid` (hostd itself may not chown); waits for the answer.
    /// Blocks the calling thread: call it from blocking code.
    pub fn give_blocking(&self, fd: &impl AsRawFd, uid: u32) -> Result<(), LauncherError> {
        let key = self.next_key.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut w = lock(&self.waiters);
            if w.gone {
                return Err(LauncherError::Gone);
            }
            w.given.insert(key, tx);
        }
        self.send(&ToLauncher::Give { key, uid }, &[fd.as_raw_fd()])?;
        match rx.blocking_recv() {
            Ok(None) => Ok(()),
            Ok(Some(error)) => Err(LauncherError::Give { uid, error }),
            Err(_) => Err(LauncherError::Gone),
        }
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
