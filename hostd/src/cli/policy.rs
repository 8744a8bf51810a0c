//! `hostd policy show`: print the exact policy a module will run under.
//! Exit 0 when it would start, 3 when it would be refused (the audit itself
//! succeeded), 1 when it could not be audited.

use hostd::config::HostConfig;
use hostd::policy_show;
use std::path::Path;
use std::process::ExitCode;

pub fn show(c: &HostConfig, module: Option<&str>, dir: Option<&Path>, json: bool) -> ExitCode {
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
