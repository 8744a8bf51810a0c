//! Sandbox cgroups made ahead of time and removed after the fact: the next
//! launch takes a ready cgroup, a torn-down sandbox's cgroup is gone once its
//! root removes the emptied ones, and nothing is left when the root goes.

use hostd_tests::{bin_dir, require_privileged};
use sandbox::{CgroupRoot, Command, KernelFeatures, Outcome, Policy};

fn run_once(prepared: &sandbox::Prepared, root: &CgroupRoot) -> Vec<std::path::PathBuf> {
    let cmd = Command::from_path(&bin_dir().join("hostd-payload"), &[]).expect("payload");
    let mut cmd = cmd;
    let (_host, module) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    cmd.ipc = Some(module.into());
    let mut child = sandbox::spawn(prepared, Some(root), cmd).expect("spawn");
    let dirs = child.cgroup().expect("a cgroup").describe();
    assert!(matches!(child.wait(), Ok(Outcome::Exited { code: 0 })));
    drop(child);
    dirs
}

#[test]
fn spare_cgroups_are_used_and_emptied_ones_removed() {
    if !require_privileged("sandbox cgroups") {
        return;
    }
    // spawn needs a single-threaded caller (like hostd's launcher); the test
    // harness has threads, so the checks run in a forked child.
    // SAFETY: the child runs only this test's code and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        let ok = std::panic::catch_unwind(pool_checks).is_ok();
        // SAFETY: leave the forked child without running the harness's exit path.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waiting for the child we forked.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "the checks failed in the child (see its panic above)");
}

fn pool_checks() {
    let kernel = KernelFeatures::probe();
    let policy = Policy { name: "pool".into(), ..Policy::default() };
    let prepared = sandbox::prepare(&policy, &kernel).expect("prepare");
    let root = CgroupRoot::new(kernel.cgroup.clone()).expect("cgroup root").with_spares();
    sandbox::clear_supplementary_groups().expect("setgroups");

    let first = run_once(&prepared, &root);
    // Torn down but not yet removed: removal is off the launch path.
    assert!(first.iter().all(|d| d.exists()), "{first:?}");
    let second = run_once(&prepared, &root);
    assert_ne!(first, second, "each sandbox gets a fresh cgroup");
    // The second launch made its successor's cgroup and removed the first's.
    assert!(first.iter().all(|d| !d.exists()), "the first sandbox's cgroup was removed: {first:?}");
    root.remove_emptied();
    assert!(second.iter().all(|d| !d.exists()), "{second:?}");
    let parent = second[0].parent().expect("parent").to_path_buf();
    let ours = |d: &std::path::Path| {
        std::fs::read_dir(d)
            .map(|e| e.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("hostd-pool-")).count())
            .unwrap_or(0)
    };
    assert_eq!(ours(&parent), 1, "one spare waits for the next launch");
    drop(root);
    assert_eq!(ours(&parent), 0, "dropping the root removes the spare");
}
