//! Inside a container. The container stage of the test command
//! (scripts/test-container.sh) boots the cgroup v2 VM, starts Podman
//! containers there and runs these tests in them, with HOSTD_IN_CONTAINER
//! set to what the container should look like:
//! * `v2_private_cgroupns` / `v2_host_cgroupns`: a privileged container
//!   (or one with the minimum privileges the docs name) — the layout is
//!   reported as such, and a daemon starts a signed module in a sandbox
//!   with its limits;
//! * `unprivileged`: Podman's defaults — hostd must refuse with reasons that
//!   name what to change, never run a sandbox weaker than asked.
//!
//! Anywhere else (HOSTD_IN_CONTAINER unset) they return at once: the stage
//! is what drives them, and it fails the test command if they fail.

use std::process::Command;
use std::time::Duration;

use hostd_tests::daemon_env::{running, HostdEnv};
use sandbox::Feature;

use hostd_tests::{hostd_bin, output_text, policy_with_data, require_daemon, run_sandboxed, Scratch, Seen, SANDBOX_UID};

/// The layout the stage expects here, or None outside the stage.
fn expected() -> Option<String> {
    std::env::var("HOSTD_IN_CONTAINER").ok().filter(|v| !v.is_empty())
}

fn features() -> serde_json::Value {
    let out = Command::new(hostd_bin()).args(["sandbox", "features"]).output().unwrap_or_else(|e| panic!("hostd sandbox features: {e}"));
    assert!(out.status.success(), "hostd sandbox features: {}", output_text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("features JSON: {e}: {}", output_text(&out)))
}

#[test]
fn inside_container_the_layout_is_reported() {
    let Some(expect) = expected() else { return };
    let f = features();
    let env = &f["environment"];
    eprintln!("{env:#}");
    assert_eq!(env["container"], "podman", "Podman's /run/.containerenv must be recognised: {env:#}");
    if expect == "unprivileged" {
        // Podman's defaults mount /sys/fs/cgroup read-only and its seccomp
        // profile refuses nested namespaces: both are named, with the fix.
        assert_eq!(env["cgroup_layout"], "unavailable", "{env:#}");
        let problems = env["problems"].to_string();
        assert!(problems.contains("read-only") && problems.contains("--privileged"), "{problems}");
        assert!(env["namespaces"].as_str().is_some_and(|n| n.starts_with("refused")), "{env:#}");
        assert_eq!(f["user_namespaces"], false, "{f:#}");
        return;
    }
    assert_eq!(env["cgroup_layout"], expect.as_str(), "{env:#}");
    let ns = if expect == "v2_private_cgroupns" { "private" } else { "host" };
    assert_eq!(env["cgroup_namespace"], ns, "{env:#}");
    assert_eq!(env["namespaces"], "ok", "{env:#}");
    assert_eq!(env["problems"], serde_json::json!([]), "{env:#}");
    for c in ["memory", "cpu", "pids"] {
        assert!(env["controllers_available"].as_array().is_some_and(|a| a.iter().any(|x| x == c)), "{c}: {env:#}");
    }
}

/// Under Podman's defaults a launch that asks for limits is refused with
/// the reason and the fix; it is never run weaker than asked. Allowed to
/// run without cgroup limits, it is refused at the namespaces instead,
/// again naming the cause and the fix.
#[test]
fn inside_unprivileged_container_a_launch_is_refused_by_name() {
    if expected().as_deref() != Some("unprivileged") {
        return;
    }
    let scratch = Scratch::new("unpriv");
    let data = scratch.owned_dir("data");
    let mut policy = policy_with_data("unpriv", SANDBOX_UID, &data);
    let run = run_sandboxed(&policy, &["cgroup_path".to_string()]);
    let Seen::LaunchFailed(err) = &run.seen else { panic!("the launch must be refused: {run:?}") };
    assert!(err.contains("`cgroup`") && err.contains("read-only") && err.contains("--privileged"), "names the feature and the fix: {err}");
    assert!(err.contains("allow_downgrade"), "and the documented way out: {err}");

    policy.allow_downgrade.push(Feature::Cgroup);
    let run = run_sandboxed(&policy, &["cgroup_path".to_string()]);
    let Seen::LaunchFailed(err) = &run.seen else { panic!("the namespaces must be refused: {run:?}") };
    assert!(err.contains("namespaces are refused here") && err.contains("--privileged"), "names the cause and the fix: {err}");
}

/// A signed module started by a real daemon in the container: handshaken,
/// in a cgroup with its limits, shown by `hostd status`, which also shows
/// the layout the daemon found.
#[test]
fn inside_container_a_daemon_runs_a_signed_module() {
    let Some(expect) = expected().filter(|e| e != "unprivileged") else { return };
    if !require_daemon("daemon in a container") {
        return;
    }
    let mut env = HostdEnv::new("container", "");
    env.install_testmod("t-box", &["read_storage", "write_storage"], "");
    env.start();
    let t = Duration::from_secs(60);
    let m = env.wait_module("t-box", "running and handshaken", t, |m| running(m) && m["handshaken"] == true);
    assert!(m["resources"]["memory_bytes"].as_u64().is_some_and(|b| b > 0), "cgroup usage is read: {m:#}");
    assert!(m["resources"]["pids"].as_u64().is_some_and(|p| p >= 1), "{m:#}");
    let out = env.ctl_ok(&["module", "t-box", "put", "k", "v"]);
    assert!(out.contains("stored"), "a storage write through hostd: {out}");
    let status = env.status();
    let found = &status["hostd"]["environment"];
    assert_eq!(found["cgroup_layout"], expect.as_str(), "{found:#}");
    assert_eq!(found["container"], "podman", "{found:#}");
    assert_eq!(found["problems"], serde_json::json!([]), "{found:#}");
    let text = hostd_tests::output_text(&env.ctl(&["status"]));
    assert!(text.contains("t-box") && text.contains(&format!("host: container podman, cgroups {expect}")), "{text}");
    env.stop();
}
