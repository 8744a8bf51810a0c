//! Standbys (sandboxes made ahead of time) and cgroup removal after the
//! fact: a relaunched policy gets a standby, only a launch of the very same
//! policy takes it, each sandbox still gets a fresh cgroup, a standby holds
//! nothing of its launcher and dies with it, and nothing is left afterwards.

use std::path::PathBuf;

use hostd_tests::{bin_dir, eventually, pid_alive, require_privileged};
use sandbox::{CgroupRoot, Command, KernelFeatures, Outcome, Policy, Standbys};

struct Launched {
    pid: i32,
    cgroup: Vec<PathBuf>,
}

fn launch(prepared: &sandbox::Prepared, root: &CgroupRoot, standbys: &Standbys, arg: &str) -> Launched {
    let mut cmd = Command::from_path(&bin_dir().join("hostd-payload"), &[arg.to_string()]).expect("payload");
    let (host, module) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    cmd.ipc = Some(module.into());
    let mut child = standbys.spawn(prepared, Some(root), cmd).expect("spawn");
    let launched = Launched { pid: child.pid(), cgroup: child.cgroup().expect("a cgroup").describe() };
    assert_eq!(child.wait().expect("wait"), Outcome::Exited { code: 0 });
    drop(child);
    let mut byte = [0u8; 1];
    assert_eq!(std::io::Read::read(&mut &host, &mut byte).expect("read fd 3"), 1, "the payload wrote to fd 3");
    launched
}

fn alive(pid: i32) -> bool {
    pid_alive(pid as u64)
}

/// spawn needs a single-threaded caller (like hostd's launcher); the test
/// harness has threads, so `checks` runs in a forked child.
fn in_fork(checks: fn()) {
    // SAFETY: the child runs only `checks` and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        let ok = std::panic::catch_unwind(checks).is_ok();
        // SAFETY: leave the forked child without running the harness's exit path.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waiting for the child we forked.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "the checks failed in the child (see its panic above)");
}

#[test]
fn relaunches_go_into_standbys_made_for_the_same_policy() {
    if !require_privileged("standbys") {
        return;
    }
    in_fork(standby_checks);
}

fn standby_checks() {
    let kernel = KernelFeatures::probe();
    let policy = Policy { name: "standby".into(), ..Policy::default() };
    let prepared = sandbox::prepare(&policy, &kernel).expect("prepare");
    let root = CgroupRoot::new(kernel.cgroup.clone()).expect("cgroup root");
    sandbox::clear_supplementary_groups().expect("setgroups");
    let standbys = Standbys::new(2);

    let first = launch(&prepared, &root, &standbys, "first");
    assert!(!standbys.wanted(), "a first launch asks for no standby");
    // Torn down but not yet removed: removal is off the launch path.
    assert!(first.cgroup.iter().all(|d| d.exists()), "{:?}", first.cgroup);
    let second = launch(&prepared, &root, &standbys, "second");
    assert!(first.cgroup.iter().all(|d| !d.exists()), "the next launch removed the first sandbox's cgroup");
    assert_eq!(standbys.used(), 0);
    assert!(standbys.wanted(), "a relaunch asks for a standby");
    standbys.replenish(Some(&root));
    let [standby_pid] = standbys.pids()[..] else { panic!("one standby expected: {:?}", standbys.pids()) };

    // Made ahead: ids mapped, in its own cgroup, holding only stdio and its
    // control socket.
    let uid_map = std::fs::read_to_string(format!("/proc/{standby_pid}/uid_map")).expect("uid_map");
    let host_uid = policy.identity.host_uid.to_string();
    assert_eq!(uid_map.split_whitespace().nth(1), Some(host_uid.as_str()), "{uid_map}");
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{standby_pid}/fd"))
        .expect("fd dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(fds.len(), 4, "a standby holds stdio and its control socket only: {fds:?}");
    let netns = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/net")).expect("netns");
    assert_ne!(netns(standby_pid), netns(std::process::id() as i32), "its own network namespace");

    // Another policy does not take it.
    let other = Policy { name: "standby-other".into(), ..Policy::default() };
    let other_prepared = sandbox::prepare(&other, &kernel).expect("prepare");
    let elsewhere = launch(&other_prepared, &root, &standbys, "other");
    assert_ne!(elsewhere.pid, standby_pid);
    assert_eq!(standbys.used(), 0, "a standby serves only the policy it was made for");

    // The same policy does, with a cgroup nobody used before.
    let third = launch(&prepared, &root, &standbys, "third");
    assert_eq!(third.pid, standby_pid, "the relaunch went into the standby");
    assert_eq!(standbys.used(), 1);
    for earlier in [&first.cgroup, &second.cgroup, &elsewhere.cgroup] {
        assert_ne!(&third.cgroup, earlier, "each sandbox gets a fresh cgroup");
    }
    assert!(!alive(standby_pid));

    // A standby made and never used is killed, and its cgroup removed, with
    // the standbys.
    standbys.replenish(Some(&root));
    let [unused] = standbys.pids()[..] else { panic!("one standby expected") };
    assert!(alive(unused));
    drop(standbys);
    assert!(!alive(unused), "dropping the standbys kills them");
    root.remove_emptied();
    let parent = third.cgroup[0].parent().expect("parent").to_path_buf();
    // Leaves are named hostd-<sandbox>-<launcher pid>-<n>.
    let mine = format!("-{}-", std::process::id());
    let ours = std::fs::read_dir(&parent)
        .map(|e| {
            e.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("hostd-standby") && n.contains(&mine))
                .count()
        })
        .unwrap_or(usize::MAX);
    assert_eq!(ours, 0, "no sandbox or standby cgroup is left in {}", parent.display());
}

#[test]
fn a_standby_dies_with_its_launcher() {
    if !require_privileged("standbys") {
        return;
    }
    let (mut report_r, report_w) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    // SAFETY: the child makes a standby, reports its pid and then blocks
    // until it is SIGKILLed; it never returns into the harness.
    let launcher = unsafe { libc::fork() };
    assert!(launcher >= 0, "fork");
    if launcher == 0 {
        drop(report_r);
        let kernel = KernelFeatures::probe();
        let policy = Policy { name: "standby-orphan".into(), ..Policy::default() };
        let prepared = sandbox::prepare(&policy, &kernel).expect("prepare");
        let root = CgroupRoot::new(kernel.cgroup.clone()).expect("cgroup root");
        sandbox::clear_supplementary_groups().expect("setgroups");
        let standbys = Standbys::new(1);
        standbys.prepare(&prepared, Some(&root)).expect("standby");
        let pid = standbys.pids().first().copied().unwrap_or(0);
        let _ = std::io::Write::write_all(&mut &report_w, &pid.to_ne_bytes());
        loop {
            // SAFETY: waiting for the SIGKILL the test sends.
            unsafe { libc::pause() };
        }
    }
    drop(report_w);
    let mut buf = [0u8; 4];
    std::io::Read::read_exact(&mut report_r, &mut buf).expect("the launcher reports its standby");
    let standby = i32::from_ne_bytes(buf);
    assert!(standby > 0 && alive(standby));
    // SAFETY: SIGKILL to the launcher we forked, then reap it.
    unsafe {
        libc::kill(launcher, libc::SIGKILL);
        libc::waitpid(launcher, std::ptr::null_mut(), 0);
    }
    let gone = eventually(|| (!alive(standby)).then_some(()));
    assert!(gone.is_some(), "standby {standby} survived its launcher's SIGKILL");
    // A new root sweeps the dead launcher's cgroups away.
    let root = CgroupRoot::new(KernelFeatures::probe().cgroup).expect("cgroup root");
    drop(root);
}
