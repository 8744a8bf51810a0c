//! What modules register with hostd — RPC endpoints, module API methods,
//! CLI specs — and what other modules find there: discovery, module info,
//! and inter-module calls to registered API methods.

use super::err;
use crate::daemon::{Host, LoadedModule};
use crate::manifest::check_name;
use hostd_protocol::{CliSpec, ErrorBody, ErrorCode, Invocation, ModuleInfo, Response};
use std::time::Duration;

fn bad_name(what: &str, name: &str, why: String) -> ErrorBody {
    err(ErrorCode::InvalidArgument, format!("{what} {name:?}: {why}"))
}

fn over(what: &str, max: u32) -> ErrorBody {
    err(ErrorCode::QuotaExceeded, format!("at most {max} {what} per module ([daemon] in hostd.toml)"))
}

/// A description, about or help text within `[daemon] max_description_bytes`.
fn check_text(host: &Host, what: &str, text: &str) -> Result<(), ErrorBody> {
    let max = host.config.daemon.max_description_bytes;
    if text.len() > max as usize {
        return Err(err(ErrorCode::QuotaExceeded, format!("{what} is {} bytes; at most {max}", text.len())));
    }
    Ok(())
}

pub fn cli_spec(host: &Host, module: &str, spec: CliSpec) -> Result<Response, ErrorBody> {
    if spec.commands.len() > host.config.daemon.max_cli_commands as usize {
        return Err(over("CLI commands", host.config.daemon.max_cli_commands));
    }
    check_text(host, "the CLI's about text", &spec.about)?;
    for c in &spec.commands {
        check_name(&c.name).map_err(|m| bad_name("CLI command", &c.name, m))?;
        check_text(host, "a CLI command's about text", &c.about)?;
        if c.args.len() > host.config.daemon.max_cli_commands as usize {
            return Err(over("arguments of a CLI command", host.config.daemon.max_cli_commands));
        }
        for a in &c.args {
            check_name(&a.name).map_err(|m| bad_name("CLI argument", &a.name, m))?;
            check_text(host, "a CLI argument's help", &a.help)?;
        }
    }
    host.with_module(module, |s| s.cli = Some(spec));
    Ok(Response::Ack)
}

/// One owner per method: hostd routes a call by its name alone.
pub fn register_rpc(host: &Host, module: &str, method: String, description: String) -> Result<Response, ErrorBody> {
    check_name(&method).map_err(|m| bad_name("RPC method", &method, m))?;
    check_text(host, "the RPC description", &description)?;
    let max = host.config.daemon.max_rpc_endpoints;
    let mut slots = host.loaded();
    if let Some(owner) = slots.values().find(|s| s.name() != module && s.rpc.contains_key(&method)) {
        return Err(err(ErrorCode::AlreadyExists, format!("RPC method {method} is registered by module {}", owner.name())));
    }
    if let Some(s) = slots.get_mut(module) {
        if !s.rpc.contains_key(&method) && s.rpc.len() >= max as usize {
            return Err(over("RPC endpoints", max));
        }
        s.rpc.insert(method, description);
    }
    Ok(Response::Ack)
}

pub fn unregister_rpc(host: &Host, module: &str, method: &str) -> Result<Response, ErrorBody> {
    host.with_module(module, |s| s.rpc.remove(method));
    Ok(Response::Ack)
}

pub fn register_api(host: &Host, module: &str, methods: Vec<String>) -> Result<Response, ErrorBody> {
    let max = host.config.daemon.max_api_methods as usize;
    if methods.len() > max {
        return Err(over("API methods", max as u32));
    }
    for m in &methods {
        check_name(m).map_err(|e| bad_name("API method", m, e))?;
    }
    host.with_module(module, |s| {
        // Bounded by `max` on both sides, so this stays cheap under the lock.
        let new: std::collections::BTreeSet<&String> = methods.iter().filter(|m| !s.api.contains(m)).collect();
        if s.api.len() + new.len() > max {
            return Err(over("API methods", max as u32));
        }
        let new: Vec<String> = new.into_iter().cloned().collect();
        s.api.extend(new);
        Ok(Response::Ack)
    })
    .unwrap_or(Ok(Response::Ack))
}

pub fn unregister_api(host: &Host, module: &str) -> Result<Response, ErrorBody> {
    host.with_module(module, |s| s.api.clear());
    Ok(Response::Ack)
}

pub fn module_info(s: &LoadedModule) -> ModuleInfo {
    ModuleInfo {
        name: s.name().to_string(),
        version: s.module.manifest.version.to_string(),
        state: serde_json::to_value(s.state).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
        permissions: s.permissions.iter().map(|p| p.as_str().to_string()).collect(),
        api: s.api.clone(),
    }
}

pub fn discover(host: &Host) -> Result<Response, ErrorBody> {
    Ok(Response::Modules(host.loaded().values().map(module_info).collect()))
}

pub fn info(host: &Host, name: &str) -> Result<Response, ErrorBody> {
    host.with_module(name, |s| module_info(s)).map(Response::Module).ok_or_else(|| err(ErrorCode::NotFound, format!("no module {name:?} is loaded")))
}

/// Call `target`'s registered API `method` on behalf of `caller`.
pub async fn call(host: &Host, caller: &str, target: &str, method: String, params: Vec<u8>) -> Result<Response, ErrorBody> {
    let (conn, has) = host
        .with_module(target, |s| (s.conn.clone(), s.api.contains(&method)))
        .ok_or_else(|| err(ErrorCode::NotFound, format!("no module {target:?} is loaded")))?;
    let conn = conn.ok_or_else(|| err(ErrorCode::ModuleUnavailable, format!("module {target} is not running")))?;
    if !has {
        return Err(err(ErrorCode::NotFound, format!("module {target} has not registered API method {method:?}")));
    }
    let timeout = Duration::from_millis(u64::from(host.config.daemon.call_timeout_ms));
    conn.invoke(Invocation::Api { caller: caller.into(), method, params }, timeout).await.map(Response::CallResult)
}
