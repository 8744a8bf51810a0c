//! JSON-RPC 1.0/2.0 calls to a Bitcoin Core-compatible node, with typed
//! errors, cookie or user/password auth and retries for reads.
//!
//! Credentials never leave this file: errors name the config key that
//! holds them, never their value, and module-facing errors (see
//! `requests.rs`) never carry the URL either.

use super::http::{Endpoint, HttpError, Pool};
use crate::config::NodeSettings;
use base64::Engine;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Core's "Invalid address or key": unknown block, transaction or outpoint.
const RPC_INVALID_ADDRESS_OR_KEY: i64 = -5;

#[derive(Debug, Clone, thiserror::Error)]
pub enum RpcError {
    #[error("node unreachable: {0}")]
    Unreachable(String),
    #[error("no answer from the node within {0} ms")]
    Timeout(u64),
    #[error("the node refused hostd's credentials (HTTP {status}); check {key}")]
    AuthRefused { key: &'static str, status: u16 },
    #[error("node.cookie_file: cannot read {path}: {message}")]
    Cookie { path: PathBuf, message: String },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("node error {code}: {message}")]
    Rpc { code: i64, message: String },
    #[error("unexpected answer from the node: {0}")]
    BadReply(String),
}

impl RpcError {
    /// Worth another try for a read: the node may be back in a moment.
    fn transient(&self) -> bool {
        matches!(self, RpcError::Unreachable(_) | RpcError::Timeout(_))
    }

    /// Its class: the counter it goes to in `hostd status`, and the detail
    /// of a NodeUnreachable event (never an address).
    pub fn class(&self) -> &'static str {
        match self {
            RpcError::Unreachable(_) => "unreachable",
            RpcError::Timeout(_) => "timeout",
            RpcError::AuthRefused { .. } | RpcError::Cookie { .. } => "auth",
            RpcError::NotFound(_) => "not_found",
            RpcError::Rpc { .. } => "rpc_error",
            RpcError::BadReply(_) => "bad_reply",
        }
    }
}

enum Auth {
    Fixed(String),
    /// The cookie's `Authorization` value, and the file's identity when read.
    Cookie { path: PathBuf, cached: Mutex<Option<(CookieStamp, String)>> },
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct CookieStamp {
    modified: Option<SystemTime>,
    len: u64,
    ino: u64,
}

fn basic(user_pass: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_pass))
}

impl Auth {
    /// The header value; a cookie file is read again whenever its
    /// identity (inode, size, mtime) changed — the node rewrites it at
    /// every start.
    fn header(&self) -> Result<String, RpcError> {
        match self {
            Auth::Fixed(h) => Ok(h.clone()),
            Auth::Cookie { path, cached } => {
                use std::os::unix::fs::MetadataExt;
                let fail = |e: std::io::Error| RpcError::Cookie { path: path.clone(), message: cookie_hint(&e) };
                let meta = std::fs::metadata(path).map_err(fail)?;
                let stamp = CookieStamp { modified: meta.modified().ok(), len: meta.len(), ino: meta.ino() };
                let mut cached = super::super::lock(cached);
                if let Some((s, h)) = cached.as_ref() {
                    if *s == stamp {
                        return Ok(h.clone());
                    }
                }
                if meta.len() > 1024 {
                    return Err(RpcError::Cookie { path: path.clone(), message: format!("{} bytes is not a cookie", meta.len()) });
                }
                let text = std::fs::read_to_string(path).map_err(fail)?;
                let line = text.trim();
                if !line.contains(':') {
                    return Err(RpcError::Cookie { path: path.clone(), message: "not of the form user:password".into() });
                }
                let h = basic(line);
                *cached = Some((stamp, h.clone()));
                Ok(h)
            }
        }
    }

    fn key(&self) -> &'static str {
        match self {
            Auth::Fixed(_) => "node.rpc_user and node.rpc_password",
            Auth::Cookie { .. } => "node.cookie_file (the node may have restarted with a new cookie)",
        }
    }
}

fn cookie_hint(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => format!("{e}: hostd reads it as its own unprivileged user; make the file readable to that user (Core: -rpccookieperms=group, hostd in the node's group)"),
        std::io::ErrorKind::NotFound => format!("{e}: is the node running, and is this its datadir?"),
        _ => e.to_string(),
    }
}

/// A refused socket family or address is the service manager's doing,
/// not the node's: say which settings to change.
fn connect_hint(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EAFNOSUPPORT) | Some(libc::EPERM) | Some(libc::EACCES) => format!(
            "{e}: hostd may not open TCP sockets here; under the packaged systemd unit add a drop-in with PrivateNetwork=no, \
             RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 and IPAddressAllow=<the node's address> (README, \"Node backend\")"
        ),
        _ => e.to_string(),
    }
}

/// Calls, by outcome, for `hostd status`.
#[derive(Default)]
pub struct RpcCounters {
    pub calls: AtomicU64,
    pub unreachable: AtomicU64,
    pub timeout: AtomicU64,
    pub auth: AtomicU64,
    pub not_found: AtomicU64,
    pub rpc_error: AtomicU64,
    pub bad_reply: AtomicU64,
}

impl RpcCounters {
    fn count(&self, e: &RpcError) {
        let c = match e {
            RpcError::Unreachable(_) => &self.unreachable,
            RpcError::Timeout(_) => &self.timeout,
            RpcError::AuthRefused { .. } | RpcError::Cookie { .. } => &self.auth,
            RpcError::NotFound(_) => &self.not_found,
            RpcError::Rpc { .. } => &self.rpc_error,
            RpcError::BadReply(_) => &self.bad_reply,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn json(&self) -> Value {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json!({
            "calls": g(&self.calls),
            "errors": {
                "unreachable": g(&self.unreachable),
                "timeout": g(&self.timeout),
                "auth": g(&self.auth),
                "not_found": g(&self.not_found),
                "rpc_error": g(&self.rpc_error),
                "bad_reply": g(&self.bad_reply),
            }
        })
    }
}

pub struct RpcClient {
    pool: Pool,
    auth: Auth,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
    next_id: AtomicU64,
    pub counters: RpcCounters,
}

impl RpcClient {
    /// `settings` were checked when the config was parsed.
    pub fn new(settings: &NodeSettings) -> Result<RpcClient, String> {
        let endpoint = Endpoint::parse(&settings.rpc_url)?;
        let auth = match (&settings.cookie_file, &settings.rpc_user, &settings.rpc_password) {
            (Some(path), _, _) => Auth::Cookie { path: path.clone(), cached: Mutex::new(None) },
            (None, Some(u), Some(p)) => Auth::Fixed(basic(&format!("{u}:{}", p.expose()))),
            _ => return Err("no credentials configured".into()),
        };
        Ok(RpcClient {
            pool: Pool::new(endpoint, settings.max_connections as usize, settings.max_response_bytes as usize),
            auth,
            timeout: Duration::from_millis(settings.request_timeout_ms as u64),
            retries: settings.read_retries,
            backoff: Duration::from_millis(settings.retry_backoff_ms as u64),
            next_id: AtomicU64::new(1),
            counters: RpcCounters::default(),
        })
    }

    /// A read: retried on transient failures with doubling backoff.
    pub async fn read(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let mut wait = self.backoff;
        let mut attempt = 0;
        loop {
            match self.call(method, params.clone()).await {
                Err(e) if e.transient() && attempt < self.retries => {
                    attempt += 1;
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                other => return other,
            }
        }
    }

    /// One attempt; used as is for sends (a transaction or block is never
    /// sent twice by hostd).
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        self.counters.calls.fetch_add(1, Ordering::Relaxed);
        let result = self.call_once(method, params).await;
        if let Err(e) = &result {
            self.counters.count(e);
        }
        result
    }

    async fn call_once(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let auth = self.auth.header()?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "1.0", "id": id, "method": method, "params": params}).to_string();
        let reply = self.pool.post(&auth, body.as_bytes(), self.timeout).await.map_err(|e| match e {
            HttpError::Timeout(ms) => RpcError::Timeout(ms),
            HttpError::Connect(e) => RpcError::Unreachable(connect_hint(&e)),
            HttpError::Io(e) => RpcError::Unreachable(e.to_string()),
            HttpError::Malformed(m) => RpcError::Unreachable(m),
            e @ HttpError::TooLarge(_) => RpcError::BadReply(e.to_string()),
        })?;
        if reply.status == 401 || reply.status == 403 {
            self.pool.reset().await;
            return Err(RpcError::AuthRefused { key: self.auth.key(), status: reply.status });
        }
        // Core answers RPC errors with HTTP 404/500 and a JSON body; other
        // nodes with 200. The body decides.
        let v: Value = serde_json::from_slice(&reply.body)
            .map_err(|e| RpcError::BadReply(format!("HTTP {} with a body that is not JSON ({e})", reply.status)))?;
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            let code = err["code"].as_i64().unwrap_or(0);
            let message = err["message"].as_str().unwrap_or("").chars().take(500).collect::<String>();
            // blvm-node answers an unknown mempool entry with -32602 "… not
            // found in mempool" where Core says -5.
            if code == RPC_INVALID_ADDRESS_OR_KEY || (code == -32602 && message.contains("not found")) {
                return Err(RpcError::NotFound(message));
            }
            return Err(RpcError::Rpc { code, message });
        }
        match v.get("result") {
            Some(r) => Ok(r.clone()),
            None => Err(RpcError::BadReply(format!("HTTP {} without result or error", reply.status))),
        }
    }
}
