//! End to end: `hostd run` with real sandboxed module processes (the
//! hostd-testmod binary plays each role), driven through the CLI: what
//! modules are promised (permissions, lifecycle, events, durability,
//! privileges). Attacks by hostile modules are rows of `hostile.rs`.

use hostd_tests::daemon_env::{last_exit, running, HostdEnv};
use hostd_tests::{eventually, proc_state, require_daemon};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

#[test]
fn denial_keeps_the_connection_impostor_is_refused_cli_dispatch_works() {
    if !require_daemon("hostd run") {
        return;
    }
    let mut env = HostdEnv::new("deny", "");
    env.install_testmod("t-good", &["discover_modules", "read_storage", "write_storage"], "");
    env.install_testmod("t-impostor", &[], "");
    env.start();
    env.wait_module("t-good", "running", T, running);
    let out = env.ctl_ok(&["module", "t-good", "try-utxo"]);
    assert!(out.contains("PermissionDenied") && out.contains("read_utxo"), "{out}");
    assert!(out.contains("after: t-good"), "the connection survived the denial: {out}");
    let spec = env.ctl_ok(&["module", "t-good"]);
    assert!(spec.contains("try-utxo") && spec.contains("flood"), "{spec}");
    let unknown = env.ctl(&["module", "t-good", "nope"]);
    assert_eq!(unknown.status.code(), Some(1));
    // Arguments are checked against the registered spec (put <key> <value>).
    for args in [&["put", "k"][..], &["put", "k", "v", "extra"][..]] {
        let out = env.ctl(&[&["module", "t-good"][..], args].concat());
        let said = hostd_tests::output_text(&out);
        assert!(out.status.code() == Some(1) && said.contains("usage: hostd module t-good put <key> <value>"), "{args:?}: {said}");
    }
    let m = env.wait_module("t-impostor", "refused handshake", T, |m| last_exit(m).contains("belongs to"));
    assert!(last_exit(&m).contains("\"t-good\""), "{m:#}");
    assert!(m["handshaken"] != true);
    // The impostor never became t-good: t-good is untouched.
    assert_eq!(env.module("t-good")["restarts"], 0);
}

/// Every one of the 26 permissions, denied end to end: a module with none
/// sends one request of every kind; each guarded one answers
/// PermissionDenied naming its permission, the free ones do not, and the
/// connection survives all of them. The control: a module holding all 26
/// gets no denial at all.
#[test]
fn every_permission_is_denied_end_to_end_without_it() {
    if !require_daemon("hostd run") {
        return;
    }
    use hostd::permissions::{required_permission, Permission, RequestKind};
    let mut env = HostdEnv::new("denyall", "");
    let all: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
    env.install_testmod("t-bare", &[], "");
    env.install_testmod("t-full", &all, "");
    env.start();
    env.wait_module("t-bare", "running", T, running);
    env.wait_module("t-full", "running", T, running);
    let answers = |module: &str| -> std::collections::BTreeMap<String, String> {
        env.ctl_ok(&["module", module, "try-all"])
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(k, rest)| (k.to_string(), rest.to_string())))
            .collect()
    };
    let bare = answers("t-bare");
    let mut guarded = Vec::new();
    for kind in RequestKind::ALL.iter().filter(|k| !matches!(k, RequestKind::Handshake | RequestKind::Log)) {
        let got = bare.get(kind.as_str()).unwrap_or_else(|| panic!("{kind} was not tried: {bare:?}"));
        match required_permission(*kind) {
            Some(p) => {
                assert!(got.starts_with("Some(PermissionDenied)") && got.contains(p.as_str()), "{kind} without {p}: {got}");
                guarded.push(p);
            }
            None => assert!(!got.contains("PermissionDenied"), "{kind} needs no permission: {got}"),
        }
    }
    guarded.sort();
    guarded.dedup();
    assert_eq!(guarded.len(), 26, "every permission guards a request that was denied");
    assert!(running(&env.module("t-bare")) && env.module("t-bare")["restarts"] == 0, "the connection survived every denial");
    let full = answers("t-full");
    let denied: Vec<&String> = full.iter().filter(|(_, v)| v.contains("PermissionDenied")).map(|(k, _)| k).collect();
    assert!(denied.is_empty(), "control: with every permission nothing is denied: {denied:?}");
}

/// READY=1 comes only once every module is up (running and handshaken) or
/// has definitively failed, with a STATUS line naming the failed; and a
/// module is started only after the modules it requires are up.
#[test]
fn ready_waits_for_modules_and_dependents_wait_for_dependencies() {
    if !require_daemon("hostd run") {
        return;
    }
    let mut env = HostdEnv::new("ready", "");
    env.install_testmod("t-slow", &["register_module_api"], "");
    env.install_testmod("t-dep", &["call_module"], "[dependencies]\nt-slow = \"^1\"\n");
    // Refused at every handshake (it claims another name): never up, then given up on.
    env.install_testmod("t-impostor", &[], "");
    let notify_path = env.scratch.0.join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("bind notify socket");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&notify_path, std::fs::Permissions::from_mode(0o666)).expect("chmod notify socket");
    notify.set_read_timeout(Some(T)).expect("timeout");
    env.env.push(("NOTIFY_SOCKET".into(), notify_path.display().to_string()));
    env.start();
    let mut buf = [0u8; 512];
    let n = notify.recv(&mut buf).expect("hostd sent READY=1");
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    // At the moment of READY: the slow module and its dependent are up,
    // the crash-looping one has been given up on.
    for m in ["t-slow", "t-dep"] {
        let now = env.module(m);
        assert!(running(&now), "{m} was up before READY ({msg}): {now:#}");
    }
    assert_eq!(env.module("t-impostor")["state"], "failed", "{msg}");
    assert!(msg.starts_with("READY=1\n") && msg.contains("3 modules started: 2 up; failed: t-impostor"), "{msg}");
    // t-dep was started only after t-slow's handshake.
    let log = env.log();
    let line_of = |words: &[&str]| log.lines().position(|l| words.iter().all(|w| l.contains(w)));
    let handshake = line_of(&["module handshaken", "t-slow"]);
    let dep_started = line_of(&["supervisor", "started", "t-dep"]);
    assert!(handshake.is_some() && dep_started.is_some() && handshake < dep_started, "t-dep started before its dependency was up:\n{log}");
}

/// Timers, scheduled tasks, metrics and RPC dispatch, end to end through a
/// real sandboxed module.
#[test]
fn timers_tasks_metrics_and_rpc_work_end_to_end() {
    if !require_daemon("hostd run") {
        return;
    }
    let mut env = HostdEnv::new("timers", "");
    env.install_testmod("t-good", &["manage_timers", "report_metrics", "read_metrics", "register_rpc_endpoint"], "");
    env.start();
    env.wait_module("t-good", "running", T, running);
    let ticks = |env: &HostdEnv| -> (u64, String) {
        let out = env.ctl_ok(&["module", "t-good", "fired"]);
        let n = out.split_whitespace().find_map(|w| w.strip_prefix("ticks=")).and_then(|v| v.parse().ok()).unwrap_or(0);
        let tasks = out.split_whitespace().find_map(|w| w.strip_prefix("tasks=")).unwrap_or("").to_string();
        (n, tasks)
    };
    // A repeating timer ticks, and stops when cancelled.
    let id = env.ctl_ok(&["module", "t-good", "timer", "50"]).trim().to_string();
    assert!(id.parse::<u64>().is_ok(), "timer id: {id}");
    std::thread::sleep(Duration::from_millis(600));
    assert!(ticks(&env).0 >= 5, "a 50 ms timer ticked: {:?}", ticks(&env));
    assert_eq!(env.ctl_ok(&["module", "t-good", "cancel", &id]).trim(), "cancelled");
    let stopped = ticks(&env).0;
    std::thread::sleep(Duration::from_millis(300));
    assert!(ticks(&env).0 <= stopped + 1, "no ticks after the cancel");
    // A timer faster than the floor is refused; cancelling twice is NotFound.
    assert!(env.ctl_ok(&["module", "t-good", "timer", "1"]).contains("InvalidArgument"));
    assert!(env.ctl_ok(&["module", "t-good", "cancel", &id]).contains("NotFound"));
    // A scheduled task fires once, with its name.
    env.ctl_ok(&["module", "t-good", "task", "100", "compact"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(ticks(&env).1, "compact", "the task fired exactly once");
    // Metrics: reported, then read back with their labels.
    assert_eq!(env.ctl_ok(&["module", "t-good", "metric", "depth", "2.5"]).trim(), "reported");
    let metrics = env.ctl_ok(&["module", "t-good", "metrics"]);
    assert!(metrics.contains("t-good depth 2.5") && metrics.contains("unit"), "{metrics}");
    // RPC: registered by the module, called through hostd's CLI.
    assert_eq!(env.ctl_ok(&["module", "t-good", "rpc-register", "t_echo"]).trim(), "registered");
    let listed = env.ctl_ok(&["rpc"]);
    assert!(listed.contains("t_echo"), "{listed}");
    assert_eq!(env.ctl_ok(&["rpc", "t_echo", "{\"x\":1}"]).trim(), "rpc t_echo got {\"x\":1}");
}

#[test]
fn crashes_publish_their_reason_and_restart_with_backoff_until_the_crash_loop_limit() {
    if !require_daemon("hostd run") {
        return;
    }
    let mut env = HostdEnv::new("crash", "");
    env.install_testmod("t-good", &["subscribe_events"], "");
    env.install_testmod("t-exit", &[], "");
    env.install_testmod("t-panic", &[], "");
    env.install_testmod("t-sigsys", &[], "");
    env.install_testmod("t-oom", &[], "[resources]\nmemory_max_bytes = 33554432\n");
    env.start();
    env.wait_module("t-good", "running", T, running);
    for (m, why) in [
        ("t-exit", "exited with code 7"),
        ("t-panic", "exited with code 101"),
        ("t-sigsys", "seccomp violation"),
        ("t-oom", "out of memory"),
    ] {
        let row = env.wait_module(m, why, T, |r| last_exit(r).contains(why) && r["restarts"].as_u64().unwrap_or(0) >= 1);
        assert!(row["restarts"].as_u64().unwrap_or(0) >= 1, "{row:#}");
    }
    // Default policy: 5 restarts, then the module is left failed.
    let failed = env.wait_module("t-exit", "failed", Duration::from_secs(60), |r| r["state"] == "failed");
    assert_eq!(failed["restarts"], 5, "{failed:#}");
    // t-good subscribed to ModuleCrashed and received them.
    let good = env.module("t-good");
    assert!(good["events"]["delivered"].as_u64().unwrap_or(0) >= 4, "{good:#}");
    let log = env.log();
    assert!(log.contains("restarting in 100 ms") && log.contains("restarting in 200 ms"), "exponential backoff:\n{log}");
}

/// The seeds' ModuleLoaded and start-up events: a module that subscribes
/// well after start-up still receives NodeStartupCompleted and
/// ConfigLoaded (it was started during start-up), ModuleLoaded for every
/// module already loaded and then for itself; a module that never
/// subscribes is announced all the same; a module loaded later is
/// announced, gets the replay, and is not handed the start-up events.
#[test]
fn module_loaded_and_start_up_events_follow_the_seeds() {
    if !require_daemon("hostd run") {
        return;
    }
    let mut env = HostdEnv::new("announce", "");
    env.install_testmod("t-good", &["subscribe_events"], "");
    env.install_testmod("t-noread", &["subscribe_events"], "");
    env.install_testmod("t-deaf", &["register_module_api"], "");
    env.install_testmod("t-watch", &["subscribe_events"], "");
    env.start();
    env.wait_module("t-watch", "subscribed", T, |m| m["subscriptions"].as_array().is_some_and(|a| a.len() == 4));
    let seen = |env: &HostdEnv| env.ctl_ok(&["module", "t-watch", "seen"]);
    let deadline = std::time::Instant::now() + T;
    let lines = loop {
        let out = seen(&env);
        // t-deaf never subscribes: it is announced announce_after_ms (2 s)
        // after its handshake.
        if out.contains("ModuleLoaded t-deaf") || std::time::Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for want in ["NodeStartupCompleted", "ConfigLoaded", "ModuleLoaded t-good", "ModuleLoaded t-noread", "ModuleLoaded t-watch", "ModuleLoaded t-deaf"] {
        assert!(lines.lines().any(|l| l == want), "t-watch did not see {want:?}:\n{lines}");
    }
    let pos = |want: &str| lines.lines().position(|l| l == want).unwrap_or(usize::MAX);
    assert!(pos("ModuleLoaded t-good") < pos("ModuleLoaded t-watch"), "modules already loaded come before itself:\n{lines}");
    assert_eq!(lines.lines().filter(|l| l.starts_with("ModuleLoaded t-watch")).count(), 1, "announced once:\n{lines}");

    // Loaded after start-up: announced, replayed what is loaded, and not
    // handed the start-up events.
    env.install_testmod("t-watch-hot", &["subscribe_events"], "");
    env.ctl_ok(&["load", "t-watch-hot"]);
    env.wait_module("t-watch-hot", "subscribed", T, |m| m["subscriptions"].as_array().is_some_and(|a| a.len() == 4));
    let deadline = std::time::Instant::now() + T;
    while !seen(&env).contains("ModuleLoaded t-watch-hot") {
        assert!(std::time::Instant::now() < deadline, "t-watch-hot was never announced:\n{}", seen(&env));
        std::thread::sleep(Duration::from_millis(100));
    }
    let hot = env.ctl_ok(&["module", "t-watch-hot", "seen"]);
    assert!(hot.lines().any(|l| l == "ModuleLoaded t-deaf") && hot.lines().any(|l| l == "ModuleLoaded t-watch-hot"), "{hot}");
    assert!(!hot.contains("NodeStartupCompleted") && !hot.contains("ConfigLoaded"), "not a start-up module:\n{hot}");
    env.ctl_ok(&["unload", "t-watch-hot"]);
    let deadline = std::time::Instant::now() + T;
    while !seen(&env).contains("ModuleUnloaded t-watch-hot") {
        assert!(std::time::Instant::now() < deadline, "the unload was never announced:\n{}", seen(&env));
        std::thread::sleep(Duration::from_millis(100));
    }
    let starts = seen(&env).lines().filter(|l| *l == "NodeStartupCompleted").count();
    assert_eq!(starts, 1, "start-up events are handed over once:\n{}", seen(&env));
}

/// kill -9 of hostd while 20 modules run: every module process is gone
/// within 1 s (the launcher follows hostd and kills every sandbox), and a
/// restart brings back every module with every acknowledged write.
#[test]
fn acknowledged_writes_survive_kill_9_of_hostd() {
    if !require_daemon("hostd run") {
        return;
    }
    const MODULES: usize = 20;
    let names: Vec<String> = (0..MODULES).map(|i| format!("t-k{i}")).collect();
    let mut env = HostdEnv::new("durable", "");
    for n in &names {
        env.install_testmod(n, &["read_storage", "write_storage"], "");
    }
    env.start();
    let mut pids = Vec::new();
    for n in &names {
        let m = env.wait_module(n, "running", T, running);
        pids.push(m["pid"].as_u64().expect("module pid"));
        for i in 0..5 {
            let out = env.ctl_ok(&["module", n, "put", &format!("k{i}"), &format!("{n}-value-{i}")]);
            assert!(out.contains("stored"), "{out}");
        }
    }
    // Control: every module process is alive before the kill.
    assert!(pids.iter().all(|p| proc_state(*p).is_some()), "all {MODULES} module processes run");
    let killed = std::time::Instant::now();
    env.kill9();
    while pids.iter().any(|p| hostd_tests::pid_alive(*p)) {
        assert!(killed.elapsed() < Duration::from_secs(1), "module processes outlived hostd by 1 s: {pids:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!("all {MODULES} module processes gone {:?} after kill -9 of hostd", killed.elapsed());
    env.start();
    for n in &names {
        env.wait_module(n, "running again", T, running);
        for i in 0..5 {
            let out = env.ctl_ok(&["module", n, "get", &format!("k{i}")]);
            assert_eq!(out.trim(), format!("{n}-value-{i}"), "acknowledged write of {n} kept");
        }
    }
}

#[test]
fn unload_and_reload_at_runtime_with_dependents() {
    if !require_daemon("hostd run") {
        return;
    }
    let mut env = HostdEnv::new("deps", "");
    env.install_testmod("t-good", &["register_module_api"], "");
    env.install_testmod("t-dep", &["call_module"], "[dependencies]\nt-good = \"^1\"\n");
    env.start();
    let serving = |m: &serde_json::Value| running(m) && m["api"].as_array().is_some_and(|a| !a.is_empty());
    let first = env.wait_module("t-good", "API registered", T, serving);
    env.wait_module("t-dep", "running", T, running);
    let out = env.ctl_ok(&["module", "t-dep", "call", "t-good", "hi"]);
    assert_eq!(out.trim(), "pong to t-dep: hi");
    let refused = env.ctl(&["unload", "t-good"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("needed by t-dep"), "{refused:?}");
    env.ctl_ok(&["reload", "t-good"]);
    let second = env.wait_module("t-good", "running again", T, |m| serving(m) && m["pid"] != first["pid"]);
    assert_ne!(second["pid"], first["pid"]);
    let out = env.ctl_ok(&["module", "t-dep", "call", "t-good", "again"]);
    assert_eq!(out.trim(), "pong to t-dep: again");

    // That was a relaunch: the launcher makes a standby for t-good's policy
    // while idle, and the next reload goes into it.
    let launcher = env.status()["hostd"]["launcher"]["pid"].as_u64().expect("launcher pid");
    let modules: Vec<u64> = ["t-good", "t-dep"].iter().filter_map(|m| env.module(m)["pid"].as_u64()).collect();
    let standby = eventually(|| live_children(launcher).into_iter().find(|p| !modules.contains(p)))
        .expect("the launcher made a standby after the relaunch");
    env.ctl_ok(&["reload", "t-good"]);
    let third = env.wait_module("t-good", "running a third time", T, |m| serving(m) && m["pid"] != second["pid"]);
    assert_eq!(third["pid"].as_u64(), Some(standby), "the second reload went into the standby");
    let out = env.ctl_ok(&["module", "t-dep", "call", "t-good", "third"]);
    assert_eq!(out.trim(), "pong to t-dep: third");

    let out = env.ctl_ok(&["unload", "t-good", "--cascade"]);
    assert!(out.contains("t-dep") && out.contains("t-good"), "{out}");
    assert!(env.module("t-dep").is_null() && env.module("t-good").is_null());
    // Unloading also ends the standby made after the second reload.
    let left = eventually(|| Some(live_children(launcher)).filter(Vec::is_empty));
    let now: Vec<String> = live_children(launcher)
        .iter()
        .map(|p| format!("{p}: {}", std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default().lines().take(3).collect::<Vec<_>>().join(" ")))
        .collect();
    assert_eq!(left, Some(Vec::new()), "nothing of the unloaded modules is left under the launcher: {now:?}");
    env.ctl_ok(&["load", "t-good"]);
    env.wait_module("t-good", "loaded again", T, running);
}

/// Pids whose parent is `parent`, zombies left out.
fn live_children(parent: u64) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u64>().ok()))
        .filter(|pid| proc_state(*pid).is_some_and(|(state, ppid)| state != 'Z' && ppid == parent))
        .collect()
}

/// One line of /proc/<pid>/status, split into fields.
fn proc_status(pid: u64, key: &str) -> Vec<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

fn cap_mask(pid: u64, key: &str) -> u64 {
    u64::from_str_radix(&proc_status(pid, key).concat(), 16).unwrap_or(u64::MAX)
}

#[test]
fn hostd_drops_root_keeps_only_documented_capabilities_and_still_launches() {
    if !require_daemon("hostd run") {
        return;
    }
    let user = hostd::daemon::privileges::RunAs::lookup("hostd").expect("the hostd user exists (scripts/test.sh creates it)");
    let mut env = HostdEnv::new("privdrop", "");
    env.install_testmod("t-good", &["read_filesystem", "write_filesystem"], "");
    // Type=notify: hostd says READY=1 once its modules are started.
    let notify_path = env.scratch.0.join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("bind notify socket");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&notify_path, std::fs::Permissions::from_mode(0o666)).expect("chmod notify socket");
    notify.set_read_timeout(Some(T)).expect("timeout");
    env.env.push(("NOTIFY_SOCKET".into(), notify_path.display().to_string()));
    env.start();
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).expect("hostd sent READY=1 to NOTIFY_SOCKET");
    let msg = String::from_utf8_lossy(&buf[..n]);
    assert!(msg.starts_with("READY=1\n") && msg.contains("1 modules started"), "{msg}");
    let m = env.wait_module("t-good", "running", T, running);
    let st = env.status();
    let hostd_pid = u64::from(env.pid().expect("running"));
    let launcher_pid = st["hostd"]["launcher"]["pid"].as_u64().expect("launcher pid");
    let module_pid = m["pid"].as_u64().expect("module pid");
    for (who, pid, want) in [("daemon", hostd_pid, hostd::daemon::privileges::daemon_mask()), ("launcher", launcher_pid, hostd::daemon::privileges::hostd_launcher_mask())] {
        let uid = user.uid.to_string();
        let gid = user.gid.to_string();
        assert_eq!(proc_status(pid, "Uid:"), vec![uid.clone(); 4], "{who}: real, effective, saved and fs uid");
        assert_eq!(proc_status(pid, "Gid:"), vec![gid.clone(); 4], "{who}: gids");
        assert!(proc_status(pid, "Groups:").is_empty(), "{who}: no supplementary groups");
        for set in ["CapEff:", "CapPrm:", "CapBnd:"] {
            assert_eq!(cap_mask(pid, set), want, "{who} {set}: {:?}", hostd::daemon::privileges::names(cap_mask(pid, set)));
        }
        for set in ["CapInh:", "CapAmb:"] {
            assert_eq!(cap_mask(pid, set), 0, "{who} {set}");
        }
        assert_eq!(proc_status(pid, "NoNewPrivs:"), vec!["1"], "{who}");
    }
    // hostd reports the same about itself.
    assert_eq!(st["hostd"]["uid"], user.uid);
    // The daemon, which parses module input, holds no capability at all;
    // the launcher does the ownership work.
    assert_eq!(st["hostd"]["capabilities"]["effective"], serde_json::json!([]));
    assert_eq!(
        st["hostd"]["launcher"]["capabilities"]["effective"],
        serde_json::json!(["CAP_CHOWN", "CAP_FOWNER", "CAP_SETGID", "CAP_SETUID"])
    );
    // The sandbox it launched runs as the module's own uid: neither root nor hostd.
    let module_uid: u32 = proc_status(module_pid, "Uid:")[0].parse().expect("uid");
    assert!(module_uid != 0 && module_uid != user.uid, "module runs as {module_uid}");
    assert_eq!(cap_mask(module_pid, "CapEff:"), 0);
    // Its files/ is the module's, group hostd, setgid; a file written through
    // hostd is the module's and still reachable by hostd.
    let files = env.data_dir().join("modules/t-good/files");
    let meta = std::fs::metadata(&files).expect("files dir");
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o7777), (module_uid, user.gid, 0o2770));
    let out = env.ctl_ok(&["module", "t-good", "fs-write", "a.txt", "hi"]);
    assert_eq!(out.trim(), "written");
    let out = env.ctl_ok(&["module", "t-good", "fs-read", "a.txt"]);
    assert_eq!(out.trim(), "hi");
    let f = std::fs::metadata(files.join("a.txt")).expect("a.txt");
    assert_eq!((f.uid(), f.gid(), f.mode() & 0o777), (module_uid, user.gid, 0o660));
}

/// `hostd load` and `reload` tell the truth: they return once the module
/// is up, or fail with the reason its start failed (exit 1); a reload to a
/// binary that cannot run in a sandbox (dynamically linked) is refused
/// before the running instance stops; a module that is not running says
/// so when asked for a CLI command; start failures and permission denials
/// reach `hostd logs <module>` and `hostd status`. Controls: the honest
/// load and reload succeed with exit 0.
#[test]
fn load_and_reload_tell_the_truth_and_failures_reach_the_operator() {
    if !require_daemon("hostd run") {
        return;
    }
    let mut env = HostdEnv::new("truth", "");
    env.install_testmod("t-good", &["register_module_api"], "");
    env.start();
    let before = env.wait_module("t-good", "running", T, running);

    // A denial is counted and said, with the permission it lacked.
    assert!(env.ctl_ok(&["module", "t-good", "try-utxo"]).contains("PermissionDenied"));
    let logs = env.ctl_ok(&["logs", "t-good"]);
    assert!(logs.contains("[hostd] permission denied: get_utxo needs the read_utxo permission"), "{logs}");
    // It also subscribed at start and asked for module info, without
    // those permissions: every denial is counted, each said once.
    let said = logs.lines().filter(|l| l.contains("[hostd] permission denied")).count() as u64;
    assert!(said >= 2, "{logs}");
    assert_eq!(env.module("t-good")["permission_denials"].as_u64(), Some(said));

    // A dynamically linked binary: refused by sign (saying how to build
    // it), and by reload before the running instance is stopped.
    let dir = env.modules_dir().join("t-good");
    let dynamic = ["/bin/sh", "/usr/bin/env"].into_iter().find(|p| std::path::Path::new(p).exists()).expect("a dynamic binary");
    let binary = dir.join("t-good");
    std::fs::copy(dynamic, dir.join("t-good.new")).expect("copy");
    std::fs::rename(dir.join("t-good.new"), &binary).expect("mv");
    let signed = std::process::Command::new(hostd_tests::hostd_bin()).arg("sign").arg(&dir).arg("--key").arg(env.scratch.0.join("maintainer.key")).output().expect("sign");
    let said = hostd_tests::output_text(&signed);
    assert!(!signed.status.success() && said.contains("dynamically linked") && said.contains("crt-static"), "sign: {said}");
    let out = env.ctl(&["reload", "t-good"]);
    let said = hostd_tests::output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("dynamically linked") && said.contains("keeps running"), "{said}");
    assert_eq!(env.module("t-good")["pid"], before["pid"], "the old instance kept running");
    std::fs::copy(hostd_tests::bin_dir().join("hostd-testmod"), dir.join("t-good.new")).expect("copy");
    std::fs::rename(dir.join("t-good.new"), &binary).expect("mv");
    env.sign("t-good");
    // Control: an honest reload returns once the new instance is up.
    let out = env.ctl(&["reload", "t-good"]);
    assert!(out.status.success(), "{}", hostd_tests::output_text(&out));
    let now = env.module("t-good");
    assert!(running(&now) && now["pid"] != before["pid"], "up when reload returned: {now:#}");

    // A new version that passes every check (static, signed) but never
    // comes up (it exits before its handshake): reload says so, exit 1,
    // and the previous version runs again from the binary it ran from.
    std::fs::copy(hostd_tests::probe_bin(), dir.join("t-good.new")).expect("copy");
    std::fs::rename(dir.join("t-good.new"), &binary).expect("mv");
    env.sign("t-good");
    let out = env.ctl(&["reload", "t-good"]);
    let said = hostd_tests::output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("did not come up") && said.contains("previous version runs again"), "{said}");
    let back = env.module("t-good");
    assert!(running(&back) && back["pid"] != now["pid"], "the previous version is up again: {back:#}");
    assert!(env.ctl_ok(&["module", "t-good", "try-utxo"]).contains("PermissionDenied"), "and answers as before");
    // Control: with a good binary again, reload goes to the file on disk.
    std::fs::copy(hostd_tests::bin_dir().join("hostd-testmod"), dir.join("t-good.new")).expect("copy");
    std::fs::rename(dir.join("t-good.new"), &binary).expect("mv");
    env.sign("t-good");
    let out = env.ctl(&["reload", "t-good"]);
    assert!(out.status.success(), "{}", hostd_tests::output_text(&out));

    // A module whose start fails (its handshake is refused): load says so
    // and why, exit 1; asking it for a command says it is not running.
    env.install_testmod("t-impostor", &[], "");
    let out = env.ctl(&["load", "t-impostor"]);
    let said = hostd_tests::output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("did not come up") && said.contains("belongs to"), "{said}");
    for args in [&["module", "t-impostor", "try-utxo"][..], &["module", "t-impostor"][..]] {
        let out = env.ctl(args);
        let said = hostd_tests::output_text(&out);
        assert!(!out.status.success() && said.contains("is not running") && said.contains("belongs to"), "{args:?}: {said}");
    }
    let logs = env.ctl_ok(&["logs", "t-impostor"]);
    assert!(logs.contains("[hostd] exited:") && logs.contains("belongs to"), "{logs}");
    // Control: an honest load returns once the module is up.
    env.install_testmod("t-late", &[], "");
    let out = env.ctl(&["load", "t-late"]);
    assert!(out.status.success(), "{}", hostd_tests::output_text(&out));
    assert!(running(&env.module("t-late")), "up when load returned");
}

/// `hostd metrics` and the `[metrics]` loopback listener: hostd's own
/// series and the metrics modules reported, in the Prometheus text format,
/// checked by Prometheus's own linter (`promtool check metrics`) and served
/// over HTTP with the same families.
#[test]
fn metrics_are_prometheus_text_on_the_cli_and_the_loopback_listener() {
    if !require_daemon("hostd run") {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port();
    let mut env = HostdEnv::new("metrics", &format!("\n[metrics]\nlisten = \"127.0.0.1:{port}\""));
    env.install_testmod("t-good", &["report_metrics", "read_metrics"], "");
    env.start();
    env.wait_module("t-good", "running", T, running);
    assert_eq!(env.ctl_ok(&["module", "t-good", "metric", "depth", "2.5"]).trim(), "reported");
    let text = env.ctl_ok(&["metrics"]);
    for want in [
        "module_depth{module=\"t-good\",unit=\"test\"} 2.5",
        "hostd_module_up{module=\"t-good\"} 1",
        "hostd_module_state{module=\"t-good\",state=\"running\"} 1",
        "# TYPE hostd_module_request_duration_seconds histogram",
        "hostd_module_events_dropped_total{module=\"t-good\",reason=\"queue_full\"} 0",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
    let requests = text
        .lines()
        .find_map(|l| l.strip_prefix("hostd_module_request_duration_seconds_count{module=\"t-good\"} "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(requests >= 2.0, "the module's requests are counted: {requests}\n{text}");

    // Prometheus's own parser and linter; the control: it refuses a
    // counter without the _total suffix.
    let promtool = |text: &str| -> std::io::Result<std::process::Output> {
        use std::io::Write;
        use std::process::Stdio;
        let mut p = std::process::Command::new("promtool").args(["check", "metrics"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
        p.stdin.take().expect("stdin").write_all(text.as_bytes())?;
        p.wait_with_output()
    };
    match promtool(&text) {
        Ok(out) => {
            assert!(out.status.success(), "promtool check metrics: {}\n{text}", hostd_tests::output_text(&out));
            let bad = promtool("# HELP foo a\n# TYPE foo counter\nfoo 1\n").expect("promtool");
            assert!(!bad.status.success(), "control: promtool refuses a bad exposition");
        }
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => panic!("promtool (Debian package prometheus) is needed under CI: {e}"),
        Err(e) => eprintln!("SKIP promtool check: {e}"),
    }

    // The same over HTTP, and nothing but GET /metrics.
    let get = |path: &str| -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the metrics listener");
        s.set_read_timeout(Some(T)).expect("timeout");
        write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("request");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("response");
        out
    };
    let served = get("/metrics");
    assert!(served.starts_with("HTTP/1.1 200 OK\r\n") && served.contains("text/plain; version=0.0.4"), "{served}");
    assert!(served.contains("module_depth{module=\"t-good\",unit=\"test\"} 2.5"), "{served}");
    assert!(get("/").starts_with("HTTP/1.1 404"), "only /metrics is served");
}
