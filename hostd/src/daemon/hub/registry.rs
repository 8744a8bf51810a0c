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

pub fn cli_spec(host: &Host, module: &str, spec: CliSpec) -> Result<Response, ErrorBody> {
    for c in &spec.commands {
        check_name(&c.name).map_err(|m| bad_name("CLI command", &c.name, m))?;
    }
    host.with_module(module, |s| s.cli = Some(spec));
    Ok(Response::Ack)
}

/// One owner per method: hostd routes a call by its name alone.
pub fn register_rpc(host: &Host, module: &str, method: String, description: String) -> Result<Response, ErrorBody> {
    check_name(&method).map_err(|m| bad_name("RPC method", &method, m))?;
    let mut slots = host.loaded();
    if let Some(owner) = slots.values().find(|s| s.name() != module && s.rpc.contains_key(&method)) {
        return Err(err(ErrorCode::AlreadyExists, format!("RPC method {method} is registered by module {}", owner.name())));
    }
    if let Some(s) = slots.get_mut(module) {
        s.rpc.insert(method, description);
    }
    Ok(Response::Ack)
}

pub fn unregister_rpc(host: &Host, module: &str, method: &str) -> Result<Response, ErrorBody> {
    host.with_module(module, |s| s.rpc.remove(method));
    Ok(Response::Ack)
}

pub fn register_api(host: &Host, module: &str, methods: Vec<String>) -> Result<Response, ErrorBody> {
    for m in &methods {
        check_name(m).map_err(|e| bad_name("API method", m, e))?;
    }
    host.with_module(module, |s| {
        for m in methods {
            if !s.api.contains(&m) {
                s.api.push(m);
            }
        }
    });
    Ok(Response::Ack)
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
