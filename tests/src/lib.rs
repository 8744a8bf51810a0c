//! Shared helpers for the cross-crate tests: locating binaries, the
//! privileged-test gate, scratch directories, and running the probe.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sandbox::Policy;

pub mod daemon_env;
pub mod fuzz;
pub mod meshnet;
pub mod netbed;
pub mod rawecho;
pub mod regtest;

/// A finished command's stdout then stderr, for assertion messages.
pub fn output_text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The host uid/gid the test sandboxes map to.
pub const SANDBOX_UID: u32 = 62000;

/// Privileged tests run only as root. Under CI=true or
/// HOSTD_REQUIRE_PRIVILEGED=1 a missing privilege or kernel feature is a
/// failure, never a skip.
pub fn require_privileged(what: &str) -> bool {
    let strict = strict();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let kernel = sandbox::KernelFeatures::probe();
    let missing = if !root {
        Some("not running as root".to_string())
    } else if !kernel.user_namespaces {
        Some("user namespaces disabled".into())
    } else if kernel.landlock_abi < 6 {
        Some(format!("Landlock ABI {} < 6", kernel.landlock_abi))
    } else {
        None
    };
    match missing {
        None => true,
        Some(why) if strict => panic!("{what}: {why}, and CI/HOSTD_REQUIRE_PRIVILEGED forbids skipping"),
        Some(why) => {
            eprintln!("SKIP {what}: {why}");
            false
        }
    }
}

/// [`require_privileged`], plus the `hostd` user that `hostd run` drops to
/// (scripts/test.sh creates it; the packages do in production).
pub fn require_daemon(what: &str) -> bool {
    if !require_privileged(what) {
        return false;
    }
    match hostd::daemon::privileges::RunAs::lookup("hostd") {
        Ok(_) => true,
        Err(e) if strict() => panic!("{what}: {e}, and CI/HOSTD_REQUIRE_PRIVILEGED forbids skipping"),
        Err(e) => {
            eprintln!("SKIP {what}: {e}");
            false
        }
    }
}

pub(crate) fn strict() -> bool {
    std::env::var("CI").map(|v| v == "true").unwrap_or(false)
        || std::env::var("HOSTD_REQUIRE_PRIVILEGED").map(|v| v == "1").unwrap_or(false)
}

/// Where the workspace binaries are: `HOSTD_BIN_DIR`, or the profile
/// directory of the running executable (a test in `…/debug/deps/<test>`,
/// a bench binary in `…/release/<bin>`).
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("HOSTD_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        dir
    }
}

fn workspace_bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(p.exists(), "{} missing: build it first (cargo build --workspace --bins)", p.display());
    p
}

pub fn probe_bin() -> PathBuf {
    workspace_bin("hostd-probe")
}

pub fn hostd_bin() -> PathBuf {
    workspace_bin("hostd")
}

/// The operator's run-under-policy command, `hostd-sandbox` (the same code
/// as `hostd sandbox`, without the daemon's storage engine).
pub fn sandbox_bin() -> PathBuf {
    workspace_bin("hostd-sandbox")
}

/// The default (strict) policy for a sandbox named `name` running as host
/// uid/gid `uid`, with `data` mounted at /data.
pub fn policy_with_data(name: &str, uid: u32, data: &Path) -> Policy {
    let mut p = Policy { name: name.into(), ..Policy::default() };
    p.identity.host_uid = uid;
    p.identity.host_gid = uid;
    p.rootfs.data = Some(sandbox::policy::DataMount { source: data.into(), target: "/data".into(), allow_exec: false, read_only: false });
    p
}

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!("hostd-test-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        Scratch(p)
    }

    /// A subdirectory owned by the sandbox uid (a module's data dir).
    pub fn owned_dir(&self, name: &str) -> PathBuf {
        let d = self.0.join(name);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        std::os::unix::fs::chown(&d, Some(SANDBOX_UID), Some(SANDBOX_UID)).unwrap_or_else(|e| panic!("chown: {e}"));
        d
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What one probe run showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Ok,
    Errno(String),
    Denied,
    Signal(i32),
    SeccompKill,
    OomKilled,
    LaunchFailed(String),
    Other(String),
}

#[derive(Debug, Clone)]
pub struct Run {
    pub seen: Seen,
    pub line: String,
    pub outcome: serde_json::Value,
    pub stderr: String,
}

/// The probe's `RESULT …` line, or "" when it printed none (killed first).
fn result_line(stdout: &str) -> String {
    stdout.lines().find(|l| l.starts_with("RESULT")).unwrap_or("").to_string()
}

fn classify(line: &str) -> Seen {
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next(), parts.next()) {
        (Some("RESULT"), Some("ok"), _) => Seen::Ok,
        (Some("RESULT"), Some("denied"), _) => Seen::Denied,
        (Some("RESULT"), Some("errno"), Some(e)) => Seen::Errno(e.to_string()),
        (Some("RESULT"), Some("signal"), Some(s)) => Seen::Signal(s.parse().unwrap_or(0)),
        _ => Seen::Other(line.to_string()),
    }
}

/// Run the probe under `policy` through `hostd-sandbox run`, with a host
/// secret in the launcher's environment and a leaked non-CLOEXEC fd, so the
/// env and fd cases test what really reaches the sandbox.
pub fn run_sandboxed(policy: &Policy, args: &[String]) -> Run {
    run_sandboxed_with(policy, args, &["--timeout-ms", "30000"])
}

/// `run_sandboxed` with extra `hostd-sandbox run` options.
pub fn run_sandboxed_with(policy: &Policy, args: &[String], options: &[&str]) -> Run {
    run_sandboxed_by(&[sandbox_bin().as_os_str(), "run".as_ref()], policy, args, options)
}

/// `run_sandboxed_with` through another command line that takes `run`'s
/// options, e.g. `hostd sandbox run`.
pub fn run_sandboxed_by(command: &[&std::ffi::OsStr], policy: &Policy, args: &[String], options: &[&str]) -> Run {
    let dir = Scratch::new("run");
    let policy_path = dir.0.join("policy.json");
    let outcome_path = dir.0.join("outcome.json");
    std::fs::write(&policy_path, serde_json::to_string(policy).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = Command::new(command[0]);
    cmd.args(&command[1..]).arg("--ipc").args(options).arg("--policy")
        .arg(&policy_path)
        .arg("--outcome-json")
        .arg(&outcome_path)
        .arg("--")
        .arg(probe_bin())
        .args(args)
        .env("HOSTD_TEST_SECRET", "host-secret")
        .stdin(Stdio::null());
    // SAFETY: dup2 in the pre-exec child is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::dup2(2, 7);
            Ok(())
        });
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("spawn hostd: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let line = result_line(&stdout);
    let outcome: serde_json::Value = std::fs::read_to_string(&outcome_path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null);
    let seen = match outcome.get("outcome").and_then(|o| o.as_str()) {
        None => Seen::LaunchFailed(stderr.clone()),
        Some("seccomp_violation") => Seen::SeccompKill,
        Some("oom_killed") => Seen::OomKilled,
        Some("exited") => classify(&line),
        Some(other) => Seen::Other(format!("{other}: {outcome}")),
    };
    Run { seen, line, outcome, stderr }
}

/// Run the probe as a plain child of the (root) test process.
pub fn run_unconfined(args: &[String]) -> Run {
    let mut cmd = Command::new(probe_bin());
    cmd.args(args).env("HOSTD_TEST_SECRET", "host-secret").stdin(Stdio::null());
    // SAFETY: setgroups in the pre-exec child is async-signal-safe; it gives
    // the control a supplementary group like a login shell of root has.
    unsafe {
        cmd.pre_exec(|| {
            let g: libc::gid_t = 0;
            libc::setgroups(1, &g);
            Ok(())
        });
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("spawn probe: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let line = result_line(&stdout);
    use std::os::unix::process::ExitStatusExt;
    let seen = match out.status.signal() {
        Some(libc::SIGSYS) => Seen::SeccompKill,
        Some(s) => Seen::Signal(s),
        None => classify(&line),
    };
    Run { seen, line, outcome: serde_json::Value::Null, stderr: String::from_utf8_lossy(&out.stderr).to_string() }
}

/// Validate `value` against the JSON-schema subset our documented schemas
/// use: type (one or a list), enum, required, properties, items. Returns
/// every violation with its JSON path.
pub fn schema_violations(schema: &serde_json::Value, value: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    check_schema(schema, value, "$", &mut out);
    out
}

fn check_schema(schema: &serde_json::Value, value: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    use serde_json::Value;
    let type_ok = |t: &str| match t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => false,
    };
    match schema.get("type") {
        Some(Value::String(t)) if !type_ok(t) => return out.push(format!("{path}: expected {t}, got {value}")),
        Some(Value::Array(ts)) if !ts.iter().filter_map(Value::as_str).any(type_ok) => {
            return out.push(format!("{path}: expected one of {ts:?}, got {value}"))
        }
        _ => {}
    }
    if let Some(Value::Array(allowed)) = schema.get("enum") {
        if !allowed.contains(value) {
            out.push(format!("{path}: {value} not in {allowed:?}"));
        }
    }
    if let (Some(Value::Array(req)), Some(obj)) = (schema.get("required"), value.as_object()) {
        for k in req.iter().filter_map(Value::as_str) {
            if !obj.contains_key(k) {
                out.push(format!("{path}: missing required key {k:?}"));
            }
        }
    }
    if let (Some(Value::Object(props)), Some(obj)) = (schema.get("properties"), value.as_object()) {
        for (k, sub) in props {
            if let Some(v) = obj.get(k) {
                check_schema(sub, v, &format!("{path}.{k}"), out);
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            check_schema(items, v, &format!("{path}[{i}]"), out);
        }
    }
}

/// The first number of field `key` ("VmRSS:", "Threads:") in
/// /proc/<pid>/status; 0 once the process is gone.
pub fn status_number(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix(key)?.split_whitespace().next()?.parse().ok()))
        .unwrap_or(0)
}

/// Resident memory of `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    status_number(pid, "VmRSS:")
}

/// State letter and parent pid of `pid` from /proc/<pid>/stat; `None` once
/// it is gone.
pub fn proc_state(pid: u64) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: parse after the last ')'.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Running: neither gone nor a zombie waiting to be reaped.
pub fn pid_alive(pid: u64) -> bool {
    proc_state(pid).is_some_and(|(state, _)| state != 'Z')
}

/// Poll `check` every 10 ms for up to 3 s; its first `Some`.
pub fn eventually<T>(mut check: impl FnMut() -> Option<T>) -> Option<T> {
    for _ in 0..300 {
        if let Some(v) = check() {
            return Some(v);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    None
}
