//! The launcher: a single-threaded process forked before the tokio runtime
//! starts, because a sandbox's user namespace can only be created from a
//! single-threaded process (docs/architecture.md, launch step 0).
//!
//! hostd talks to it over a SOCK_SEQPACKET pair: one JSON message per
//! packet, file descriptors (binary, IPC end, stdout, stderr) passed with
//! SCM_RIGHTS. The launcher owns every sandbox (pidfd, cgroup) and reports
//! each exit; when hostd goes away (EOF on the socket) it kills every
//! sandbox and exits, so a killed hostd leaves no module behind.
//!
//! This file holds the messages and the fork; `process.rs` is the
//! launcher's side (it never reads module input, only these messages);
//! `client.rs` is hostd's side.

mod client;
pub mod rules;
mod process;

pub use client::{Launcher, Spawned};
pub use rules::LauncherRules;

use sandbox::fdpass::{recv_packet, send_packet, seqpacket_pair};
use sandbox::environment::Environment;
use sandbox::{CgroupMode, CgroupRoot, Command, KernelFeatures, Outcome, Policy, Usage};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use super::lock;
use crate::daemon::privileges::RunAs;
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
    /// One fd follows: give it to module uid `uid` (see `rules.rs`).
    Give { key: u64, uid: u32 },
}

#[derive(Debug, Serialize, Deserialize)]
enum FromLauncher {
    /// First packet: set up (cgroups delegated, privileges dropped) or not;
    /// `environment` is `sandbox::environment::Environment` as found.
    Ready { environment: serde_json::Value },
    StartFailed { error: String },
    Spawned { key: u64, pid: i32 },
    SpawnFailed { key: u64, error: String },
    Exited { key: u64, outcome: Outcome },
    Usage { key: u64, usage: Usage },
    Given { key: u64, error: Option<String> },
}

#[derive(Debug, thiserror::Error)]
pub enum LauncherError {
    #[error("launcher: {op}: {source}")]
    Io { op: &'static str, source: std::io::Error },
    #[error("launcher could not start module {module}: {error}")]
    Spawn { module: String, error: String },
    #[error("the launcher process is gone")]
    Gone,
    #[error("the launcher refused to give it to uid {uid}: {error}")]
    Give { uid: u32, error: String },
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


/// Fork the launcher. Must run while the process is single-threaded.
/// With `run_as`, the launcher hands the sandbox cgroups to that user and
/// drops to it keeping [`crate::daemon::privileges::HOSTD_LAUNCHER_CAPS`]; it does the
/// ownership work `rules` allow. Returns once the
/// launcher says it is ready, or with the reason it could not start.
/// `standbys`: how many sandboxes to keep made ahead for relaunched modules
/// (see `sandbox::Standbys`).
pub fn fork_launcher(run_as: Option<&RunAs>, standbys: usize, rules: LauncherRules) -> Result<Launcher, LauncherError> {
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
        let code = match process::serve(theirs, run_as, standbys, &rules) {
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
            Ok(FromLauncher::Ready { environment }) => Ok(Launcher::new(ours, pid, environment)),
            Ok(FromLauncher::StartFailed { error }) => Err(LauncherError::Start(error)),
            _ => Err(LauncherError::Start("unexpected first message".into())),
        },
        None => Err(LauncherError::Gone),
    }
}
