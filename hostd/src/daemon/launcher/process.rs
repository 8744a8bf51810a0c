//! The launcher's side: set up (cgroups delegated, privileges dropped),
//! then serve hostd's messages one at a time — spawn, signal, kill, usage,
//! forget — report each sandbox's exit, and make standbys when idle. When
//! hostd's end closes, every sandbox dies with the launcher.

use super::*;

/// Cgroups and privileges, before the launcher takes requests. Also what
/// kind of place this is ([`Environment`]), for hostd's log and `status`.
fn set_up(run_as: Option<&RunAs>) -> Result<(KernelFeatures, Option<CgroupRoot>, Environment), String> {
    sandbox::clear_supplementary_groups().map_err(|e| format!("setgroups: {e}"))?;
    // Thoroughly: a container runtime that refuses nested namespaces is
    // named now, and every launch's refusal carries the reason.
    let mut kernel = KernelFeatures::probe_thoroughly();
    let mut environment = Environment::probe(&kernel);
    let mut cgroups = match CgroupRoot::new(kernel.cgroup.clone()) {
        Ok(c) => Some(c),
        Err(e) => {
            // Launches with cgroup limits are then refused naming this
            // reason (or run without, where the downgrade is allowed).
            let reason = format!("hostd could not prepare its cgroup: {e}");
            environment.cgroup_failed(&reason);
            kernel.cgroup = CgroupMode::Unavailable { reason };
            None
        }
    };
    if let Some(r) = run_as {
        use crate::daemon::privileges::{become_launcher_keeping, HOSTD_LAUNCHER_CAPS};
        become_launcher_keeping(r, cgroups.as_mut(), &HOSTD_LAUNCHER_CAPS).map_err(|e| e.to_string())?;
    }
    Ok((kernel, cgroups, environment))
}

struct Sandbox {
    child: sandbox::Child,
}

pub(super) fn serve(sock: OwnedFd, run_as: Option<&RunAs>, standbys: usize, rules: &LauncherRules) -> Result<(), LauncherError> {
    let (kernel, cgroups, environment) = match set_up(run_as) {
        Ok(v) => v,
        Err(error) => {
            send_json(sock.as_raw_fd(), &FromLauncher::StartFailed { error: error.clone() }, &[]).map_err(io("send start failure"))?;
            return Err(LauncherError::Start(error));
        }
    };
    let environment = serde_json::to_value(&environment).unwrap_or_default();
    send_json(sock.as_raw_fd(), &FromLauncher::Ready { environment }, &[]).map_err(io("send ready"))?;
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
                let result = rules.check_policy(&policy).and_then(|()| spawn_one(&policy, &kernel, cgroups.as_ref(), &standbys, argv, &mut fds));
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
            ToLauncher::Give { key, uid } => {
                let error = match fds.pop() {
                    Some(fd) if fds.is_empty() => rules.give(&fd, uid).err(),
                    _ => Some("expected exactly one fd with a give request".to_string()),
                };
                if let Some(e) = &error {
                    eprintln!("hostd launcher: {e}");
                }
                FromLauncher::Given { key, error }
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
