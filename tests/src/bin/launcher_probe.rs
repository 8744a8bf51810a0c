//! A compromised daemon, live: forks hostd's real launcher exactly as
//! `hostd run` does (same rules, same capability drop), drops to the
//! service user with no capability as the daemon does, then asks the
//! launcher for what a daemon taken over by a module would want: sandboxes
//! with protections removed, and ownership of files outside a module's
//! `files/`. Each request is preceded by its honest twin (the control, which
//! must succeed). One line per request on stdout:
//! `<row>\t<ok|refused: reason>`; the test (`tests/tests/launcher.rs`) holds
//! the expectations and checks the files afterwards.
//!
//! Usage (as root): hostd-launcher-probe <scratch dir> <static binary to run>

use hostd::config::IdRange;
use hostd::daemon::launcher::{fork_launcher, Launcher, LauncherRules};
use hostd::daemon::privileges::{drop_to, RunAs, DAEMON_CAPS};
use sandbox::policy::{BindMount, DataMount};
use sandbox::Policy;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

const IDS: IdRange = IdRange { first: 620_000, count: 10_000 };
const MODULE_UID: u32 = 620_001;

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("launcher-probe: {what}: {e}");
    std::process::exit(2);
}

fn honest_policy(data: &Path) -> Policy {
    let mut p = Policy { name: "m".into(), ..Policy::default() };
    p.identity.host_uid = MODULE_UID;
    p.identity.host_gid = MODULE_UID;
    p.rootfs.data = Some(DataMount { source: data.join("modules/m/files"), target: "/data".into(), allow_exec: false, read_only: false });
    p
}

fn dev_null() -> OwnedFd {
    std::fs::OpenOptions::new().write(true).open("/dev/null").map(OwnedFd::from).unwrap_or_else(|e| fail("/dev/null", e))
}

/// Ask for a sandbox running `binary noop`; "ok" once it has run and exited 0.
async fn spawn(launcher: &Launcher, policy: &Policy, binary: &Path) -> String {
    let exec = std::fs::File::open(binary).map(OwnedFd::from).unwrap_or_else(|e| fail("open binary", e));
    let (ipc, _ours) = std::os::unix::net::UnixStream::pair().unwrap_or_else(|e| fail("socketpair", e));
    let argv = vec!["probe".to_string(), "noop".to_string()];
    match launcher.spawn(policy, argv, exec, ipc.into(), dev_null(), dev_null()).await {
        Ok(s) => match s.exited.await {
            Ok(sandbox::Outcome::Exited { code: 0 }) => "ok".into(),
            Ok(outcome) => format!("ran but ended {outcome:?}"),
            Err(_) => "ran; exit never reported".into(),
        },
        Err(e) => format!("refused: {e}"),
    }
}

fn give(launcher: &Launcher, path: &Path, uid: u32) -> String {
    let f = std::fs::File::open(path).unwrap_or_else(|e| fail(&format!("open {}", path.display()), e));
    match launcher.give_blocking(&f, uid) {
        Ok(()) => "ok".into(),
        Err(e) => format!("refused: {e}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(scratch), Some(binary)) = (args.get(1).map(PathBuf::from), args.get(2).map(PathBuf::from)) else {
        fail("usage", "hostd-launcher-probe <scratch dir> <static binary>");
    };
    let run_as = RunAs::lookup("hostd").unwrap_or_else(|e| fail("user hostd", e));
    // As hostd's layout leaves things: files/ is the daemon's to write in.
    let data = scratch.join("data");
    let files = data.join("modules/m/files");
    std::fs::create_dir_all(&files).unwrap_or_else(|e| fail("mkdir", e));
    std::os::unix::fs::chown(&files, Some(run_as.uid), Some(run_as.gid)).unwrap_or_else(|e| fail("chown files/", e));
    std::os::unix::fs::chown(data.join("modules/m"), Some(run_as.uid), Some(run_as.gid)).unwrap_or_else(|e| fail("chown modules/m", e));
    std::fs::write(data.join("module-ids.toml"), "m = 620001\n").unwrap_or_else(|e| fail("ids", e));
    std::os::unix::fs::chown(data.join("module-ids.toml"), Some(run_as.uid), Some(run_as.gid)).unwrap_or_else(|e| fail("chown ids", e));
    std::fs::write(scratch.join("host-file"), "root's\n").unwrap_or_else(|e| fail("host file", e));
    for f in ["given", "linked"] {
        std::fs::write(files.join(f), "x").unwrap_or_else(|e| fail("file", e));
        std::os::unix::fs::chown(files.join(f), Some(run_as.uid), Some(run_as.gid)).unwrap_or_else(|e| fail("chown", e));
    }
    std::fs::hard_link(files.join("linked"), files.join("linked-too")).unwrap_or_else(|e| fail("hard link", e));

    // Still single-threaded: fork the launcher as `hostd run` does, then
    // become the daemon (the service user, no capability).
    let rules = LauncherRules::new(&data, IDS, Vec::new());
    let launcher = fork_launcher(Some(&run_as), 0, rules).unwrap_or_else(|e| fail("fork the launcher", e));
    drop_to(&run_as, &DAEMON_CAPS).unwrap_or_else(|e| fail("drop to the daemon's privileges", e));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| fail("runtime", e));
    launcher.start_reader();

    type Tamper = fn(&mut Policy);
    let policies: [(&str, Tamper); 9] = [
        ("spawn: the honest policy (control)", |_| {}),
        ("spawn: host uid 0", |p| p.identity.host_uid = 0),
        ("spawn: no user namespace", |p| p.namespaces.user = false),
        ("spawn: no network namespace", |p| p.namespaces.net = false),
        ("spawn: a bind of /", |p| p.rootfs.ro_binds.push(BindMount { source: "/".into(), target: "/host".into() })),
        ("spawn: another module's files/ as /data", |p| p.name = "other".into()),
        ("spawn: no seccomp", |p| p.seccomp = None),
        ("spawn: no Landlock", |p| p.landlock = None),
        ("spawn: capabilities kept", |p| p.capabilities.drop_all = false),
    ];
    for (row, tamper) in policies {
        let mut p = honest_policy(&data);
        tamper(&mut p);
        println!("{row}\t{}", rt.block_on(spawn(&launcher, &p, &binary)));
    }
    let gives: [(&str, PathBuf, u32); 7] = [
        ("give: a file hostd wrote in files/ (control)", files.join("given"), MODULE_UID),
        ("give: a root-owned host file", scratch.join("host-file"), MODULE_UID),
        ("give: hostd's module-ids.toml", data.join("module-ids.toml"), MODULE_UID),
        ("give: a module's directory above files/", data.join("modules/m"), MODULE_UID),
        ("give: a file with a second hard link", files.join("linked"), MODULE_UID),
        ("give: files/ to uid 0", files.clone(), 0),
        ("give: files/ to hostd's own uid", files.clone(), run_as.uid),
    ];
    for (row, path, uid) in gives {
        println!("{row}\t{}", give(&launcher, &path, uid));
    }
}
