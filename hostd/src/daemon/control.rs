//! The control socket: one JSON request line, one JSON response line.
//! Only root and the configured control group can connect (socket mode
//! 0600/0660, and the peer's credentials are checked again on accept).

use super::{hub, lifecycle, Host};
use hostd_protocol::Invocation;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum ControlRequest {
    Status,
    Load { module: String },
    Unload { module: String, cascade: bool },
    Reload { module: String },
    Logs { module: String, lines: usize },
    /// The seeds' getmoduleclispecs.
    CliSpecs,
    /// The seeds' runmodulecli.
    RunCli { module: String, command: String, args: Vec<String> },
    /// Every registered RPC endpoint, with its module.
    RpcEndpoints,
    /// Call the module that registered `method`; `params` is JSON text.
    Rpc { method: String, params: String },
    /// hostd's and every module's metrics, Prometheus text format.
    Metrics,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlResponse {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl ControlResponse {
    fn ok(data: serde_json::Value) -> ControlResponse {
        ControlResponse { ok: true, error: None, data }
    }
    fn err(e: impl std::fmt::Display) -> ControlResponse {
        ControlResponse { ok: false, error: Some(e.to_string()), data: serde_json::Value::Null }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control socket {path}: {source}")]
    Socket { path: std::path::PathBuf, source: std::io::Error },
    #[error("control group {0:?} does not exist")]
    NoGroup(String),
}

fn group_gid(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then(|| f.nth(1)?.parse().ok()).flatten()
    })
}

/// The bound control socket, made while `hostd run` is still root: it then
/// belongs to the hostd user and, with `control_group`, to that group
/// (mode 0660; else 0600), without the daemon ever holding CAP_CHOWN.
pub struct ControlSocket {
    listener: std::os::unix::net::UnixListener,
    group: Option<u32>,
    path: std::path::PathBuf,
}

pub fn bind(config: &crate::config::HostConfig, owner: (u32, u32)) -> Result<ControlSocket, ControlError> {
    let path = config.control_socket();
    let sock_err = |source| ControlError::Socket { path: path.clone(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(sock_err)?;
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(sock_err(e)),
    }
    let group = match &config.daemon.control_group {
        Some(g) => Some(group_gid(g).ok_or_else(|| ControlError::NoGroup(g.clone()))?),
        None => None,
    };
    let listener = std::os::unix::net::UnixListener::bind(&path).map_err(sock_err)?;
    use std::os::unix::fs::PermissionsExt;
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(sock_err)?;
    std::os::unix::fs::chown(&path, Some(owner.0), Some(group.unwrap_or(owner.1))).map_err(sock_err)?;
    listener.set_nonblocking(true).map_err(sock_err)?;
    Ok(ControlSocket { listener, group, path })
}

pub async fn serve(host: Arc<Host>, sock: ControlSocket) -> Result<(), ControlError> {
    let ControlSocket { listener, group, path } = sock;
    let listener = UnixListener::from_std(listener).map_err(|source| ControlError::Socket { path: path.clone(), source })?;
    tracing::info!(path = %path.display(), "control socket ready");
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let allowed = stream.peer_cred().is_ok_and(|c| {
            // SAFETY: geteuid has no preconditions.
            c.uid() == 0 || c.uid() == unsafe { libc::geteuid() } || group.is_some_and(|g| c.gid() == g)
        });
        if !allowed {
            continue;
        }
        let host = host.clone();
        tokio::spawn(async move {
            let _ = client_session(host, stream).await;
        });
    }
}

async fn client_session(host: Arc<Host>, stream: UnixStream) -> std::io::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut line = String::new();
    // One request per connection, of bounded size.
    let n = BufReader::new(rd.take(64 * 1024)).read_line(&mut line).await?;
    let resp = if n == 0 {
        return Ok(());
    } else {
        match serde_json::from_str::<ControlRequest>(&line) {
            Ok(req) => handle(&host, req).await,
            Err(e) => ControlResponse::err(format!("bad control request: {e}")),
        }
    };
    let mut out = serde_json::to_vec(&resp).unwrap_or_default();
    out.push(b'\n');
    wr.write_all(&out).await
}

async fn handle(host: &Arc<Host>, req: ControlRequest) -> ControlResponse {
    match req {
        ControlRequest::Status => ControlResponse::ok(status(host).await),
        ControlRequest::Metrics => ControlResponse::ok(serde_json::json!({ "text": super::metrics_export::gather(host).await })),
        ControlRequest::Load { module } => {
            if let Err(e) = crate::manifest::check_name(&module) {
                return ControlResponse::err(e);
            }
            let dir = host.config.module_dir(&module);
            let loaded = crate::discovery::load_dir(&dir, &host.config, true).map_err(lifecycle::LifecycleError::from).and_then(|m| lifecycle::load(host, m));
            match loaded {
                Ok(()) => match lifecycle::wait_up(host, &module).await {
                    Ok(()) => ControlResponse::ok(serde_json::json!({ "loaded": module })),
                    Err(e) => ControlResponse::err(e),
                },
                Err(e) => ControlResponse::err(e),
            }
        }
        ControlRequest::Unload { module, cascade } => match lifecycle::unload(host, &module, cascade).await {
            Ok(list) => ControlResponse::ok(serde_json::json!({ "unloaded": list })),
            Err(e) => ControlResponse::err(e),
        },
        ControlRequest::Reload { module } => match lifecycle::reload(host, &module).await {
            Ok(()) => ControlResponse::ok(serde_json::json!({ "reloaded": module })),
            Err(e) => ControlResponse::err(e),
        },
        ControlRequest::Logs { module, lines } => match host.with_module(&module, |s| {
            let skip = s.logs.len().saturating_sub(lines);
            s.logs.iter().skip(skip).cloned().collect::<Vec<_>>()
        }) {
            Some(l) => ControlResponse::ok(serde_json::json!({ "module": module, "lines": l })),
            None => ControlResponse::err(format!("module {module:?} is not loaded")),
        },
        ControlRequest::CliSpecs => {
            let specs: serde_json::Map<String, serde_json::Value> = host
                .loaded()
                .values()
                .filter_map(|s| s.cli.as_ref().map(|c| (s.name().to_string(), cli_json(c))))
                .collect();
            ControlResponse::ok(serde_json::Value::Object(specs))
        }
        ControlRequest::RpcEndpoints => {
            let all: serde_json::Map<String, serde_json::Value> = host
                .loaded()
                .values()
                .flat_map(|s| s.rpc.iter().map(|(m, d)| (m.clone(), serde_json::json!({"module": s.name(), "description": d}))))
                .collect();
            ControlResponse::ok(serde_json::Value::Object(all))
        }
        ControlRequest::Rpc { method, params } => {
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&params) {
                return ControlResponse::err(format!("RPC params for {method} are not JSON: {e}"));
            }
            let owner = host.loaded().values().find(|s| s.rpc.contains_key(&method)).map(|s| (s.name().to_string(), s.conn.clone()));
            let Some((module, conn)) = owner else { return ControlResponse::err(format!("no module registered the RPC method {method:?}")) };
            let Some(conn) = conn else { return ControlResponse::err(format!("module {module} is not running")) };
            let timeout = Duration::from_millis(u64::from(host.config.daemon.call_timeout_ms));
            match conn.invoke(Invocation::Rpc { method, params }, timeout).await {
                Ok(out) => ControlResponse::ok(serde_json::json!({ "module": module, "result": String::from_utf8_lossy(&out) })),
                Err(e) => ControlResponse::err(format!("{module}: {e}")),
            }
        }
        ControlRequest::RunCli { module, command, args } => {
            let found = host.with_module(&module, |s| (s.conn.clone(), s.cli.clone(), s.state, s.last_exit.clone()));
            let Some((conn, spec, state, last_exit)) = found else { return ControlResponse::err(format!("module {module:?} is not loaded")) };
            if conn.is_none() {
                let exit = last_exit.map(|e| format!("; last exit: {e}")).unwrap_or_default();
                return ControlResponse::err(format!("module {module} is not running (state {state}{exit})"));
            }
            let Some(spec) = spec else { return ControlResponse::err(format!("module {module} registered no CLI commands")) };
            let Some(cmd) = spec.commands.iter().find(|c| c.name == command) else {
                let known: Vec<&str> = spec.commands.iter().map(|c| c.name.as_str()).collect();
                return ControlResponse::err(format!("module {module} has no command {command:?}; it has: {}", known.join(", ")));
            };
            // Checked against what the module registered, before it is woken.
            let required = cmd.args.iter().filter(|a| a.required).count();
            if args.len() < required || args.len() > cmd.args.len() {
                let usage: Vec<String> = cmd.args.iter().map(|a| if a.required { format!("<{}>", a.name) } else { format!("[{}]", a.name) }).collect();
                return ControlResponse::err(format!("usage: hostd module {module} {command} {} ({} arguments given)", usage.join(" "), args.len()));
            }
            let Some(conn) = conn else { return ControlResponse::err(format!("module {module} is not running")) };
            let timeout = Duration::from_millis(u64::from(host.config.daemon.call_timeout_ms));
            match conn.invoke(Invocation::Cli { command, args }, timeout).await {
                Ok(out) => ControlResponse::ok(serde_json::json!({ "output": String::from_utf8_lossy(&out) })),
                Err(e) => ControlResponse::err(format!("{module}: {e}")),
            }
        }
    }
}

fn cli_json(c: &hostd_protocol::CliSpec) -> serde_json::Value {
    serde_json::json!({
        "about": c.about,
        "commands": c.commands.iter().map(|cmd| serde_json::json!({
            "name": cmd.name,
            "about": cmd.about,
            "args": cmd.args.iter().map(|a| serde_json::json!({"name": a.name, "help": a.help, "required": a.required})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

async fn status(host: &Arc<Host>) -> serde_json::Value {
    type Row = (String, Option<u64>, Option<Arc<crate::daemon::storage::ModuleStore>>, serde_json::Value);
    let rows: Vec<Row> = host
        .loaded()
        .values()
        .map(|s| {
            let info = hub::module_info(s);
            let row = serde_json::json!({
                "name": info.name,
                "version": info.version,
                "state": s.state,
                "pid": s.pid,
                "handshaken": s.handshaken,
                "uptime_secs": s.started_at.map(|t| t.elapsed().as_secs()),
                "restarts": s.restarts,
                "last_exit": s.last_exit,
                "health": s.health.as_ref().map(|(h, d)| serde_json::json!({"status": format!("{h:?}"), "detail": d})),
                "api": s.api,
                "cli_commands": s.cli.as_ref().map(|c| c.commands.iter().map(|c| c.name.clone()).collect::<Vec<_>>()),
                "suppressed_output_lines": s.suppressed_lines,
                "permission_denials": s.denials,
                "pending_invocations": s.conn.as_ref().map_or(0, |c| c.pending_invocations()),
                "throttled_ms": s.conn.as_ref().map_or(0, |c| c.throttled_ms()),
                "pool_slots_busy": s.pool_slots - s.pool.available_permits(),
                "mesh": s.mesh.as_ref().map(|m| m.status_json()),
                "files": {
                    "used_bytes": s.files_used.as_ref().and_then(|r| r.as_ref().ok()),
                    "quota_bytes": host.config.daemon.files_quota_bytes,
                    "unmeasured": s.files_used.as_ref().and_then(|r| r.as_ref().err()),
                },
                "registered": {
                    "rpc_endpoints": s.rpc.len(),
                    "api_methods": s.api.len(),
                    "cli_commands": s.cli.as_ref().map_or(0, |c| c.commands.len()),
                    "storage_trees": s.store.as_ref().map_or(0, |st| st.tree_count()),
                },
            });
            (s.name().to_string(), s.sandbox_key, s.store.clone(), row)
        })
        .collect();
    let mut modules = Vec::new();
    for (name, key, store, mut row) in rows {
        row["storage"] = store.map(|st| serde_json::to_value(st.usage()).unwrap_or_default()).unwrap_or_default();
        row["registered"]["metrics"] = hub::metric_count(host, &name).into();
        let usage = match key {
            Some(k) => Some(host.launcher.usage(k).await),
            None => None,
        };
        row["resources"] = serde_json::json!({
            "memory_bytes": usage.and_then(|u| u.memory_current),
            "cpu_usec": usage.and_then(|u| u.cpu_usage_usec),
            "pids": usage.and_then(|u| u.pids_current),
        });
        row["events"] = serde_json::to_value(host.bus.stats(&name)).unwrap_or_default();
        row["subscriptions"] = serde_json::json!(host.bus.subscriptions(&name).iter().map(|t| t.as_str()).collect::<Vec<_>>());
        modules.push(row);
    }
    use crate::daemon::privileges::{names, CapSets};
    let launcher_pid = host.launcher.pid() as u32;
    let caps = |c: CapSets| serde_json::json!({ "effective": names(c.effective), "permitted": names(c.permitted), "bounding": names(c.bounding) });
    // SAFETY: geteuid/getegid have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    serde_json::json!({
        "hostd": {
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "user": host.config.daemon.user,
            "uid": uid,
            "gid": gid,
            "capabilities": caps(CapSets::of_self()),
            "launcher": {
                "pid": launcher_pid,
                "capabilities": CapSets::of_pid(launcher_pid).map(caps),
            },
            "environment": host.launcher.environment(),
            "uptime_secs": host.started.elapsed().as_secs(),
            "node": host.node.describe(),
            "node_backend": host.node.status_json(),
            "mesh": host.mesh.status_json(),
            "modules_dir": host.config.paths.modules_dir,
            "data_dir": host.config.paths.data_dir,
        },
        "modules": modules,
    })
}

/// Send one request to a running hostd.
pub fn request(path: &Path, req: &ControlRequest) -> Result<ControlResponse, String> {
    use std::io::{BufRead, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| format!("cannot reach hostd at {}: {e} (is `hostd run` running, and are you root or in its control group?)", path.display()))?;
    let mut line = serde_json::to_vec(req).map_err(|e| e.to_string())?;
    line.push(b'\n');
    s.write_all(&line).map_err(|e| format!("control socket: {e}"))?;
    let mut resp = String::new();
    std::io::BufReader::new(s).read_line(&mut resp).map_err(|e| format!("control socket: {e}"))?;
    serde_json::from_str(&resp).map_err(|e| format!("bad answer from hostd: {e}"))
}
