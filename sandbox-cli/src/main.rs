//! `hostd-sandbox`: run a binary under a sandbox policy, print the kernel
//! probe or the default policy. The same commands as `hostd sandbox …`,
//! in a binary that links no storage engine, so a launch pays only for
//! the launch.

use clap::Parser;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "hostd-sandbox", version, about = "Run a binary confined by a hostd sandbox policy")]
struct Cli {
    #[command(subcommand)]
    command: hostd_sandbox::SandboxCommand,
}

fn main() -> ExitCode {
    hostd_sandbox::init_logging();
    hostd_sandbox::run(Cli::parse().command)
}
