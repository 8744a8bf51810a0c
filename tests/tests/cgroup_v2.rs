//! cgroup v2 enforcement. Our machines are hybrid (v1 controllers), so the
//! host-side test boots a qemu VM with a pure cgroup v2 hierarchy
//! (scripts/vm/run-cgroup-v2.sh) and runs `inside_vm_cgroup_v2` there; a
//! failure inside fails the host-side test.

use std::process::Command;

use hostd_tests::{policy_with_data, require_privileged, run_sandboxed, Scratch, Seen, SANDBOX_UID};
use sandbox::policy::{CpuMax, Feature};
use sandbox::{CgroupMode, KernelFeatures};

fn in_vm() -> bool {
    std::env::var("HOSTD_IN_VM").map(|v| v == "1").unwrap_or(false)
}

#[test]
fn cgroup_v2_enforcement_in_vm() {
    if in_vm() || !require_privileged("cgroup v2 VM stage") {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/vm/run-cgroup-v2.sh");
    let me = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let out = Command::new("bash")
        .arg(script)
        .arg(&me)
        .args(["--exact", "inside_vm_cgroup_v2", "--nocapture", "--test-threads=1"])
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    let console = String::from_utf8_lossy(&out.stdout);
    eprintln!("{console}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "VM stage failed ({:?}); console above", out.status.code());
    assert!(console.contains("test inside_vm_cgroup_v2 ... ok"), "the in-VM test did not run to success");
}

/// Runs only inside the VM (HOSTD_IN_VM=1, set by the VM's init); on the
/// host it returns at once and `cgroup_v2_enforcement_in_vm` drives it.
#[test]
fn inside_vm_cgroup_v2() {
    if !in_vm() {
        return;
    }
    let kernel = KernelFeatures::probe();
    let CgroupMode::Unified { mount, own, controllers } = &kernel.cgroup else {
        panic!("expected a pure cgroup v2 host in the VM, found {:?}", kernel.cgroup);
    };
    for c in ["memory", "cpu", "pids"] {
        assert!(controllers.iter().any(|x| x == c), "controller {c} missing: {controllers:?}");
    }
    let scratch = Scratch::new("v2");
    let data = scratch.owned_dir("data");
    let mut policy = policy_with_data("v2", SANDBOX_UID, &data);
    policy.cgroup.memory_max = Some(64 << 20);
    policy.cgroup.pids_max = Some(16);
    policy.cgroup.cpu_max = Some(CpuMax { quota_us: 10_000, period_us: 100_000 });
    // Debian's 6.1 kernel has Landlock ABI 2: an explicit, reported
    // downgrade. (The container stage boots 6.12, ABI 6: none needed.)
    policy.allow_downgrade = vec![Feature::Landlock, Feature::LandlockScope];

    let run = run_sandboxed(&policy, &["cgroup_path".to_string()]);
    assert_eq!(run.line.trim(), "RESULT ok 0::/", "the sandbox must be born in its cgroup (CLONE_INTO_CGROUP + cgroup ns): {run:?}");
    let downgrades = run.outcome["downgrades"].as_array().map(|a| a.len()).unwrap_or(0);
    if kernel.landlock_abi < sandbox::policy::LANDLOCK_ABI_SCOPE {
        assert!(downgrades >= 1, "the Landlock downgrade must be reported: {}", run.outcome);
    } else {
        assert_eq!(downgrades, 0, "nothing to downgrade on Landlock ABI {}: {}", kernel.landlock_abi, run.outcome);
    }

    // A standby is born in its own cgroup the same way, limits and all.
    let standby = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        hostd_tests::run_sandboxed_with(&policy, &args, &["--standby"])
    };
    let run = standby(&["cgroup_path"]);
    assert_eq!(run.line.trim(), "RESULT ok 0::/", "standby: {run:?}");

    for run in [run_sandboxed(&policy, &["memory_bomb".to_string(), "256".to_string()]), standby(&["memory_bomb", "256"])] {
        assert_eq!(run.seen, Seen::OomKilled, "memory.max: {run:?}");
        assert!(run.outcome["usage"]["oom_kills"].as_u64().unwrap_or(0) >= 1, "{}", run.outcome);
    }

    let run = run_sandboxed(&policy, &["fork_bomb".to_string(), "64".to_string()]);
    assert_eq!(run.seen, Seen::Errno("EAGAIN".into()), "pids.max: {run:?}");

    let run = run_sandboxed(&policy, &["cpu_spin".to_string(), "600".to_string()]);
    let throttled = run.outcome["usage"]["cpu_nr_throttled"].as_u64().unwrap_or(0);
    assert!(throttled > 0, "cpu.max: nr_throttled stayed 0: {}", run.outcome);

    // Teardown: a sandbox with sleeping children killed on timeout leaves
    // no process and no cgroup (rmdir succeeds only on an empty cgroup).
    let mut sleepers = policy.clone();
    sleepers.cgroup.pids_max = Some(32);
    let run = hostd_tests::run_sandboxed_with(&sleepers, &["sleepers".to_string(), "8".to_string()], &["--timeout-ms", "1500"]);
    assert_eq!(run.outcome["outcome"].as_str(), Some("killed_by_host"), "{run:?}");
    // Sandboxes are created in our own cgroup as probed before any launch.
    let base = mount.join(own.strip_prefix("/").unwrap_or(own));
    let leftovers: Vec<String> = std::fs::read_dir(&base)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with("hostd-")).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "cgroups left behind in {}: {leftovers:?}", base.display());
}
