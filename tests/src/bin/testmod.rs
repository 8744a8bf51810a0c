//! A module for end-to-end tests. What it does is chosen by its name
//! (HOSTD_MODULE), so one binary can play a well-behaved module and each
//! kind of hostile one inside a real sandbox.

use hostd_protocol::{self as proto, Hello, ModuleMessage};
use hostd_sdk::{CliCommand, CliSpec, ErrorBody, ErrorCode, EventType, Incoming, Invocation};
use std::io::Write;
use std::os::fd::FromRawFd;

fn raw_fd3() -> std::fs::File {
    // SAFETY: fd 3 is the IPC socket hostd gave this process.
    unsafe { std::fs::File::from_raw_fd(3) }
}

fn raw_hello(f: &mut std::fs::File, name: &str) {
    raw_hello_v(f, name, 1);
}

/// The handshake offering protocols 1..=`max`.
fn raw_hello_v(f: &mut std::fs::File, name: &str, max: u32) {
    let hello = ModuleMessage::Hello(Hello { name: name.into(), version: "1.0.0".into(), protocol_min: 1, protocol_max: max });
    let _ = f.write_all(&proto::encode(&hello, proto::DEFAULT_MAX_FRAME).unwrap_or_default());
    // Read the Welcome (one read is enough for its few bytes), so closing
    // later leaves no unread data behind (that would turn EOF into a reset).
    let mut welcome = [0u8; 4096];
    let _ = std::io::Read::read(f, &mut welcome);
}

/// Connect to the config's `peer`, then write 16 KiB MeshSend frames as
/// fast as the socket takes them and never read again.
fn mesh_flood_life(name: &str) -> ! {
    use std::io::Read;
    let mut f = raw_fd3();
    let hello = ModuleMessage::Hello(Hello { name: name.into(), version: "1.0.0".into(), protocol_min: 1, protocol_max: 2 });
    let _ = f.write_all(&proto::encode(&hello, proto::DEFAULT_MAX_FRAME).unwrap_or_default());
    let mut frames = proto::FrameBuf::new(proto::HARD_MAX_FRAME);
    let mut chunk = vec![0u8; 64 << 10];
    let mut next = |f: &mut std::fs::File| loop {
        if let Ok(Some(m)) = frames.next_message::<proto::HostMessage>() {
            return m;
        }
        match f.read(&mut chunk) {
            Ok(0) | Err(_) => std::process::exit(2),
            Ok(n) => frames.push(&chunk[..n]),
        }
    };
    let proto::HostMessage::Welcome(welcome) = next(&mut f) else { std::process::exit(2) };
    let peer = welcome.config_toml.parse::<toml::Table>().ok().and_then(|t| t.get("peer")?.as_str().map(str::to_string)).unwrap_or_default();
    let connect = ModuleMessage::Request { id: 1, request: proto::Request::MeshConnect { addr: peer } };
    let _ = f.write_all(&proto::encode(&connect, welcome.max_frame).unwrap_or_default());
    let link = loop {
        match next(&mut f) {
            proto::HostMessage::Response { id: 1, result: Ok(proto::Response::Link(info)) } => break info.id,
            proto::HostMessage::Response { id: 1, result: Err(e) } => {
                eprintln!("meshflood: connect: {e}");
                std::process::exit(3)
            }
            _ => {}
        }
    };
    let mut batch = Vec::new();
    for id in 2..66 {
        let send = ModuleMessage::Request { id, request: proto::Request::MeshSend { link, data: vec![0x5a; 16 << 10] } };
        batch.extend(proto::encode(&send, welcome.max_frame).unwrap_or_default());
    }
    loop {
        if f.write_all(&batch).is_err() {
            sleep_forever();
        }
    }
}

/// One life of the IPC fuzzer: handshake, then `frames` (from the module
/// config) generated frames while a thread drains what hostd sends, then
/// one frame hostd must refuse, then EOF. hostd closes the connection and
/// restarts the module for the next life.
fn fuzz_life(name: &str) -> ! {
    use hostd_tests::fuzz::{frame, terminal, Rng};
    use std::io::Read;
    let mut f = raw_fd3();
    let hello = ModuleMessage::Hello(Hello { name: name.into(), version: "1.0.0".into(), protocol_min: 1, protocol_max: 1 });
    let _ = f.write_all(&proto::encode(&hello, proto::DEFAULT_MAX_FRAME).unwrap_or_default());
    let mut frames = proto::FrameBuf::new(proto::DEFAULT_MAX_FRAME);
    let mut chunk = vec![0u8; 64 << 10];
    let welcome = loop {
        match f.read(&mut chunk) {
            Ok(0) | Err(_) => std::process::exit(2),
            Ok(n) => frames.push(&chunk[..n]),
        }
        if let Ok(Some(proto::HostMessage::Welcome(w))) = frames.next_message::<proto::HostMessage>() {
            break w;
        }
    };
    let per_life: u64 = welcome.config_toml.parse::<toml::Table>().ok().and_then(|t| t.get("frames")?.as_integer()).unwrap_or(20_000) as u64;
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    let seed = (ts.tv_sec as u64).wrapping_mul(1_000_000_007) ^ ts.tv_nsec as u64;
    let mut rd = f.try_clone().unwrap_or_else(|_| std::process::exit(2));
    let (closed_tx, closed_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = vec![0u8; 64 << 10];
        while matches!(rd.read(&mut sink), Ok(n) if n > 0) {}
        let _ = closed_tx.send(());
    });
    let mut r = Rng::new(seed);
    let (mut sent, mut batch) = (0u64, Vec::with_capacity(128 << 10));
    for _ in 0..per_life {
        batch.extend(frame(&mut r, welcome.max_frame));
        sent += 1;
        if batch.len() >= 64 << 10 {
            if f.write_all(&batch).is_err() {
                break;
            }
            batch.clear();
        }
    }
    let _ = f.write_all(&batch);
    let (ending, bytes) = terminal(&mut r, welcome.max_frame, name);
    let _ = f.write_all(&bytes);
    // SAFETY: shutdown of our own socket's write side: hostd sees EOF.
    unsafe { libc::shutdown(3, libc::SHUT_WR) };
    eprintln!("fuzz: seed {seed} sent {sent} frames, ending with {ending}");
    if closed_rx.recv_timeout(std::time::Duration::from_secs(10)).is_err() {
        eprintln!("fuzz: FINDING: hostd kept the connection open 10 s after {ending} and EOF");
        std::process::exit(1);
    }
    std::process::exit(0);
}

fn frame_of(msg: &ModuleMessage) -> Vec<u8> {
    proto::encode(msg, proto::DEFAULT_MAX_FRAME).unwrap_or_default()
}

/// SCM_RIGHTS over fd 3: 2,000 valid log frames, each carrying 64 copies
/// of fd 3 itself. hostd reads with read(2), so the kernel drops the
/// passed descriptors; none may reach hostd's fd table.
fn fd_pass_life(name: &str) -> ! {
    let mut f = raw_fd3();
    raw_hello(&mut f, name);
    let log = ModuleMessage::Log(proto::LogRecord {
        level: proto::LogLevel::Debug,
        target: "fdpass".into(),
        message: "a frame with descriptors attached".into(),
        fields: vec![],
    });
    let frame = frame_of(&log);
    let fds = [3 as libc::c_int; 64];
    let (mut sent, mut refused, mut why) = (0u32, 0u32, String::new());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    // The kernel caps descriptors in flight per user (ETOOMANYREFS): wait
    // for hostd to read, and send again.
    while sent < 2000 && std::time::Instant::now() < deadline {
        let mut iov = libc::iovec { iov_base: frame.as_ptr() as *mut libc::c_void, iov_len: frame.len() };
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of_val(&fds) as u32) } as usize;
        let mut control = vec![0u8; space];
        // SAFETY: msghdr/cmsghdr built over buffers we own, sized by CMSG_SPACE.
        let rc = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
            msg.msg_controllen = space as _;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(&fds) as u32) as _;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c) as *mut libc::c_int, fds.len());
            libc::sendmsg(3, &msg, 0)
        };
        if rc == frame.len() as isize {
            sent += 1;
        } else {
            refused += 1;
            why = std::io::Error::last_os_error().to_string();
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    eprintln!("fdpass: sent {sent} frames carrying {} descriptors ({refused} sends waited for room: {why})", sent * 64);
    sleep_forever();
}

/// Correlation ids reused and invented: 500 requests that all carry id 7,
/// then 500 results for calls hostd never made. Every request must be
/// answered under its id; the forged results must reach nobody.
fn dup_id_life(name: &str) -> ! {
    use std::io::Read;
    let mut f = raw_fd3();
    raw_hello(&mut f, name);
    let mut batch = Vec::new();
    for _ in 0..500 {
        batch.extend(frame_of(&ModuleMessage::Request { id: 7, request: proto::Request::RegisterCliSpec { spec: cli_spec() } }));
    }
    for id in 0..500 {
        batch.extend(frame_of(&ModuleMessage::InvocationResult { id, result: Ok(b"forged".to_vec()) }));
    }
    let _ = f.write_all(&batch);
    let mut frames = proto::FrameBuf::new(proto::DEFAULT_MAX_FRAME);
    let (mut answered, mut other) = (0u32, 0u32);
    let mut chunk = vec![0u8; 64 << 10];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while answered < 500 && std::time::Instant::now() < deadline {
        match f.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => frames.push(&chunk[..n]),
        }
        while let Ok(Some(m)) = frames.next_message::<proto::HostMessage>() {
            match m {
                proto::HostMessage::Response { id: 7, result: Ok(_) } => answered += 1,
                _ => other += 1,
            }
        }
    }
    eprintln!("dupid: {answered} answers under id 7, {other} other frames");
    sleep_forever();
}

/// Calls its own API 1,000 times with 250 KiB each and never reads: what
/// hostd holds for it is bounded by the callee's invocation queue.
fn self_call_life(name: &str) -> ! {
    let mut f = raw_fd3();
    raw_hello(&mut f, name);
    let _ = f.write_all(&frame_of(&ModuleMessage::Request { id: 1, request: proto::Request::RegisterModuleApi { methods: vec!["ping".into()] } }));
    let mut sent = 0;
    for id in 0..1000u64 {
        let call = proto::Request::CallModule { module: name.into(), method: "ping".into(), params: vec![7; 250 << 10] };
        if f.write_all(&frame_of(&ModuleMessage::Request { id: id + 2, request: call })).is_err() {
            break;
        }
        sent += 1;
    }
    eprintln!("selfcall: sent {sent} calls of 250 KiB to itself");
    sleep_forever();
}

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

fn main() {
    let name = std::env::var("HOSTD_MODULE").unwrap_or_default();
    let role = name.split('-').nth(1).unwrap_or("good").to_string();
    match role.as_str() {
        "garbage" => {
            let mut f = raw_fd3();
            raw_hello(&mut f, &name);
            let _ = f.write_all(&[5, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff]);
            sleep_forever();
        }
        "oversized" => {
            let mut f = raw_fd3();
            raw_hello(&mut f, &name);
            let _ = f.write_all(&(100u32 << 20).to_le_bytes());
            sleep_forever();
        }
        "truncated" => {
            let mut f = raw_fd3();
            raw_hello(&mut f, &name);
            let _ = f.write_all(&[50, 0, 0, 0, 1, 2, 3]);
            drop(f);
            sleep_forever();
        }
        "noread" => {
            // Handshake and subscribe by hand, then never read a byte.
            let mut f = raw_fd3();
            raw_hello(&mut f, &name);
            let sub = ModuleMessage::Request {
                id: 1,
                request: proto::Request::SubscribeEvents {
                    types: vec![
                        EventType::Custom,
                        EventType::HealthCheck,
                        EventType::ModuleLoaded,
                        EventType::ModuleUnloaded,
                        EventType::ModuleCrashed,
                    ],
                },
            };
            let _ = f.write_all(&proto::encode(&sub, proto::DEFAULT_MAX_FRAME).unwrap_or_default());
            sleep_forever();
        }
        "fuzz" => fuzz_life(&name),
        "fdpass" => fd_pass_life(&name),
        "dupid" => dup_id_life(&name),
        "selfcall" => self_call_life(&name),
        "deaf" => {
            // Registers an API, then never reads again: calls to it pile up
            // in hostd (and in the socket buffer) and are never answered.
            let mut f = raw_fd3();
            raw_hello(&mut f, &name);
            let reg = ModuleMessage::Request { id: 1, request: proto::Request::RegisterModuleApi { methods: vec!["ping".into()] } };
            let _ = f.write_all(&proto::encode(&reg, proto::DEFAULT_MAX_FRAME).unwrap_or_default());
            sleep_forever();
        }
        "meshdeaf" => {
            // Protocol 2 with a listener (its config), then never reads:
            // frames for it stop at hostd's bound, then in the peers' TCP.
            let mut f = raw_fd3();
            raw_hello_v(&mut f, &name, 2);
            sleep_forever();
        }
        "meshflood" => mesh_flood_life(&name),
        "slow" => {
            // Takes its time before the handshake, then behaves.
            std::thread::sleep(std::time::Duration::from_millis(1500));
            sdk_main(&name, &role)
        }
        _ => sdk_main(&name, &role),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn sdk_main(name: &str, role: &str) {
    // The impostor claims another module's name.
    let claimed = if role == "impostor" { "t-good" } else { name };
    let (client, mut incoming) = match hostd_sdk::connect(claimed, "1.0.0").await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("testmod {name}: {e}");
            std::process::exit(3);
        }
    };
    match role {
        "exit" => std::process::exit(7),
        "panic" => panic!("testmod asked to panic"),
        "sigsys" => {
            // Not in the allowlist: the filter's default action kills us.
            // SAFETY: a syscall that seccomp refuses before it does anything.
            unsafe { libc::syscall(libc::SYS_kexec_load, 0usize, 0usize, std::ptr::null::<u8>(), 0usize) };
            std::process::exit(0);
        }
        "oom" => {
            let mut hog: Vec<Vec<u8>> = Vec::new();
            loop {
                hog.push(vec![1u8; 8 << 20]);
            }
        }
        _ => {}
    }
    let _ = client.register_cli_spec(cli_spec()).await;
    let _ = client.register_module_api(&["ping"]).await;
    if role == "watch" {
        // Subscribes late, well after hostd published its start-up events.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let _ = client
            .subscribe_events(vec![EventType::ModuleLoaded, EventType::ConfigLoaded, EventType::NodeStartupCompleted, EventType::ModuleUnloaded])
            .await;
    } else {
        let _ = client.subscribe_events(vec![EventType::Custom, EventType::ModuleCrashed]).await;
    }
    while let Some(msg) = incoming.next().await {
        match msg {
            Incoming::Event(e) => {
                let line = match &e.payload {
                    proto::EventPayload::ModuleLoaded { module_name, .. } | proto::EventPayload::ModuleUnloaded { module_name, .. } => {
                        format!("{} {module_name}", e.event_type)
                    }
                    _ => e.event_type.to_string(),
                };
                seen().lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
            Incoming::Invoke(call) => {
                let result = match &call.invocation {
                    Invocation::Cli { command, args } => run_cli(&client, command, args).await,
                    Invocation::Api { method, params, caller } if method == "ping" => {
                        Ok(format!("pong to {caller}: {}", String::from_utf8_lossy(params)).into_bytes())
                    }
                    Invocation::Rpc { method, params } => Ok(format!("rpc {method} got {params}").into_bytes()),
                    _ => Err(ErrorBody::new(ErrorCode::Unsupported, "unknown")),
                };
                call.reply(result);
            }
            Incoming::Shutdown { .. } => break,
            Incoming::TimerFired { task, .. } => {
                let mut fired = fired().lock().unwrap_or_else(|p| p.into_inner());
                fired.0 += 1;
                fired.1.extend(task);
            }
            _ => {}
        }
    }
}

/// Timer ticks seen, and the names of scheduled tasks that fired.
fn fired() -> &'static std::sync::Mutex<(u64, Vec<String>)> {
    static FIRED: std::sync::OnceLock<std::sync::Mutex<(u64, Vec<String>)>> = std::sync::OnceLock::new();
    FIRED.get_or_init(Default::default)
}

/// Events received, one line each ("ModuleLoaded t-good").
fn seen() -> &'static std::sync::Mutex<Vec<String>> {
    static SEEN: std::sync::OnceLock<std::sync::Mutex<Vec<String>>> = std::sync::OnceLock::new();
    SEEN.get_or_init(Default::default)
}

/// Outcomes of `callflood`'s calls so far.
fn flood_counts() -> &'static std::sync::Mutex<std::collections::BTreeMap<String, u32>> {
    static COUNTS: std::sync::OnceLock<std::sync::Mutex<std::collections::BTreeMap<String, u32>>> = std::sync::OnceLock::new();
    COUNTS.get_or_init(Default::default)
}

fn cli_spec() -> CliSpec {
    let commands = ["try-utxo", "put", "get", "flood", "call", "callflood", "callflood-result", "regflood", "timer", "cancel", "task", "fired", "metric", "metrics", "rpc-register", "churn", "quota", "fs-write", "fs-read", "try-all", "healthflood", "seen", "fs-fill", "cycle", "trees", "scanflood", "fs-readflood", "rtt"];
    CliSpec {
        about: "test module".into(),
        commands: commands.iter().map(|c| CliCommand { name: c.to_string(), about: String::new(), args: cli_args(c) }).collect(),
    }
}

/// `put` takes exactly a key and a value (what the CLI-argument check is
/// tested with); every other command up to four optional arguments.
fn cli_args(command: &str) -> Vec<hostd_sdk::CliArg> {
    let arg = |name: &str, required: bool| hostd_sdk::CliArg { name: name.into(), help: String::new(), required };
    match command {
        "put" => vec![arg("key", true), arg("value", true)],
        _ => (1..=4).map(|i| arg(&format!("arg{i}"), false)).collect(),
    }
}

/// One request of every kind, with harmless arguments.
fn one_of_each() -> Vec<proto::Request> {
    use proto::{BatchOp, HealthStatus, Request as Q};
    let h = [0u8; 32];
    let tree = || "default".to_string();
    vec![
        Q::ReportHealth { status: HealthStatus::Healthy, detail: "ok".into() },
        Q::RegisterCliSpec { spec: cli_spec() },
        Q::GetBlock { hash: h },
        Q::GetBlockHeader { hash: h },
        Q::GetTransaction { txid: h },
        Q::HasTransaction { txid: h },
        Q::GetUtxo { txid: h, vout: 0 },
        Q::GetChainTip,
        Q::GetBlockHeight,
        Q::GetChainInfo,
        Q::SubscribeEvents { types: vec![EventType::Custom] },
        Q::UnsubscribeEvents { types: vec![EventType::Custom] },
        Q::SendTransaction { raw: vec![0] },
        Q::GetMempoolTransactions,
        Q::GetMempoolTransaction { txid: h },
        Q::GetMempoolSize,
        Q::GetFeeEstimate { target_blocks: 6 },
        Q::GetNetworkStats,
        Q::GetNetworkPeers,
        Q::SendMeshPacket { peer: vec![1], payload: vec![2] },
        Q::GetLightningNodeUrl,
        Q::GetLightningInfo,
        Q::GetPaymentState { payment_id: "p".into() },
        Q::StorageGet { tree: tree(), key: b"k".to_vec() },
        Q::StorageIterPrefix { tree: tree(), prefix: b"k".to_vec(), limit: 1 },
        Q::StoragePut { tree: tree(), key: b"k".to_vec(), value: b"v".to_vec() },
        Q::StorageDelete { tree: tree(), key: b"k".to_vec() },
        Q::StorageBatch { tree: tree(), ops: vec![BatchOp::Delete { key: b"k".to_vec() }] },
        Q::StorageOpenTree { tree: "t".into() },
        Q::StorageDropTree { tree: "t".into() },
        Q::StorageQuota,
        Q::FsRead { path: "f".into(), offset: 0, len: 1 },
        Q::FsWrite { path: "f".into(), data: vec![1], append: false },
        Q::FsDelete { path: "f".into() },
        Q::FsMkdir { path: "d".into() },
        Q::RegisterRpcEndpoint { method: "m".into(), description: "d".into() },
        Q::UnregisterRpcEndpoint { method: "m".into() },
        Q::TimerCreate { interval_ms: 1000, repeat: false },
        Q::TimerCancel { timer_id: 1 },
        Q::ScheduleTask { delay_ms: 1000, task: "t".into() },
        Q::ReportMetric { name: "m".into(), value: 1.0, labels: vec![] },
        Q::GetMetrics { module: None },
        Q::DiscoverModules,
        Q::GetModuleInfo { name: "x".into() },
        Q::PublishEvent { event_type: EventType::Custom, data: vec![] },
        Q::CallModule { module: "x".into(), method: "m".into(), params: vec![] },
        Q::RegisterModuleApi { methods: vec!["m".into()] },
        Q::UnregisterModuleApi,
        Q::SubmitBlock { raw: vec![0] },
        Q::QueueInboundBlock { raw: vec![0] },
        Q::MeshConnect { addr: "not-an-address".into() },
        Q::MeshClose { link: 0 },
        Q::MeshLinks,
        Q::MeshSend { link: 0, data: vec![1] },
    ]
}

/// "<name> ok=<n> <code>=<n>": how a run of requests ended, by outcome.
fn tally(name: &str, results: Vec<Result<(), hostd_sdk::SdkError>>) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for r in results {
        let k = match r {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("{:?}", e.code()),
        };
        *counts.entry(k).or_insert(0) += 1;
    }
    format!("{name} {}\n", counts.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "))
}

async fn run_cli(client: &hostd_sdk::Client, command: &str, args: &[String]) -> Result<Vec<u8>, ErrorBody> {
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let show = |r: Result<String, hostd_sdk::SdkError>| match r {
        Ok(s) => s,
        Err(e) => format!("error {:?}: {e}", e.code()),
    };
    let out = match command {
        // A request this module has no permission for, then one it has:
        // the connection must survive the denial.
        "try-utxo" => {
            let denied = show(client.get_utxo([0; 32], 0).await.map(|u| format!("{u:?}")));
            let after = show(client.get_module_info("t-good").await.map(|m| m.name));
            format!("{denied}\nafter: {after}\n")
        }
        // `rtt <n>`: n report_metric round trips, one at a time.
        "rtt" => {
            let n: usize = arg(0).parse().unwrap_or(1000);
            let mut us = Vec::with_capacity(n);
            for i in 0..n {
                let t = std::time::Instant::now();
                if let Err(e) = client.report_metric("rtt", i as f64, &[]).await {
                    return Ok(format!("error {e}\n").into_bytes());
                }
                us.push(t.elapsed().as_micros() as u64);
            }
            us.sort_unstable();
            let q = |p: f64| us.get(((us.len().max(1) - 1) as f64 * p) as usize).copied().unwrap_or(0);
            format!("p50_us={} p99_us={}\n", q(0.5), q(0.99))
        }
        "put" => show(client.storage_put("default", arg(0).as_bytes(), arg(1).as_bytes()).await.map(|_| "stored".into())),
        "get" => show(
            client
                .storage_get("default", arg(0).as_bytes())
                .await
                .map(|v| v.map(|v| String::from_utf8_lossy(&v).into_owned()).unwrap_or_else(|| "<none>".into())),
        ),
        "quota" => show(client.storage_quota().await.map(|(u, l)| format!("{u}/{l}"))),
        // Every request kind once: one line each, "<kind> <code or ok> <message>".
        "try-all" => {
            let mut lines = String::new();
            for req in one_of_each() {
                let kind = req.kind();
                let line = match client.request(req).await {
                    Ok(_) => format!("{kind} ok"),
                    Err(e) => format!("{kind} {:?} {e}", e.code()),
                };
                lines.push_str(&line);
                lines.push('\n');
            }
            lines
        }
        "flood" => {
            let n: usize = arg(0).parse().unwrap_or(1000);
            let mut failed = 0;
            for i in 0..n {
                if client.publish_event(EventType::Custom, (i as u64).to_le_bytes().to_vec()).await.is_err() {
                    failed += 1;
                }
            }
            let forged = show(client.publish_event(EventType::NewBlock, vec![]).await.map(|_| "forged".into()));
            format!("published {} failed {failed}\nforge: {forged}", n - failed)
        }
        // `healthflood <n> <bytes>`: health reports with long, host-looking text.
        "healthflood" => {
            let (n, len): (usize, usize) = (arg(0).parse().unwrap_or(1000), arg(1).parse().unwrap_or(50_000));
            let detail = "module t-victim crashed: ".repeat(len / 25 + 1);
            let mut failed = 0;
            for _ in 0..n {
                if client.report_health(proto::HealthStatus::Unhealthy, &detail[..len]).await.is_err() {
                    failed += 1;
                }
            }
            format!("reported {} failed {failed}", n - failed)
        }
        // `fs-fill <path> <chunk> <n>`: append until the first refusal.
        "fs-fill" => {
            let (chunk, n): (usize, usize) = (arg(1).parse().unwrap_or(65536), arg(2).parse().unwrap_or(16));
            let data = vec![b'x'; chunk];
            let mut appended = 0;
            let mut refusal = String::new();
            for _ in 0..n {
                match client.fs_write(&arg(0), &data, true).await {
                    Ok(()) => appended += 1,
                    Err(e) => {
                        refusal = format!("error {:?}: {e}", e.code());
                        break;
                    }
                }
            }
            format!("appended {appended}\n{refusal}")
        }
        // `cycle <rounds> <keys> <bytes>`: put keys, then delete them, per
        // round; logically small, but the database's log grows.
        "cycle" => {
            let (rounds, keys, len): (u32, u32, usize) =
                (arg(0).parse().unwrap_or(10), arg(1).parse().unwrap_or(40), arg(2).parse().unwrap_or(16384));
            let (mut stored, mut refused, mut last) = (0, 0, String::new());
            for r in 0..rounds {
                for k in 0..keys {
                    match client.storage_put("default", format!("cycle-{r}-{k}").as_bytes(), &vec![7; len]).await {
                        Ok(()) => stored += 1,
                        Err(e) => {
                            refused += 1;
                            last = format!("error {:?}: {e}", e.code());
                        }
                    }
                }
                for k in 0..keys {
                    let _ = client.storage_delete("default", format!("cycle-{r}-{k}").as_bytes()).await;
                }
            }
            format!("stored {stored} refused {refused}\n{last}")
        }
        // `trees <n>`: open n storage trees.
        "trees" => {
            let mut r = Vec::new();
            for i in 0..arg(0).parse().unwrap_or(2000) {
                r.push(client.storage_open_tree(&format!("t{i}")).await);
            }
            tally("trees", r)
        }
        // `scanflood <entries> <bytes> <parallel> <rounds>`: store large
        // entries, then scan them all at once from many tasks.
        "scanflood" => {
            let (entries, len, parallel, rounds): (u32, usize, usize, usize) =
                (arg(0).parse().unwrap_or(120), arg(1).parse().unwrap_or(100 << 10), arg(2).parse().unwrap_or(30), arg(3).parse().unwrap_or(5));
            for i in 0..entries {
                if let Err(e) = client.storage_put("default", format!("s{i:05}").as_bytes(), &vec![7; len]).await {
                    return Ok(format!("put {i}: {e}").into_bytes());
                }
            }
            let (mut most, mut scans, mut failed) = (0usize, 0u32, 0u32);
            for _ in 0..rounds {
                let tasks: Vec<_> = (0..parallel)
                    .map(|_| {
                        let client = client.clone();
                        tokio::spawn(async move { client.storage_iter_prefix("default", b"s", 10_000).await.map(|e| e.len()) })
                    })
                    .collect();
                for t in tasks {
                    match t.await {
                        Ok(Ok(n)) => {
                            scans += 1;
                            most = most.max(n);
                        }
                        _ => failed += 1,
                    }
                }
            }
            format!("scans {scans} failed {failed} most entries in one answer {most}")
        }
        // `fs-readflood <path> <n>`: n concurrent reads of one file.
        "fs-readflood" => {
            let tasks: Vec<_> = (0..arg(1).parse().unwrap_or(200))
                .map(|_| {
                    let (client, path) = (client.clone(), arg(0));
                    tokio::spawn(async move { client.fs_read(&path, 0, 16).await.map(|_| ()) })
                })
                .collect();
            let mut r = Vec::new();
            for t in tasks {
                r.push(t.await.unwrap_or(Ok(())));
            }
            tally("reads", r)
        }
        "seen" => seen().lock().unwrap_or_else(|p| p.into_inner()).join("\n"),
        "fs-write" => show(client.fs_write(&arg(0), arg(1).as_bytes(), false).await.map(|_| "written".into())),
        "fs-read" => show(client.fs_read(&arg(0), 0, 4096).await.map(|b| String::from_utf8_lossy(&b).into_owned())),
        "call" => show(client.call_module(&arg(0), "ping", arg(1).into_bytes()).await.map(|r| String::from_utf8_lossy(&r).into_owned())),
        // `callflood <module> <n>`: start n concurrent calls and return; the
        // outcomes are counted as they come (`callflood-result`).
        "callflood" => {
            let n: usize = arg(1).parse().unwrap_or(100);
            for _ in 0..n {
                let (client, target) = (client.clone(), arg(0));
                tokio::spawn(async move {
                    let key = match client.call_module(&target, "ping", vec![]).await {
                        Ok(_) => "ok".to_string(),
                        Err(e) => format!("{:?}", e.code()),
                    };
                    let mut counts = flood_counts().lock().unwrap_or_else(|p| p.into_inner());
                    *counts.entry(key).or_insert(0) += 1;
                });
            }
            format!("started {n}")
        }
        // Try to grow hostd's state on this module's behalf, one kind at a
        // time: "<kind> ok=<n> <code>=<n>" per kind.
        "regflood" => {
            let mut out = String::new();
            let mut r = Vec::new();
            for i in 0..1000 {
                r.push(client.register_rpc_endpoint(&format!("m{i}"), "d").await);
            }
            out += &tally("rpc", r);
            out += &tally("rpc-long-description", vec![client.register_rpc_endpoint("long", &"x".repeat(200_000)).await]);
            let mut r = Vec::new();
            for i in 0..1000 {
                r.push(client.register_module_api(&[&format!("a{i}")]).await);
            }
            out += &tally("api", r);
            let many: Vec<String> = (0..10_000).map(|i| format!("b{i}")).collect();
            let many: Vec<&str> = many.iter().map(String::as_str).collect();
            out += &tally("api-one-call", vec![client.register_module_api(&many).await]);
            let mut r = Vec::new();
            for i in 0..2000 {
                r.push(client.report_metric(&format!("g{i}"), 1.0, &[]).await);
            }
            out += &tally("metrics", r);
            let labels: Vec<(String, String)> = (0..100).map(|i| (format!("l{i}"), "v".into())).collect();
            let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            out += &tally("metric-labels", vec![client.report_metric("g0", 1.0, &labels).await]);
            let mut r = Vec::new();
            for i in 0..200 {
                r.push(client.storage_open_tree(&format!("t{i}")).await);
            }
            out += &tally("trees", r);
            out
        }
        "timer" => show(client.timer_create(arg(0).parse().unwrap_or(50), true).await.map(|id| id.to_string())),
        "cancel" => show(client.timer_cancel(arg(0).parse().unwrap_or(0)).await.map(|_| "cancelled".into())),
        "task" => show(client.schedule_task(arg(0).parse().unwrap_or(100), &arg(1)).await.map(|id| id.to_string())),
        "fired" => {
            let fired = fired().lock().unwrap_or_else(|p| p.into_inner());
            format!("ticks={} tasks={}", fired.0, fired.1.join(","))
        }
        "metric" => show(client.report_metric(&arg(0), arg(1).parse().unwrap_or(0.0), &[("unit", "test")]).await.map(|_| "reported".into())),
        "metrics" => show(client.get_metrics(None).await.map(|ms| {
            ms.iter().map(|m| format!("{} {} {} {:?}\n", m.module, m.name, m.value, m.labels)).collect()
        })),
        "rpc-register" => show(client.register_rpc_endpoint(&arg(0), "echoes its params").await.map(|_| "registered".into())),
        // Keep storage busy from now on: many writes in flight at once, so
        // hostd always has storage work of this module running.
        "churn" => {
            for w in 0..64u32 {
                let client = client.clone();
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while client.storage_put("default", format!("churn-{w}-{}", i % 16).as_bytes(), &[7; 4096]).await.is_ok() {
                        i += 1;
                    }
                });
            }
            "churning".into()
        }
        "callflood-result" => {
            let counts = flood_counts().lock().unwrap_or_else(|p| p.into_inner());
            counts.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
        }
        other => format!("unknown command {other}"),
    };
    Ok(out.into_bytes())
}
