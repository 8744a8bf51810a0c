//! CLI for a running hostd: status, load/unload/reload, logs, module CLI.

use clap::Subcommand;
use hostd::daemon::control::{self, ControlRequest, ControlResponse};
use std::path::Path;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum DaemonCommand {
    /// Modules, state, pid, uptime, restarts, cgroup usage, event delivery.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// hostd's and every module's metrics (Prometheus text format).
    Metrics,
    /// Load an installed module (from the modules dir) at runtime.
    Load { module: String },
    /// Stop and unload a module.
    Unload {
        module: String,
        /// Also unload the modules that depend on it (otherwise they make this fail).
        #[arg(long)]
        cascade: bool,
    },
    /// Re-read, re-verify and restart a module.
    Reload { module: String },
    /// A module's recent output and log records.
    Logs {
        module: String,
        #[arg(short = 'n', long, default_value_t = 100)]
        lines: usize,
        #[arg(long)]
        json: bool,
    },
    /// Run a module's CLI command (without one: list its commands).
    Module {
        name: String,
        command: Option<String>,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Call an RPC endpoint a module registered (without a method: list them).
    Rpc {
        method: Option<String>,
        /// Parameters as JSON text.
        #[arg(default_value = "null")]
        params: String,
        #[arg(long)]
        json: bool,
    },
}

/// Exit codes: 0 done, 1 hostd refused or the operation failed, 4 hostd unreachable.
pub fn run(cmd: DaemonCommand, socket: &Path) -> ExitCode {
    let (req, json, render): (ControlRequest, bool, fn(&serde_json::Value) -> String) = match cmd {
        DaemonCommand::Status { json } => (ControlRequest::Status, json, render_status),
        DaemonCommand::Metrics => (ControlRequest::Metrics, false, |d| d["text"].as_str().unwrap_or("").to_string()),
        DaemonCommand::Load { module } => (ControlRequest::Load { module }, false, |d| format!("loaded {}\n", d["loaded"].as_str().unwrap_or(""))),
        DaemonCommand::Unload { module, cascade } => (ControlRequest::Unload { module, cascade }, false, |d| {
            let list: Vec<&str> = d["unloaded"].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
            format!("unloaded {}\n", list.join(", "))
        }),
        DaemonCommand::Reload { module } => (ControlRequest::Reload { module }, false, |d| format!("reloaded {}\n", d["reloaded"].as_str().unwrap_or(""))),
        DaemonCommand::Logs { module, lines, json } => (ControlRequest::Logs { module, lines }, json, |d| {
            d["lines"].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).map(|l| format!("{l}\n")).collect()).unwrap_or_default()
        }),
        DaemonCommand::Module { name, command: None, json, .. } => {
            return match control::request(socket, &ControlRequest::CliSpecs) {
                Err(e) => {
                    eprintln!("hostd: {e}");
                    ExitCode::from(4)
                }
                Ok(r) if !r.ok => finish(r, json, |_| String::new()),
                Ok(mut r) => {
                    r.data = r.data.get(&name).cloned().unwrap_or(serde_json::Value::Null);
                    if r.data.is_null() {
                        eprintln!("hostd: {}", no_commands(socket, &name));
                        return ExitCode::from(1);
                    }
                    finish(r, json, render_spec)
                }
            };
        }
        DaemonCommand::Rpc { method: None, json, .. } => (ControlRequest::RpcEndpoints, json, |d| {
            d.as_object()
                .map(|o| o.iter().map(|(m, v)| format!("{m}  ({}) {}\n", v["module"].as_str().unwrap_or(""), v["description"].as_str().unwrap_or(""))).collect())
                .unwrap_or_default()
        }),
        DaemonCommand::Rpc { method: Some(method), params, json } => {
            (ControlRequest::Rpc { method, params }, json, |d| format!("{}\n", d["result"].as_str().unwrap_or("")))
        }
        DaemonCommand::Module { name, command: Some(command), args, json } => {
            (ControlRequest::RunCli { module: name, command, args }, json, |d| d["output"].as_str().unwrap_or("").to_string())
        }
    };
    match control::request(socket, &req) {
        Ok(r) => finish(r, json, render),
        Err(e) => {
            eprintln!("hostd: {e}");
            ExitCode::from(4)
        }
    }
}

fn finish(r: ControlResponse, json: bool, render: fn(&serde_json::Value) -> String) -> ExitCode {
    if !r.ok {
        if json {
            println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
        }
        eprintln!("hostd: {}", r.error.unwrap_or_default());
        return ExitCode::from(1);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&r.data).unwrap_or_default());
    } else {
        print!("{}", render(&r.data));
    }
    ExitCode::SUCCESS
}

fn render_spec(d: &serde_json::Value) -> String {
    let mut out = format!("{}\n", d["about"].as_str().unwrap_or(""));
    for c in d["commands"].as_array().into_iter().flatten() {
        let args: Vec<String> = c["args"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                let n = a["name"].as_str().unwrap_or("");
                if a["required"].as_bool().unwrap_or(false) { format!("<{n}>") } else { format!("[{n}]") }
            })
            .collect();
        out += &format!("  {} {}\n      {}\n", c["name"].as_str().unwrap_or(""), args.join(" "), c["about"].as_str().unwrap_or(""));
    }
    out
}

fn human_bytes(v: &serde_json::Value) -> String {
    match v.as_u64() {
        Some(b) if b >= 1 << 20 => format!("{:.1}M", b as f64 / (1u64 << 20) as f64),
        Some(b) => format!("{:.0}K", b as f64 / 1024.0),
        None => "-".into(),
    }
}

fn render_status(d: &serde_json::Value) -> String {
    let h = &d["hostd"];
    let mut out = format!(
        "hostd {} pid {} up {}s, node: {}\n",
        h["version"].as_str().unwrap_or(""),
        h["pid"],
        h["uptime_secs"],
        h["node"].as_str().unwrap_or("")
    );
    let caps = |v: &serde_json::Value| {
        let list: Vec<&str> = v["effective"].as_array().map(|a| a.iter().filter_map(|c| c.as_str()).collect()).unwrap_or_default();
        if list.is_empty() { "none".to_string() } else { list.join(", ") }
    };
    out += &format!(
        "running as {} (uid {}); capabilities: daemon {}; launcher (pid {}) {}\n",
        h["user"].as_str().unwrap_or("?"),
        h["uid"],
        caps(&h["capabilities"]),
        h["launcher"]["pid"],
        caps(&h["launcher"]["capabilities"])
    );
    let env = &h["environment"];
    out += &format!(
        "host: {}, cgroups {} (namespace {}), sandbox namespaces {}\n",
        env["container"].as_str().map(|c| format!("container {c}")).unwrap_or_else(|| "no container".into()),
        env["cgroup_layout"].as_str().unwrap_or("?"),
        env["cgroup_namespace"].as_str().unwrap_or("?"),
        env["namespaces"].as_str().unwrap_or("?")
    );
    for problem in env["problems"].as_array().into_iter().flatten() {
        out += &format!("  problem: {}\n", problem.as_str().unwrap_or_default());
    }
    out += &format!(
        "{:<16} {:<9} {:<9} {:>7} {:>7} {:>4} {:>8} {:>9} {:>4} {:>16}\n",
        "MODULE", "VERSION", "STATE", "PID", "UPTIME", "RST", "MEMORY", "CPU", "PIDS", "EVENTS ok/drop"
    );
    for m in d["modules"].as_array().into_iter().flatten() {
        let r = &m["resources"];
        let dash = |v: &serde_json::Value| if v.is_null() { "-".to_string() } else { v.to_string() };
        out += &format!(
            "{:<16} {:<9} {:<9} {:>7} {:>7} {:>4} {:>8} {:>9} {:>4} {:>16}\n",
            m["name"].as_str().unwrap_or(""),
            m["version"].as_str().unwrap_or(""),
            m["state"].as_str().unwrap_or(""),
            dash(&m["pid"]),
            m["uptime_secs"].as_u64().map(|s| format!("{s}s")).unwrap_or("-".into()),
            m["restarts"],
            human_bytes(&r["memory_bytes"]),
            r["cpu_usec"].as_u64().map(|u| format!("{:.2}s", u as f64 / 1e6)).unwrap_or("-".into()),
            dash(&r["pids"]),
            format!("{}/{}", m["events"]["delivered"], m["events"]["dropped_full"]),
        );
        if let Some(e) = m["last_exit"].as_str() {
            out += &format!("    last exit: {e}\n");
        }
        if m["mesh"].is_object() {
            out += &mesh_line(&m["mesh"]);
        }
    }
    out
}

/// A module's mesh in one line: listener, links, traffic, what was refused.
fn mesh_line(v: &serde_json::Value) -> String {
    let listen = match v["listen"]["state"].as_str() {
        Some("listening") => v["listen"]["address"].as_str().unwrap_or("?").to_string(),
        Some("refused") => format!("REFUSED ({})", v["listen"]["error"].as_str().unwrap_or("")),
        _ => "none".into(),
    };
    let counts = |k: &str| {
        let m = v[k].as_object().map(|o| o.iter().map(|(r, n)| format!("{r}={n}")).collect::<Vec<_>>().join(",")).unwrap_or_default();
        if m.is_empty() { "-".to_string() } else { m }
    };
    format!(
        "    mesh: listen {listen}; {} links; frames in/out {}/{}; bytes in/out {}/{}; busy {}; closed {}; refused connects {}, inbound {}\n",
        v["links"].as_array().map_or(0, Vec::len),
        v["frames_in"],
        v["frames_out"],
        v["bytes_in"],
        v["bytes_out"],
        v["busy_sends"],
        counts("closed"),
        counts("refused_connects"),
        counts("refused_inbound"),
    )
}

/// Why `name` lists no commands: not loaded, not running (with its last
/// exit), or running without having registered any.
fn no_commands(socket: &Path, name: &str) -> String {
    let status = control::request(socket, &ControlRequest::Status).map(|r| r.data).unwrap_or_default();
    let row = status["modules"].as_array().and_then(|a| a.iter().find(|m| m["name"] == name).cloned());
    match row {
        None => format!("module {name:?} is not loaded"),
        Some(m) if m["state"] != "running" || m["handshaken"] != true => {
            let exit = m["last_exit"].as_str().map(|e| format!("; last exit: {e}")).unwrap_or_default();
            format!("module {name} is not running (state {}{exit})", m["state"].as_str().unwrap_or("?"))
        }
        Some(_) => format!("module {name} registered no CLI commands"),
    }
}
