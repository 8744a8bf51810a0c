//! Run a binary under a policy file; print the kernel probe or the default
//! policy. The commands of both `hostd-sandbox` (this crate's binary, which
//! links nothing else) and `hostd sandbox` (the same code inside hostd).
//!
//! The process is its own launcher: it stays single-threaded (no runtime),
//! so it can clone sandboxes directly.

use clap::Subcommand;
use serde::Serialize;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use sandbox::{CgroupRoot, Command, KernelFeatures, Outcome, Policy, SandboxError, Usage};

/// The name this process was started as (`hostd` or `hostd-sandbox`), for messages.
fn program_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|a| std::path::Path::new(&a).file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "hostd-sandbox".into())
}

/// Logs to stderr: warnings and errors, or what `HOSTD_LOG` selects
/// (tracing's EnvFilter syntax, e.g. "info" or "sandbox=debug"). Without
/// HOSTD_LOG no filter is compiled: this runs at every launch.
pub fn init_logging() {
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr);
    match std::env::var("HOSTD_LOG") {
        Ok(filter) => builder.with_env_filter(tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| "warn".into())).init(),
        Err(_) => builder.with_max_level(tracing::Level::WARN).init(),
    }
}

#[derive(Subcommand)]
pub enum SandboxCommand {
    /// Run BINARY confined by the policy; exit with its status (128+signal if killed).
    Run(RunArgs),
    /// Print what this kernel can enforce (cgroup mode, Landlock ABI, seccomp, user namespaces).
    Features,
    /// Print the strict default policy as TOML (a starting point for policy files).
    DefaultPolicy,
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// Policy file (TOML, or JSON). Without it the strict default policy applies.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Write the typed outcome (exit, signal, seccomp violation, OOM) and usage here as JSON.
    #[arg(long)]
    outcome_json: Option<PathBuf>,
    /// Give the sandbox one end of a socketpair as fd 3 and count what it writes there.
    #[arg(long)]
    ipc: bool,
    /// Kill the sandbox after this many milliseconds.
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Launch as hostd's launcher does: as this user, keeping only
    /// CAP_SETUID and CAP_SETGID (start as root).
    #[arg(long)]
    user: Option<String>,
    /// Launch into a standby made for the policy first, the way hostd's
    /// launcher relaunches a module (namespaces, ids and cgroup made ahead).
    #[arg(long)]
    standby: bool,
    /// The binary (opened once; that fd is what gets exec'd) and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// `features`: the kernel probe, then where we run.
#[derive(Serialize)]
struct FeaturesReport {
    #[serde(flatten)]
    kernel: KernelFeatures,
    environment: sandbox::environment::Environment,
}

#[derive(Serialize)]
struct Report {
    #[serde(flatten)]
    outcome: Outcome,
    launch_us: u128,
    total_us: u128,
    ipc_bytes: usize,
    usage: Usage,
    downgrades: Vec<sandbox::Downgrade>,
}

pub fn run(cmd: SandboxCommand) -> ExitCode {
    match cmd {
        SandboxCommand::Features => {
            // What a launch would meet here: the namespaces are really made.
            let kernel = KernelFeatures::probe_thoroughly();
            let environment = sandbox::environment::Environment::probe(&kernel);
            print_json(&FeaturesReport { kernel, environment });
            ExitCode::SUCCESS
        }
        SandboxCommand::DefaultPolicy => match toml::to_string_pretty(&Policy::default()) {
            Ok(s) => {
                print!("{s}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&format!("cannot render the default policy: {e}")),
        },
        SandboxCommand::Run(args) => {
            match run_sandboxed(args) {
                Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
                Err(e) => fail(&explain(e)),
            }
        }
    }
}

/// A sandbox step refused with a bare errno (a container runtime's seccomp
/// profile answers EPERM to sethostname, a masked /proc makes the proc
/// mount fail): say why, from a real attempt at the namespaces.
fn explain(e: RunError) -> String {
    let text = e.to_string();
    if !matches!(e, RunError::Sandbox(SandboxError::ChildSetup { .. })) {
        return text;
    }
    match sandbox::environment::probe_namespaces() {
        Err(refusal @ (sandbox::environment::NamespaceRefusal::Clone(_) | sandbox::environment::NamespaceRefusal::Inside(..))) => {
            format!("{text}; the sandbox's namespaces are refused here: {refusal}")
        }
        _ => text,
    }
}

fn print_json<T: Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("{}: cannot render JSON: {e}", program_name()),
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("{}: {msg}", program_name());
    // 125 like bwrap/podman: the launcher failed, not the sandboxed program.
    ExitCode::from(125)
}

#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("{path}: {source}")]
    ReadPolicy { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("{what}: {source}")]
    Io { what: &'static str, source: std::io::Error },
    #[error(transparent)]
    Privileges(#[from] sandbox::privdrop::PrivError),
    #[error("--standby: the launch did not use the standby made for it")]
    StandbyUnused,
}

fn run_sandboxed(args: RunArgs) -> Result<i32, RunError> {
    let RunArgs { policy: policy_path, outcome_json, ipc, timeout_ms, user, standby, command } = args;
    let start = Instant::now();
    let policy = match &policy_path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| RunError::ReadPolicy { path: path.clone(), source })?;
            Policy::from_text(&text, &path.display().to_string())?
        }
        None => Policy::default(),
    };
    sandbox::clear_supplementary_groups()?;
    let kernel = KernelFeatures::probe();
    let prepared = sandbox::prepare(&policy, &kernel)?;
    let mut cgroups = if policy.cgroup.enabled && !matches!(kernel.cgroup, sandbox::CgroupMode::Unavailable { .. }) {
        Some(CgroupRoot::new(kernel.cgroup.clone())?)
    } else {
        None
    };
    let (binary, args) = command.split_first().ok_or(SandboxError::PolicyInvalid {
        origin: "command line".into(),
        field: "command".into(),
        message: "no binary given".into(),
    })?;
    let mut cmd = Command::from_path(std::path::Path::new(binary), args)?;
    let host_end = if ipc {
        let (host, module) = UnixStream::pair().map_err(|source| RunError::Io { what: "socketpair", source })?;
        cmd.ipc = Some(OwnedFd::from(module));
        Some(host)
    } else {
        None
    };
    // Opened while still root: after --user the report's directory may not be writable.
    let outcome_file = match &outcome_json {
        Some(path) => Some(std::fs::File::create(path).map_err(|source| RunError::Io { what: "create outcome json", source })?),
        None => None,
    };
    if let Some(name) = &user {
        let run_as = sandbox::privdrop::RunAs::lookup(name)?;
        sandbox::privdrop::become_launcher(&run_as, cgroups.as_mut())?;
    }
    let sigfd = termination_signalfd()?;
    let mut child = if standby {
        let standbys = sandbox::Standbys::new(1);
        standbys.prepare(&prepared, cgroups.as_ref())?;
        let child = standbys.spawn(&prepared, cgroups.as_ref(), cmd)?;
        if standbys.used() != 1 {
            return Err(RunError::StandbyUnused);
        }
        child
    } else {
        sandbox::spawn(&prepared, cgroups.as_ref(), cmd)?
    };
    let launch_us = start.elapsed().as_micros();
    let outcome = wait_child(&mut child, timeout_ms, &sigfd)?;
    // Reading usage costs a few cgroup file reads; only do it for a report.
    let usage = if outcome_json.is_some() { child.usage() } else { Usage::default() };
    let ipc_bytes = host_end.map(|s| drain(&s)).unwrap_or(0);
    let report = Report { outcome, launch_us, total_us: start.elapsed().as_micros(), ipc_bytes, usage, downgrades: prepared.downgrades.clone() };
    drop(child);
    if let Some(mut file) = outcome_file {
        let text = serde_json::to_string(&report).map_err(|e| RunError::Io { what: "render outcome", source: e.into() })?;
        std::io::Write::write_all(&mut file, text.as_bytes()).map_err(|source| RunError::Io { what: "write outcome json", source })?;
    }
    Ok(outcome.exit_status())
}

/// Block SIGTERM/SIGINT/SIGHUP and receive them on a signalfd, so the wait
/// loop (single-threaded, no handlers) can tear the sandbox down cleanly.
fn termination_signalfd() -> Result<OwnedFd, RunError> {
    // SAFETY: building a sigset and creating a signalfd from it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
        if fd < 0 {
            return Err(RunError::Io { what: "signalfd", source: std::io::Error::last_os_error() });
        }
        Ok(std::os::fd::FromRawFd::from_raw_fd(fd))
    }
}

/// Wait on the pidfd and the signalfd: a timeout or a termination signal
/// kills the sandbox (and its cgroup) before we exit.
fn wait_child(child: &mut sandbox::Child, timeout_ms: Option<u64>, sigfd: &OwnedFd) -> Result<Outcome, SandboxError> {
    let deadline = timeout_ms.map(|ms| Instant::now() + std::time::Duration::from_millis(ms));
    loop {
        let wait_ms = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    child.kill();
                    return child.wait();
                }
                left.as_millis().min(i32::MAX as u128) as i32
            }
            None => -1,
        };
        let mut pfds = [
            libc::pollfd { fd: child.pidfd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: sigfd.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: two pollfds on fds we own.
        unsafe { libc::poll(pfds.as_mut_ptr(), 2, wait_ms) };
        if pfds[1].revents & libc::POLLIN != 0 {
            tracing::info!("termination signal: killing the sandbox");
            child.kill();
            return child.wait();
        }
        if let Some(o) = child.try_wait()? {
            return Ok(o);
        }
    }
}

fn drain(sock: &UnixStream) -> usize {
    let _ = sock.set_nonblocking(true);
    let mut total = 0;
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: reading into a stack buffer from our own socket.
        let n = unsafe { libc::read(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return total;
        }
        total += n as usize;
    }
}
