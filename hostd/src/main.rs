//! hostd: the module host daemon and its CLI.

mod daemon_cmd;
mod sandbox_cmd;
mod trust_cmd;

use hostd::{config, policy_show};

use clap::{Parser, Subcommand};
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
    Sandbox(sandbox_cmd::SandboxCommand),
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
    Daemon(daemon_cmd::DaemonCommand),
    /// Write the man page and shell completions generated from this CLI
    /// (used when building packages).
    #[command(hide = true)]
    GenDocs {
        /// Directory to write hostd.1 and completions/{hostd.bash,_hostd,hostd.fish} into.
        out: PathBuf,
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
            let p = trust_cmd::default_config_path();
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

fn policy_show(c: &config::HostConfig, module: Option<&str>, dir: Option<&Path>, json: bool) -> ExitCode {
    let kernel = sandbox::KernelFeatures::probe();
    let report = policy_show::load(c, module, dir).and_then(|(m, installed)| policy_show::build(&m, c, &kernel, installed));
    match report {
        Ok(r) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                print!("{}", policy_show::render(&r));
            }
            // Auditing succeeded; the exit code still says whether it would start.
            if r.verification.ok && r.refused.is_none() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            }
        }
        Err(e) => {
            eprintln!("hostd: {e}");
            ExitCode::from(1)
        }
    }
}

/// The man page and completions come from the same clap definition the
/// binary parses with, so they cannot drift from it.
fn gen_docs(out: &Path) -> std::io::Result<()> {
    use clap::CommandFactory;
    use clap_complete::Shell;
    let cmd = Cli::command();
    std::fs::create_dir_all(out.join("completions"))?;
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    std::fs::write(out.join("hostd.1"), page)?;
    for (shell, file) in [(Shell::Bash, "hostd.bash"), (Shell::Zsh, "_hostd"), (Shell::Fish, "hostd.fish")] {
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "hostd", &mut text);
        std::fs::write(out.join("completions").join(file), text)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let config = cli.config.as_deref();
    match cli.command {
        Command::Sandbox(cmd) => sandbox_cmd::run(cmd),
        Command::Policy(PolicyCommand::Show { module, dir, json }) => {
            with_config(config, |c| policy_show(&c, module.as_deref(), dir.as_deref(), json))
        }
        Command::Keygen { out } => trust_cmd::keygen(&out),
        Command::Sign { dir, key, name } => trust_cmd::sign(&dir, &key, name),
        Command::Verify { dir } => with_config(config, |c| trust_cmd::verify(&dir, &c)),
        Command::Run => with_config(config, |c| match hostd::daemon::run::run(c) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hostd: {e}");
                ExitCode::from(1)
            }
        }),
        Command::GenDocs { out } => match gen_docs(&out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hostd gen-docs: {}: {e}", out.display());
                ExitCode::FAILURE
            }
        },
        Command::Daemon(cmd) => with_config(config, |c| daemon_cmd::run(cmd, &c.control_socket())),
    }
}
