//! IPC fuzzing: generated frames, thrown at the frame decoder directly and
//! at a live hostd connection by a sandboxed module (`t-fuzz`, a role of
//! the test module).
//!
//! Frames are mostly well framed with hostile contents — every request
//! kind with random names, paths, sizes, ids and counts, log records,
//! unsolicited invocation results — because those reach the most code;
//! each module life ends with one frame hostd must refuse (mutated body,
//! a length past the limit, a truncated frame, garbage, a second
//! handshake), after which hostd closes the connection and restarts the
//! module. The decoder pass mutates most frames (bit flips, truncation,
//! splices, random headers) and feeds them in random chunk sizes.

use crate::daemon_env::HostdEnv;
use crate::rss_kib;
use hostd_protocol::{self as proto, BatchOp, EventType, FrameBuf, HealthStatus, LogLevel, LogRecord, ModuleMessage, Request};
use std::time::{Duration, Instant};

/// xorshift64*: small, fast, and reproducible from a printed seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A length that is usually small and sometimes large.
    fn len(&mut self) -> usize {
        match self.below(10) {
            0..=6 => self.below(16) as usize,
            7 | 8 => self.below(1024) as usize,
            _ => self.below(64 << 10) as usize,
        }
    }

    fn bytes(&mut self) -> Vec<u8> {
        let n = self.len();
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    /// Names and paths as an attacker writes them.
    fn string(&mut self) -> String {
        const PIECES: [&str; 12] = ["default", "..", "/", "t-good", "ping", "\0", "é", "%n", "files", "../../etc/passwd", " ", "__meta"];
        match self.below(4) {
            0 => String::new(),
            1 => PIECES[self.below(PIECES.len() as u64) as usize].to_string(),
            2 => (0..self.below(4)).map(|_| PIECES[self.below(PIECES.len() as u64) as usize]).collect(),
            _ => String::from_utf8_lossy(&self.bytes()).into_owned(),
        }
    }

    fn u64(&mut self) -> u64 {
        match self.below(4) {
            0 => 0,
            1 => u64::MAX - self.below(2),
            2 => self.below(100),
            _ => self.next_u64(),
        }
    }

    fn hash(&mut self) -> [u8; 32] {
        let mut h = [0u8; 32];
        h.iter_mut().for_each(|b| *b = self.next_u64() as u8);
        h
    }

    fn event_type(&mut self) -> EventType {
        EventType::ALL[self.below(EventType::ALL.len() as u64) as usize]
    }
}

/// One request of a random kind with random arguments.
pub fn request(r: &mut Rng) -> Request {
    use Request as Q;
    let types = |r: &mut Rng| (0..r.below(6)).map(|_| r.event_type()).collect::<Vec<_>>();
    match r.below(48) {
        0 => Q::ReportHealth { status: [HealthStatus::Healthy, HealthStatus::Degraded, HealthStatus::Unhealthy][r.below(3) as usize], detail: r.string() },
        1 => Q::RegisterCliSpec {
            spec: proto::CliSpec {
                about: r.string(),
                commands: (0..r.below(5))
                    .map(|_| proto::CliCommand { name: r.string(), about: r.string(), args: Vec::new() })
                    .collect(),
            },
        },
        2 => Q::GetBlock { hash: r.hash() },
        3 => Q::GetBlockHeader { hash: r.hash() },
        4 => Q::GetTransaction { txid: r.hash() },
        5 => Q::HasTransaction { txid: r.hash() },
        6 => Q::GetUtxo { txid: r.hash(), vout: r.next_u64() as u32 },
        7 => Q::GetChainTip,
        8 => Q::GetBlockHeight,
        9 => Q::GetChainInfo,
        10 => Q::SubscribeEvents { types: types(r) },
        11 => Q::UnsubscribeEvents { types: types(r) },
        12 => Q::SendTransaction { raw: r.bytes() },
        13 => Q::GetMempoolTransactions,
        14 => Q::GetMempoolTransaction { txid: r.hash() },
        15 => Q::GetMempoolSize,
        16 => Q::GetFeeEstimate { target_blocks: r.next_u64() as u32 },
        17 => Q::GetNetworkStats,
        18 => Q::GetNetworkPeers,
        19 => Q::SendMeshPacket { peer: r.bytes(), payload: r.bytes() },
        20 => Q::GetLightningNodeUrl,
        21 => Q::GetLightningInfo,
        22 => Q::GetPaymentState { payment_id: r.string() },
        23 => Q::StorageGet { tree: r.string(), key: r.bytes() },
        24 => Q::StorageIterPrefix { tree: r.string(), prefix: r.bytes(), limit: r.next_u64() as u32 },
        // Writes sync to disk: rarer, and small, so a run is about parsing
        // and dispatch rather than fsync.
        25 if r.chance(10) => Q::StoragePut { tree: r.string(), key: r.bytes(), value: r.bytes() },
        26 if r.chance(10) => Q::StorageDelete { tree: r.string(), key: r.bytes() },
        27 if r.chance(10) => Q::StorageBatch {
            tree: r.string(),
            ops: (0..r.below(8)).map(|_| if r.chance(50) { BatchOp::Put { key: r.bytes(), value: r.bytes() } } else { BatchOp::Delete { key: r.bytes() } }).collect(),
        },
        28 if r.chance(10) => Q::StorageOpenTree { tree: r.string() },
        29 if r.chance(10) => Q::StorageDropTree { tree: r.string() },
        30 => Q::StorageQuota,
        31 => Q::FsRead { path: r.string(), offset: r.u64(), len: r.next_u64() as u32 },
        32 if r.chance(10) => Q::FsWrite { path: r.string(), data: r.bytes(), append: r.chance(50) },
        33 => Q::FsDelete { path: r.string() },
        34 => Q::FsMkdir { path: r.string() },
        35 => Q::RegisterRpcEndpoint { method: r.string(), description: r.string() },
        36 => Q::UnregisterRpcEndpoint { method: r.string() },
        37 => Q::TimerCreate { interval_ms: r.u64(), repeat: r.chance(50) },
        38 => Q::TimerCancel { timer_id: r.u64() },
        39 => Q::ScheduleTask { delay_ms: r.u64(), task: r.string() },
        40 => Q::ReportMetric { name: r.string(), value: f64::from_bits(r.next_u64()), labels: (0..r.below(4)).map(|_| (r.string(), r.string())).collect() },
        41 => Q::GetMetrics { module: r.chance(50).then(|| r.string()) },
        42 => Q::DiscoverModules,
        43 => Q::GetModuleInfo { name: r.string() },
        44 => Q::PublishEvent { event_type: r.event_type(), data: r.bytes() },
        45 => Q::CallModule { module: r.string(), method: r.string(), params: r.bytes() },
        46 => Q::RegisterModuleApi { methods: (0..r.below(6)).map(|_| r.string()).collect() },
        47 => Q::UnregisterModuleApi,
        _ => Q::SubmitBlock { raw: r.bytes() },
    }
}

/// One well-framed message with hostile contents.
pub fn message(r: &mut Rng) -> ModuleMessage {
    match r.below(100) {
        0..=89 => ModuleMessage::Request { id: if r.chance(20) { r.below(4) } else { r.next_u64() }, request: request(r) },
        90..=95 => ModuleMessage::Log(LogRecord {
            level: [LogLevel::Trace, LogLevel::Debug, LogLevel::Info, LogLevel::Warn, LogLevel::Error][r.below(5) as usize],
            target: r.string(),
            message: r.string(),
            fields: (0..r.below(4)).map(|_| (r.string(), r.string())).collect(),
        }),
        _ => ModuleMessage::InvocationResult {
            id: r.u64(),
            result: if r.chance(50) { Ok(r.bytes()) } else { Err(proto::ErrorBody::new(proto::ErrorCode::Internal, r.string())) },
        },
    }
}

pub fn frame(r: &mut Rng, max_frame: u32) -> Vec<u8> {
    // A message too large for a frame is itself an interesting input: keep
    // its encoding with a header that says so.
    proto::encode(&message(r), max_frame).unwrap_or_else(|_| (max_frame + 1).to_le_bytes().to_vec())
}

/// The frame that ends a module's life: something hostd must refuse.
pub fn terminal(r: &mut Rng, max_frame: u32, name: &str) -> (&'static str, Vec<u8>) {
    let mut f = frame(r, max_frame);
    match r.below(6) {
        0 => {
            let body = f.len() - proto::FRAME_HEADER;
            for _ in 0..=r.below(4) {
                let i = proto::FRAME_HEADER + r.below(body.max(1) as u64) as usize;
                if let Some(b) = f.get_mut(i) {
                    *b ^= 1 << r.below(8);
                }
            }
            // A flip can leave it valid; make the first byte an unknown variant.
            if let Some(b) = f.get_mut(proto::FRAME_HEADER) {
                *b = 0xfb;
            }
            ("mutated body", f)
        }
        1 => ("length past the limit", (max_frame + 1 + r.below(1 << 20) as u32).to_le_bytes().to_vec()),
        2 => {
            f.truncate(proto::FRAME_HEADER + r.below((f.len() - proto::FRAME_HEADER) as u64) as usize);
            ("truncated frame", f)
        }
        3 => ("garbage", (0..r.below(256) + 5).map(|_| r.next_u64() as u8).collect()),
        4 => {
            let hello = proto::Hello { name: name.into(), version: "1.0.0".into(), protocol_min: 1, protocol_max: 1 };
            ("second handshake", proto::encode(&ModuleMessage::Hello(hello), max_frame).unwrap_or_default())
        }
        _ => ("zero-length frame", vec![0, 0, 0, 0]),
    }
}

/// Corrupt a frame for the decoder pass.
pub fn mutate(r: &mut Rng, mut f: Vec<u8>, other: &[u8]) -> Vec<u8> {
    match r.below(5) {
        0 => {
            for _ in 0..=r.below(8) {
                let i = r.below(f.len().max(1) as u64) as usize;
                if let Some(b) = f.get_mut(i) {
                    *b ^= 1 << r.below(8);
                }
            }
        }
        1 => f.truncate(r.below(f.len() as u64 + 1) as usize),
        2 => {
            let cut = r.below(f.len() as u64 + 1) as usize;
            f.truncate(cut);
            f.extend_from_slice(&other[r.below(other.len() as u64 + 1) as usize..]);
        }
        3 => {
            let n = r.next_u64() as u32;
            f.splice(0..proto::FRAME_HEADER.min(f.len()), n.to_le_bytes());
        }
        _ => f = (0..r.below(64)).map(|_| r.next_u64() as u8).collect(),
    }
    f
}

#[derive(Debug, Default)]
pub struct DecoderReport {
    pub frames: u64,
    pub decoded: u64,
    pub refused: u64,
    pub secs: f64,
    /// Panics, with the seed and frame index that reproduce them.
    pub findings: Vec<String>,
}

/// Feed `frames` generated frames (70% mutated) to a `FrameBuf` in random
/// chunk sizes, as hostd's reader does; a refused frame resets the buffer,
/// as hostd closes that connection.
pub fn fuzz_decoder(frames: u64, seed: u64) -> DecoderReport {
    let mut r = Rng::new(seed);
    let max = proto::DEFAULT_MAX_FRAME;
    let mut rep = DecoderReport { frames, ..DecoderReport::default() };
    let mut buf = FrameBuf::new(max);
    let mut previous = Vec::new();
    let t = Instant::now();
    for i in 0..frames {
        let good = frame(&mut r, max);
        let f = if r.chance(70) { mutate(&mut r, good.clone(), &previous) } else { good.clone() };
        previous = good;
        let chunk = 1 + r.below(f.len().max(1) as u64) as usize;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let (mut ok, mut refused) = (0, 0);
            for piece in f.chunks(chunk) {
                buf.push(piece);
                loop {
                    match buf.next_message::<ModuleMessage>() {
                        Ok(Some(_)) => ok += 1,
                        Ok(None) => break,
                        Err(_) => {
                            refused += 1;
                            buf = FrameBuf::new(max);
                            break;
                        }
                    }
                }
            }
            (ok, refused)
        }));
        match outcome {
            Ok((ok, refused)) => {
                rep.decoded += ok;
                rep.refused += refused;
            }
            Err(_) => {
                rep.findings.push(format!("decoder panicked: seed {seed}, frame {i}"));
                buf = FrameBuf::new(max);
            }
        }
    }
    rep.secs = t.elapsed().as_secs_f64();
    rep
}

#[derive(Debug, Default)]
pub struct DaemonReport {
    pub frames: u64,
    pub lives: u64,
    pub secs: f64,
    pub endings: std::collections::BTreeMap<String, u64>,
    pub max_rss_kib: u64,
    pub max_fds: u64,
    pub bystander_checks: u64,
    pub findings: Vec<String>,
    log_findings: Vec<String>,
}

fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count() as u64).unwrap_or(0)
}

/// Throw at least `frames` frames at a live hostd from the sandboxed
/// `t-fuzz`, `per_life` per connection, within `limit`; a bystander pair
/// must answer every two seconds, and hostd must stay up.
pub fn fuzz_daemon(frames: u64, per_life: u64, limit: Duration) -> DaemonReport {
    // The rate limit would make this a test of the rate limit; restarts
    // must be quick and never "a crash loop".
    let daemon = "\n[limits]\nrequests_per_sec = 100000000\nrequest_burst = 100000000";
    let restart = "backoff_initial_ms = 1\nbackoff_max_ms = 5\nmax_restarts = 100000000\nwindow_secs = 1\n";
    let mut env = HostdEnv::with_restart("fuzz", daemon, restart);
    let everything = [
        "read_blockchain", "read_utxo", "read_chain_state", "subscribe_events", "send_transactions", "read_mempool", "read_network",
        "network_access", "read_lightning", "read_payment", "read_storage", "write_storage", "manage_storage", "read_filesystem",
        "write_filesystem", "manage_filesystem", "register_rpc_endpoint", "manage_timers", "report_metrics", "read_metrics",
        "discover_modules", "publish_events", "call_module", "register_module_api",
    ];
    env.install_testmod("t-fuzz", &everything, "");
    std::fs::write(env.modules_dir().join("t-fuzz/config.toml"), format!("frames = {per_life}\n")).expect("fuzz config");
    env.install_bystander();
    env.start();
    env.wait_bystander();
    let pid = env.pid().expect("hostd pid");
    let mut rep = DaemonReport::default();
    let t = Instant::now();
    let mut next_check = Instant::now();
    let mut log_read = 0u64;
    while rep.frames < frames && t.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(200));
        if unsafe { libc::kill(pid as i32, 0) } != 0 {
            rep.findings.push(format!("hostd (pid {pid}) is gone:\n{}", env.log()));
            break;
        }
        rep.max_rss_kib = rep.max_rss_kib.max(rss_kib(pid));
        rep.max_fds = rep.max_fds.max(fds(pid));
        if Instant::now() >= next_check {
            let word = format!("check-{}", rep.bystander_checks);
            let out = env.ctl(&["module", "t-caller", "call", "t-good", &word]);
            let got = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if got != format!("pong to t-caller: {word}") {
                rep.findings.push(format!("bystander did not answer: {got:?} {}", String::from_utf8_lossy(&out.stderr)));
            }
            rep.bystander_checks += 1;
            next_check = Instant::now() + Duration::from_secs(2);
        }
        // Only what the log gained since the last look: it grows by up to
        // the output budget (200 lines/s of up to 4 KiB) for the whole run.
        let (text, end) = log_since(&env, log_read);
        log_read = end;
        tally(&text, &mut rep);
    }
    rep.secs = t.elapsed().as_secs_f64();
    let (text, _) = log_since(&env, log_read);
    tally(&text, &mut rep);
    rep.findings.extend(std::mem::take(&mut rep.log_findings));
    rep
}

/// hostd's log from byte `from` to its end (lossy: module text is random).
fn log_since(env: &HostdEnv, from: u64) -> (String, u64) {
    use std::io::{Read, Seek};
    let Ok(mut f) = std::fs::File::open(env.scratch.0.join("hostd.log")) else { return (String::new(), from) };
    let mut bytes = Vec::new();
    if f.seek(std::io::SeekFrom::Start(from)).is_err() || f.read_to_end(&mut bytes).is_err() {
        return (String::new(), from);
    }
    // Stop at the last whole line; the rest is read next time.
    let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    (String::from_utf8_lossy(&bytes[..whole]).into_owned(), from + whole as u64)
}

/// Add up the `fuzz: seed S sent N frames, ending with E` lines t-fuzz
/// wrote, and note every panic in a hostd task (it does not take hostd
/// down, but it is a bug) or a connection hostd kept open after a refused
/// frame (the module's FINDING line).
fn tally(log: &str, rep: &mut DaemonReport) {
    for line in log.lines() {
        if line.contains("panicked") || line.contains("FINDING") {
            rep.log_findings.push(line.chars().take(400).collect());
            continue;
        }
        if !line.contains("fuzz: seed") {
            continue;
        }
        let Some(rest) = line.split(" sent ").nth(1) else { continue };
        rep.frames += rest.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
        rep.lives += 1;
        if let Some(e) = rest.split("ending with ").nth(1) {
            let e: String = e.chars().take_while(|c| c.is_ascii_alphabetic() || *c == ' ' || *c == '-').collect();
            *rep.endings.entry(e.trim().to_string()).or_insert(0) += 1;
        }
    }
}
