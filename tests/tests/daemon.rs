//! End to end: `hostd run` with real sandboxed module processes (the
//! hostd-testmod binary plays each role), driven through the CLI.

use hostd_tests::daemon_env::HostdEnv;
use hostd_tests::{eventually, proc_state, require_daemon, rss_kib};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn running(m: &serde_json::Value) -> bool {
    m["state"] == "running" && m["handshaken"] == true
}

fn last_exit(m: &serde_json::Value) -> String {
    m["last_exit"].as_str().unwrap_or("").to_string()
}

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

/// Running and serving at least one API method.
fn has_api(m: &serde_json::Value) -> bool {
    running(m) && m["api"].as_array().is_some_and(|a| !a.is_empty())
}

/// Calls to a module that never answers (nor reads) pile up only to
/// `max_pending_invocations`: beyond it callers get Busy at once, the rest
/// time out within `call_timeout_ms`, the callee is not killed for a flood
/// that is not its own, no pending entry outlives its call, and a bystander
/// module keeps answering (the control: its calls succeed).
#[test]
fn a_call_flood_at_a_silent_module_answers_busy_and_leaks_nothing() {
    if !require_daemon("hostd run") {
        return;
    }
    let mut env = HostdEnv::new("callflood", "call_timeout_ms = 2000\nmax_pending_invocations = 16\n");
    env.install_testmod("t-deaf", &["register_module_api"], "");
    env.install_bystander();
    env.start();
    let deaf = env.wait_module("t-deaf", "API registered", T, has_api);
    env.wait_bystander();
    let t = std::time::Instant::now();
    assert_eq!(env.ctl_ok(&["module", "t-caller", "callflood", "t-deaf", "200"]).trim(), "started 200");
    let count = |out: &str, k: &str| out.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
    let mut out = String::new();
    while t.elapsed() < Duration::from_secs(10) {
        out = env.ctl_ok(&["module", "t-caller", "callflood-result"]);
        if count(&out, "Some(Busy)") + count(&out, "Some(Timeout)") + count(&out, "ok") >= 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(count(&out, "Some(Busy)") >= 200 - 16, "at most 16 calls wait, the rest are Busy at once: {out}");
    assert_eq!(count(&out, "Some(Busy)") + count(&out, "Some(Timeout)"), 200, "every call answered within the timeout, none stuck behind the callee: {out}");
    let now = env.module("t-deaf");
    assert!(running(&now) && now["pid"] == deaf["pid"], "the callee was not killed for its callers' flood: {now:#}");
    assert_eq!(now["pending_invocations"], 0, "no pending call outlives its timeout: {now:#}");
    env.assert_bystander_answers("still");
}

/// What a module can make hostd hold for it is bounded, kind by kind: RPC
/// endpoints, API methods, metrics and their labels, storage trees, and the
/// length of descriptions. Each stops at its `[daemon]` bound with
/// QuotaExceeded (the first `bound` succeed: the control), `hostd status`
/// counts them, hostd's memory stays flat, and a bystander keeps answering.
#[test]
fn registrations_stop_at_their_bounds() {
    if !require_daemon("hostd run") {
        return;
    }
    let mut env = HostdEnv::new("regflood", "");
    env.install_testmod("t-hog", &["register_rpc_endpoint", "register_module_api", "report_metrics", "manage_storage"], "");
    env.install_bystander();
    env.start();
    env.wait_module("t-hog", "running", T, running);
    env.wait_bystander();
    let hostd = env.pid().expect("hostd pid");
    let rss_before = rss_kib(hostd);
    let out = env.ctl_ok(&["module", "t-hog", "regflood"]);
    let line = |kind: &str| out.lines().find(|l| l.split(' ').next() == Some(kind)).unwrap_or_default().to_string();
    // The test module registered one API method ("ping") at start.
    for (kind, want) in [
        ("rpc", "Some(QuotaExceeded)=936 ok=64"),
        ("rpc-long-description", "Some(QuotaExceeded)=1"),
        ("api", "Some(QuotaExceeded)=745 ok=255"),
        ("api-one-call", "Some(QuotaExceeded)=1"),
        ("metrics", "Some(QuotaExceeded)=1000 ok=1000"),
        ("metric-labels", "Some(QuotaExceeded)=1"),
        ("trees", "Some(QuotaExceeded)=137 ok=63"),
    ] {
        assert_eq!(line(kind), format!("{kind} {want}"), "{out}");
    }
    let hog = env.module("t-hog");
    let reg = &hog["registered"];
    assert_eq!((reg["rpc_endpoints"].as_u64(), reg["api_methods"].as_u64(), reg["metrics"].as_u64(), reg["storage_trees"].as_u64()), (Some(64), Some(256), Some(1000), Some(64)), "{hog:#}");
    assert!(running(&hog), "refusals do not end the connection");
    let grown = rss_kib(hostd).saturating_sub(rss_before);
    assert!(grown < 32 * 1024, "hostd grew {grown} KiB");
    env.assert_bystander_answers("fine");
}

/// Reload and unload while the module's storage work is still running:
/// hostd waits (bounded) for that work before it closes the database and
/// opens it again, so the reload succeeds and nothing is lost.
#[test]
fn reload_and_unload_during_storage_work() {
    if !require_daemon("hostd run") {
        return;
    }
    let mut env = HostdEnv::new("churn", "");
    env.install_testmod("t-good", &["read_storage", "write_storage"], "");
    env.start();
    let mut m = env.wait_module("t-good", "running", T, running);
    for round in 0..3 {
        assert_eq!(env.ctl_ok(&["module", "t-good", "churn"]).trim(), "churning");
        std::thread::sleep(Duration::from_millis(100));
        let out = env.ctl(&["reload", "t-good"]);
        assert!(out.status.success(), "reload {round} during storage work: {}", hostd_tests::output_text(&out));
        let before = m["pid"].clone();
        m = env.wait_module("t-good", "running again", T, |m| running(m) && m["pid"] != before);
    }
    assert_eq!(env.ctl_ok(&["module", "t-good", "put", "k", "kept"]).trim(), "stored");
    env.ctl_ok(&["module", "t-good", "churn"]);
    std::thread::sleep(Duration::from_millis(100));
    env.ctl_ok(&["unload", "t-good"]);
    env.ctl_ok(&["load", "t-good"]);
    env.wait_module("t-good", "loaded again", T, running);
    assert_eq!(env.ctl_ok(&["module", "t-good", "get", "k"]).trim(), "kept");
}

fn threads(pid: u32) -> u64 {
    hostd_tests::status_number(pid, "Threads:")
}

/// One module's storage work cannot take hostd's shared blocking pool:
/// 64 concurrent writers from one module hold at most
/// `max_blocking_per_module` (4) pool threads, and another module's
/// storage requests still complete promptly. (The control is the thread
/// count before the flood; without the per-module share each writer held
/// a pool thread.)
#[test]
fn one_module_cannot_take_the_blocking_pool() {
    if !require_daemon("hostd run") {
        return;
    }
    let mut env = HostdEnv::new("pool", "\n[limits]\nrequests_per_sec = 10000000\nrequest_burst = 10000000");
    env.install_testmod("t-churn", &["read_storage", "write_storage"], "");
    env.install_testmod("t-good", &["read_storage", "write_storage"], "");
    env.start();
    env.wait_module("t-churn", "running", T, running);
    env.wait_module("t-good", "running", T, running);
    let pid = env.pid().expect("hostd pid");
    assert_eq!(env.ctl_ok(&["module", "t-good", "put", "k", "before"]).trim(), "stored");
    let before = threads(pid);
    assert_eq!(env.ctl_ok(&["module", "t-churn", "churn"]).trim(), "churning");
    let (mut most, mut busy_seen) = (0, 0);
    let until = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < until {
        most = most.max(threads(pid));
        busy_seen = busy_seen.max(env.module("t-churn")["pool_slots_busy"].as_u64().unwrap_or(0));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(most <= before + 4 + 3, "hostd threads {before} -> {most} under 64 writers of one module");
    assert!(busy_seen > 0 && busy_seen <= 4, "status shows the module's pool share in use: {busy_seen}");
    for i in 0..5 {
        let t = std::time::Instant::now();
        assert_eq!(env.ctl_ok(&["module", "t-good", "put", "k", &format!("during-{i}")]).trim(), "stored");
        assert!(t.elapsed() < Duration::from_secs(2), "another module's write took {:?}", t.elapsed());
    }
    assert_eq!(env.ctl_ok(&["module", "t-good", "get", "k"]).trim(), "during-4");
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
fn garbage_oversized_and_truncated_frames_close_only_that_connection() {
    if !require_daemon("hostd run") {
        return;
    }
    let mut env = HostdEnv::new("frames", "");
    env.install_testmod("t-good", &["read_storage", "write_storage", "manage_storage"], "");
    for bad in ["t-garbage", "t-oversized", "t-truncated"] {
        env.install_testmod(bad, &[], "");
    }
    env.start();
    let good = env.wait_module("t-good", "running", T, running);
    for (bad, why) in [("t-garbage", "bad frame"), ("t-oversized", "exceeds the maximum"), ("t-truncated", "inside a frame")] {
        let m = env.wait_module(bad, "protocol violation", T, |m| last_exit(m).contains("protocol violation"));
        assert!(last_exit(&m).contains(why), "{bad}: {m:#}");
    }
    let after = env.module("t-good");
    assert_eq!(after["pid"], good["pid"], "t-good kept its process");
    assert_eq!(after["restarts"], 0);
    assert!(env.ctl_ok(&["module", "t-good", "quota"]).contains('/'));
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

/// What hostd's status says of a module's events, as (delivered, dropped,
/// dropped host events, queued).
fn event_counts(env: &HostdEnv, module: &str) -> (u64, u64, u64, u64) {
    let m = env.module(module);
    let n = |k: &str| m["events"][k].as_u64().unwrap_or(0);
    (n("delivered"), n("dropped_full"), n("dropped_host"), n("queued"))
}

/// Undelivered events per module, end to end: the queue (100) plus one
/// write's worth in the socket (16).
const EVENT_BOUND: u64 = 116;

/// A module that never reads: module floods (published events and
/// health reports with attacker-written, host-looking text) fill only
/// their share of its 100-event queue, nothing piles up behind the queue
/// (the bound holds end to end), hostd's memory stays flat, and events
/// hostd itself causes still reach the queue afterwards (the control: they
/// are counted as delivered, none as dropped).
#[test]
fn an_event_flood_to_a_module_that_never_reads_is_dropped_and_counted() {
    if !require_daemon("hostd run") {
        return;
    }
    // The event bound is under test here, not the rate limit.
    let mut env = HostdEnv::new("flood", "\n[limits]\nrequests_per_sec = 10000000\nrequest_burst = 10000000");
    env.install_testmod("t-good", &["publish_events", "subscribe_events", "report_metrics"], "");
    env.install_testmod("t-noread", &["subscribe_events"], "");
    env.start();
    env.wait_module("t-good", "running", T, running);
    env.wait_module("t-noread", "subscribed", T, |m| m["subscriptions"].as_array().is_some_and(|a| !a.is_empty()));
    let pid = env.pid().expect("hostd pid");
    let out = env.ctl_ok(&["module", "t-good", "flood", "20000"]);
    assert!(out.contains("published 20000 failed 0"), "{out}");
    assert!(out.contains("Forbidden"), "a module cannot forge host events: {out}");
    let before = rss_kib(pid);
    let out = env.ctl_ok(&["module", "t-good", "flood", "100000"]);
    assert!(out.contains("published 100000"), "{out}");
    let out = env.ctl_ok(&["module", "t-good", "healthflood", "2000", "50000"]);
    assert!(out.contains("reported 2000 failed 0"), "{out}");
    let after = rss_kib(pid);
    let (delivered, dropped, dropped_host, queued) = event_counts(&env, "t-noread");
    assert!(dropped >= 120_000, "drops are counted: {dropped}");
    assert!(delivered <= EVENT_BOUND, "at most {EVENT_BOUND} undelivered events end to end, took {delivered}");
    assert!(queued >= 75, "the module share of the queue is full: {queued}");
    assert_eq!(dropped_host, 0, "no host event was dropped");
    assert_eq!(env.module("t-noread")["state"], "running", "a slow module is not killed for being slow");
    assert!(after < before + 8 * 1024, "hostd memory stayed flat: {before} KiB -> {after} KiB");

    // Host events still get in: loading and unloading a module are
    // announced to the flooded module's queue.
    env.install_testmod("t-late", &["subscribe_events"], "");
    env.ctl_ok(&["load", "t-late"]);
    env.wait_module("t-late", "running", T, running);
    env.ctl_ok(&["unload", "t-late"]);
    let deadline = std::time::Instant::now() + T;
    loop {
        let (now_delivered, _, now_dropped_host, _) = event_counts(&env, "t-noread");
        if now_delivered >= delivered + 2 {
            assert_eq!(now_dropped_host, 0, "host events are never crowded out by module floods");
            assert!(now_delivered <= EVENT_BOUND, "still bounded: {now_delivered}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ModuleLoaded/ModuleUnloaded for t-late never reached t-noread's queue: before {delivered}, now {:?} {:#}",
            event_counts(&env, "t-noread"),
            env.module("t-late")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
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

/// A reload is checked before the running instance is stopped: each row
/// breaks the installed module in one way, and `hostd reload` must refuse
/// with the reason while the old process keeps running. The control: the
/// repaired module reloads.
#[test]
fn a_reload_that_cannot_start_keeps_the_running_module() {
    if !require_daemon("hostd run") {
        return;
    }
    let mut env = HostdEnv::new("reload", "");
    env.install_testmod("t-good", &["register_module_api"], "");
    env.install_testmod("t-dep", &["call_module"], "[dependencies]\nt-good = \"^1\"\n");
    env.start();
    env.wait_module("t-dep", "running", T, running);
    let before = env.wait_module("t-good", "running", T, running);
    let dir = env.modules_dir().join("t-good");
    let (manifest, binary) = (dir.join("module.toml"), dir.join("t-good"));
    let original = std::fs::read_to_string(&manifest).expect("manifest");
    type Break = fn(&HostdEnv, &std::path::Path, &std::path::Path);
    let rows: [(&str, Break, &str); 3] = [
        ("binary replaced after signing", |_, _, bin| {
            // `mv` onto the running binary, as an update would.
            let other = bin.with_extension("new");
            std::fs::copy(hostd_tests::probe_bin(), &other).expect("copy");
            std::fs::rename(&other, bin).expect("rename");
        }, "does not match"),
        ("manifest changed after signing", |_, m, _| {
            let text = std::fs::read_to_string(m).expect("manifest");
            std::fs::write(m, text.replace("capabilities = [", "capabilities = [\"read_utxo\", ")).expect("write");
        }, "signature"),
        ("new version a loaded dependent does not accept", |env, m, _| {
            let text = std::fs::read_to_string(m).expect("manifest").replace("version = \"1.0.0\"", "version = \"2.0.0\"");
            std::fs::write(m, text).expect("write");
            env.sign("t-good");
        }, "t-dep requires t-good ^1"),
    ];
    for (what, break_it, why) in rows {
        break_it(&env, &manifest, &binary);
        let out = env.ctl(&["reload", "t-good"]);
        let said = hostd_tests::output_text(&out);
        assert_eq!(out.status.code(), Some(1), "{what}: reload must fail: {said}");
        assert!(said.contains("keeps running") && said.contains(why), "{what}: {said}");
        let now = env.module("t-good");
        assert!(running(&now) && now["pid"] == before["pid"], "{what}: the old instance kept running: {now:#}");
        // Repair for the next row.
        std::fs::copy(hostd_tests::bin_dir().join("hostd-testmod"), &binary).expect("restore binary");
        std::fs::write(&manifest, &original).expect("restore manifest");
        env.sign("t-good");
    }
    env.ctl_ok(&["reload", "t-good"]);
    env.wait_module("t-good", "reloaded", T, |m| running(m) && m["pid"] != before["pid"]);
}

#[test]
fn file_requests_stay_inside_the_module_data_directory() {
    if !require_daemon("hostd run") {
        return;
    }
    let mut env = HostdEnv::new("fsreq", "");
    env.install_testmod("t-good", &["read_filesystem", "write_filesystem"], "");
    env.start();
    env.wait_module("t-good", "running", T, running);
    // Control: the same requests succeed inside the directory.
    assert_eq!(env.ctl_ok(&["module", "t-good", "fs-write", "ok.txt", "inside"]).trim(), "written");
    assert_eq!(env.ctl_ok(&["module", "t-good", "fs-read", "ok.txt"]).trim(), "inside");
    let files = env.data_dir().join("modules/t-good/files");
    std::fs::write(env.scratch.0.join("host-secret"), "SECRET").expect("write secret");
    std::os::unix::fs::symlink(env.scratch.0.join("host-secret"), files.join("escape")).expect("symlink");
    for (cmd, path) in [
        ("fs-read", "escape"),
        ("fs-read", "../../module-ids.toml"),
        ("fs-read", "/etc/passwd"),
        ("fs-write", "escape"),
        ("fs-write", "../../../hostd.toml"),
    ] {
        let out = env.ctl_ok(&["module", "t-good", cmd, path, "pwned"]);
        assert!(out.contains("InvalidArgument") && !out.contains("SECRET") && !out.contains("written"), "{cmd} {path}: {out}");
    }
    assert_eq!(std::fs::read_to_string(env.scratch.0.join("host-secret")).expect("secret"), "SECRET");
    assert!(std::fs::read_to_string(&env.config).expect("config").contains("[daemon]"), "config untouched");

    // What is planted in files/ (from outside: the sandbox cannot make
    // links or FIFOs) is checked before hostd touches it.
    use std::os::unix::fs::MetadataExt;
    let ids = env.data_dir().join("module-ids.toml");
    let ids_before = (std::fs::read(&ids).expect("ids"), std::fs::metadata(&ids).expect("ids").uid());
    std::fs::hard_link(&ids, files.join("link")).expect("hard link");
    let fifo = std::ffi::CString::new(files.join("fifo").to_string_lossy().as_bytes()).expect("path");
    // SAFETY: mkfifo with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o666) }, 0);
    // As the module would own it (files/ belongs to the module's uid).
    let module_uid = std::fs::metadata(&files).expect("files/").uid();
    std::os::unix::fs::chown(files.join("fifo"), Some(module_uid), None).expect("chown fifo");
    std::fs::set_permissions(files.join("fifo"), std::os::unix::fs::PermissionsExt::from_mode(0o660)).expect("chmod fifo");
    std::fs::write(files.join("roots"), "root's").expect("write");
    std::os::unix::fs::chown(files.join("roots"), Some(0), Some(0)).expect("chown");
    // World-writable, so only hostd's owner check stands in the way.
    std::fs::set_permissions(files.join("roots"), std::os::unix::fs::PermissionsExt::from_mode(0o666)).expect("chmod");
    for (cmd, path, why) in [
        ("fs-write", "link", "hard links"),
        ("fs-read", "fifo", "not a regular file"),
        ("fs-write", "fifo", "not a regular file"),
        ("fs-write", "roots", "neither the module nor hostd"),
    ] {
        let t = std::time::Instant::now();
        let out = env.ctl_ok(&["module", "t-good", cmd, path, "pwned"]);
        assert!(out.contains(why) && !out.contains("written"), "{cmd} {path}: {out}");
        assert!(t.elapsed() < Duration::from_secs(5), "{cmd} {path} answered at once, not after blocking");
    }
    assert_eq!((std::fs::read(&ids).expect("ids"), std::fs::metadata(&ids).expect("ids").uid()), ids_before, "module-ids.toml untouched");
    assert_eq!(std::fs::read_to_string(files.join("roots")).expect("roots"), "root's");
    // Control: the module's own existing file is rewritten in place.
    assert_eq!(env.ctl_ok(&["module", "t-good", "fs-write", "ok.txt", "again"]).trim(), "written");
    assert_eq!(env.ctl_ok(&["module", "t-good", "fs-read", "ok.txt"]).trim(), "again");
}

/// The storage quota holds on disk, not only in keys and values: a module
/// that puts and deletes in cycles stays logically small while the
/// database's write-ahead log grows; hostd refuses its growth once the
/// data files pass the quota (sampled all along from outside) and
/// reclaims the space. What was stored before is intact, the module
/// learns no host path, and a bystander keeps answering. Control: writes
/// succeed again once the space is reclaimed.
#[test]
fn the_storage_quota_holds_on_disk() {
    if !require_daemon("hostd run") {
        return;
    }
    let quota: u64 = 1 << 20;
    let mut env = HostdEnv::new("diskquota", &format!("storage_quota_bytes = {quota}"));
    env.install_testmod("t-churn", &["read_storage", "write_storage"], "");
    env.install_bystander();
    env.start();
    env.wait_module("t-churn", "running", T, running);
    env.wait_bystander();
    assert_eq!(env.ctl_ok(&["module", "t-churn", "put", "k", "kept"]).trim(), "stored");
    let db = env.data_dir().join("modules/t-churn/db");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut max = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                max = max.max(hostd::daemon::storage_disk::data_file_bytes(&db));
                std::thread::sleep(Duration::from_millis(2));
            }
            max
        })
    };
    let out = env.ctl_ok(&["module", "t-churn", "cycle", "12", "40", "16384"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let max_on_disk = sampler.join().expect("sampler");
    assert!(max_on_disk <= quota + (64 << 10), "the data files stayed within the quota and one write: {max_on_disk} bytes\n{out}");
    // 7.5 MiB of puts through a 4 MiB memtable: the log passes 1 MiB long
    // before a flush, so growth must have been refused.
    assert!(!out.contains("refused 0") && out.contains("QuotaExceeded") && out.contains("on disk"), "{out}");
    assert!(!out.contains(&env.scratch.0.display().to_string()), "no host path reaches the module: {out}");
    assert_eq!(env.ctl_ok(&["module", "t-churn", "get", "k"]).trim(), "kept", "stored data intact");
    env.assert_bystander_answers("after-churn");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(env.ctl_ok(&["module", "t-churn", "put", "k2", "room"]).trim(), "stored", "control: room again after reclaim");
    let m = env.module("t-churn");
    assert!(m["storage"]["on_disk_bytes"].as_u64().is_some_and(|b| b <= quota + (64 << 10)), "{m:#}");
    assert_eq!(m["storage"]["quota_bytes"], quota);
}

/// Allocated bytes under `dir` (what du counts), symlinks not followed.
fn allocated(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let m = e.metadata().map(|m| m.blocks() * 512).unwrap_or(0);
                    m + if e.file_type().is_ok_and(|t| t.is_dir()) { allocated(&e.path()) } else { 0 }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// FsWrite is hostd writing, so neither the sandbox's file-size limit nor
/// its filesystem binds it: hostd applies both itself. Appends stop at the
/// module's file-size limit, and `files/` stops at its quota; each refusal
/// says which bound and writes nothing. Controls: writes under both bounds
/// succeed before and after, and `hostd status` shows the usage.
#[test]
fn file_writes_stop_at_the_file_size_limit_and_the_quota() {
    if !require_daemon("hostd run") {
        return;
    }
    let quota: u64 = 7 << 19;
    let mut env = HostdEnv::new("fsquota", &format!("files_quota_bytes = {quota}\n\n[limits]\nfsize_bytes = 1048576"));
    env.install_testmod("t-good", &["read_filesystem", "write_filesystem"], "");
    env.start();
    env.wait_module("t-good", "running", T, running);
    let files = env.data_dir().join("modules/t-good/files");
    let fill = |path: &str, n: &str| env.ctl_ok(&["module", "t-good", "fs-fill", path, "65536", n]);

    let out = fill("a", "100");
    assert!(out.starts_with("appended 16\n") && out.contains("QuotaExceeded") && out.contains("file-size limit"), "{out}");
    assert_eq!(std::fs::metadata(files.join("a")).expect("a").len(), 1 << 20, "nothing past the limit was written");
    for f in ["b", "c"] {
        assert!(fill(f, "16").starts_with("appended 16"), "under both bounds");
    }
    let out = fill("d", "100");
    assert!(out.contains("QuotaExceeded") && out.contains("daemon.files_quota_bytes") && !out.contains("appended 16\n"), "{out}");
    let used = allocated(&files);
    assert!(used <= quota, "files/ stayed within its quota: {used} > {quota}");
    let out = env.ctl_ok(&["module", "t-good", "fs-write", "new-file", "x"]);
    assert!(out.contains("QuotaExceeded") || out.contains("written"), "{out}");
    // Control: overwriting a frees its space, and writes succeed again.
    assert_eq!(env.ctl_ok(&["module", "t-good", "fs-write", "a", "small"]).trim(), "written");
    assert!(fill("e", "4").starts_with("appended 4"), "room again after freeing space");
    let m = env.wait_module("t-good", "files measured", Duration::from_secs(20), |m| m["files"]["used_bytes"].as_u64().is_some());
    let shown = m["files"]["used_bytes"].as_u64().unwrap_or(0);
    assert!(shown > 2 << 20 && shown <= quota, "status shows the usage: {m:#}");
    assert_eq!(m["files"]["quota_bytes"], quota);
    assert!(running(&env.module("t-good")), "the module was refused, not killed");
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
