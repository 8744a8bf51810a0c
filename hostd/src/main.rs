//! hostd: the module host daemon and its CLI.

mod sandbox_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "hostd", version, about = "Hardened host for untrusted Bitcoin-node modules")]
struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. "info" or "sandbox=debug".
    #[arg(long, global = true, default_value = "warn", env = "HOSTD_LOG")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run any binary under a sandbox policy, like bwrap or nsjail.
    #[command(subcommand)]
    Sandbox(sandbox_cmd::SandboxCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Sandbox(cmd) => sandbox_cmd::run(cmd),
    }
}
