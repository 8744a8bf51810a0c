//! hostd: the module host daemon and its CLI. One file per command family:
//! `trust.rs` (keygen, sign, verify), `policy.rs` (policy show), `control.rs`
//! (commands against a running hostd), `gen_docs.rs`; `hostd sandbox …` is
//! the `hostd-sandbox` crate's code; `hostd run` is `hostd::daemon::run`.

mod control;
mod gen_docs;
mod policy;
mod trust;

use hostd::config;

use clap::{CommandFactory, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "hostd", version, about = "Hardened host for untrusted Bitcoin-node modules")]
struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. "info" or "sandbox=debug".
    #[arg(long, global = true, default_value = "warn", env = "HOSTD_LOG")]
    log: String,
    /// Host config; built-in strict defaults when the default path is absent.
    #[arg(long, global = true, env = "HOSTD_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run any binary under a sandbox policy, like bwrap or nsjail.
    #[command(subcommand)]
    Sandbox(hostd_sandbox::SandboxCommand),
    /// Audit what a module may do.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Create a maintainer signing key (secp256k1); prints the public key.
    Keygen {
        /// Where to write the secret key (created with mode 0600; never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Fill in [binary] and add your signature to <module-dir>/module.toml.
    Sign {
        dir: PathBuf,
        #[arg(long)]
        key: PathBuf,
        /// Maintainer name recorded next to the signature (default: key file name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Check a module directory's binary hash and signatures against the host's trust anchors.
    Verify { dir: PathBuf },
    /// Run the daemon: every enabled module, sandboxed, plus the control socket.
    Run,
    #[command(flatten)]
    Daemon(control::DaemonCommand),
    /// Write the man page and shell completions generated from this CLI
    /// (used when building packages).
    #[command(hide = true)]
    GenDocs {
        /// Directory to write hostd.1 and completions/{hostd.bash,_hostd,hostd.fish} into.
        out: PathBuf,
        /// Write the reference pages (capabilities.md, events.md) instead.
        #[arg(long)]
        reference: bool,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Print the exact policy a module will run under.
    Show {
        /// Installed module name (in the config's modules dir).
        module: Option<String>,
        /// A module directory that need not be installed.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Stable JSON (schema docs/policy-show.schema.json).
        #[arg(long)]
        json: bool,
    },
}

fn load_config(explicit: Option<&Path>) -> Result<config::HostConfig, String> {
    match explicit {
        Some(p) => config::HostConfig::load(p).map_err(|e| e.to_string()),
        None => {
            let p = trust::default_config_path();
            if p.exists() {
                config::HostConfig::load(&p).map_err(|e| e.to_string())
            } else {
                tracing::info!(path = %p.display(), "no host config; using built-in defaults");
                Ok(config::HostConfig::default())
            }
        }
    }
}

fn with_config(explicit: Option<&Path>, f: impl FnOnce(config::HostConfig) -> ExitCode) -> ExitCode {
    match load_config(explicit) {
        Ok(c) => f(c),
        Err(e) => {
            eprintln!("hostd: {e}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let config = cli.config.as_deref();
    match cli.command {
        Command::Sandbox(cmd) => hostd_sandbox::run(cmd),
        Command::Policy(PolicyCommand::Show { module, dir, json }) => {
            with_config(config, |c| policy::show(&c, module.as_deref(), dir.as_deref(), json))
        }
        Command::Keygen { out } => trust::keygen(&out),
        Command::Sign { dir, key, name } => trust::sign(&dir, &key, name),
        Command::Verify { dir } => with_config(config, |c| trust::verify(&dir, &c)),
        Command::Run => with_config(config, |c| match hostd::daemon::run::run(c) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hostd: {e}");
                ExitCode::from(1)
            }
        }),
        Command::GenDocs { out, reference } => match gen_docs::write(Cli::command(), &out, reference) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hostd gen-docs: {}: {e}", out.display());
                ExitCode::FAILURE
            }
        },
        Command::Daemon(cmd) => with_config(config, |c| control::run(cmd, &c.control_socket())),
    }
}
