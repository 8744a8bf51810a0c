//! Launch benchmark: interleaves, in one run,
//!   bare     fork+exec of the static payload (writes 1 byte to fd 3, exits);
//!   bwrap    bubblewrap: user, mount, pid, net, ipc, uts namespaces, a tmpfs
//!            root holding only the payload, and our ~150-rule seccomp allowlist;
//!   lean     `hostd-sandbox run` with full isolation: all namespaces, cgroup
//!            limits, Landlock, seccomp, capability drop, fd hygiene — the
//!            operator's run-under-policy command, a process per launch;
//!   hostd    the same command as `hostd sandbox run` (the daemon's binary,
//!            which also links RocksDB);
//!   cold     the same full policy through `sandbox::spawn` in this process
//!            (what the daemon's long-lived launcher pays for a first start);
//!   standby  the same again through `sandbox::Standbys` (what it pays to
//!            relaunch a module: namespaces, ids and cgroup made ahead, in
//!            idle time between launches; that time is printed separately).
//! Prints p50/p95 per launcher and each one's ratio to bwrap. Run as root:
//! `scripts/bench-launch.sh` (builds release first).

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sandbox::{CgroupRoot, KernelFeatures, Policy};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let breakdown_mode = args.first().is_some_and(|a| a == "breakdown");
    if breakdown_mode {
        args.remove(0);
    }
    let iterations: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(200);
    let dir = std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or_default();
    let payload = dir.join("hostd-payload");
    if breakdown_mode {
        breakdown(iterations, &payload);
        return;
    }
    let hostd = dir.join("hostd");
    let lean = dir.join("hostd-sandbox");
    for p in [&payload, &hostd, &lean] {
        if !p.exists() {
            eprintln!("{} missing: cargo build --release --workspace --bins", p.display());
            std::process::exit(2);
        }
    }
    let bwrap = which("bwrap");
    let work = std::env::temp_dir().join(format!("hostd-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap_or_else(|e| die(&format!("mkdir: {e}")));
    let policy = Policy { name: "bench".into(), ..Policy::default() };
    let policy_path = work.join("policy.json");
    std::fs::write(&policy_path, serde_json::to_string(&policy).unwrap_or_default()).unwrap_or_else(|e| die(&format!("{e}")));
    let bpf_path = work.join("seccomp.bpf");
    write_bpf(&policy, &bpf_path);

    let kernel = KernelFeatures::probe();
    let prepared = sandbox::prepare(&policy, &kernel).unwrap_or_else(|e| die(&e.to_string()));
    let cgroups = CgroupRoot::new(kernel.cgroup.clone()).unwrap_or_else(|e| die(&e.to_string()));
    // Like the daemon's long-lived launcher.
    let standbys = sandbox::Standbys::new(1);
    sandbox::clear_supplementary_groups().unwrap_or_else(|e| die(&e.to_string()));

    let mut bare = Vec::new();
    let mut bw = Vec::new();
    let mut hd = Vec::new();
    let mut ln = Vec::new();
    let mut cold = Vec::new();
    let mut standby = Vec::new();
    let mut warm_used = 0;
    let mut replenish = Vec::new();
    for i in 0..iterations + 10 {
        let warm = i < 10;
        let t = time(|| run_bare(&payload));
        if !warm {
            bare.push(t);
        }
        if let Some(b) = &bwrap {
            let t = time(|| run_bwrap(b, &payload, &bpf_path));
            if !warm {
                bw.push(t);
            }
        }
        let t = time(|| run_cli(&lean, &["run"], &policy_path, &payload));
        if !warm {
            ln.push(t);
        }
        let t = time(|| run_cli(&hostd, &["sandbox", "run"], &policy_path, &payload));
        if !warm {
            hd.push(t);
        }
        let t = time(|| run_spawn(&prepared, &cgroups, &payload, None));
        if !warm {
            cold.push(t);
        }
        let used_before = standbys.used();
        let t = time(|| run_spawn(&prepared, &cgroups, &payload, Some(&standbys)));
        if !warm {
            standby.push(t);
            warm_used += standbys.used() - used_before;
        }
        // What the daemon's launcher does when idle (timed separately).
        let t = Instant::now();
        standbys.replenish(Some(&cgroups));
        if !warm {
            replenish.push(t.elapsed());
        }
    }
    drop(standbys);
    let _ = std::fs::remove_dir_all(&work);
    println!("launch latency, {iterations} interleaved runs each (fork+exec+wait until the payload exits)");
    println!("{:<8} {:>10} {:>10} {:>12}", "launcher", "p50 ms", "p95 ms", "p50/bwrap");
    let bwrap_p50 = if bw.is_empty() { f64::NAN } else { pct(&bw, 50) };
    let rows = [("bare", &bare), ("bwrap", &bw), ("lean", &ln), ("hostd", &hd), ("cold", &cold), ("standby", &standby)];
    for (name, v) in rows {
        if !v.is_empty() {
            println!("{:<8} {:>10.3} {:>10.3} {:>12.2}", name, pct(v, 50), pct(v, 95), pct(v, 50) / bwrap_p50);
        }
    }
    println!(
        "standby row: {warm_used} of {iterations} launches went into a standby; making each one took p50 {:.3} ms of idle launcher time (untimed above)",
        pct(&replenish, 50)
    );
    if bw.is_empty() {
        println!("bwrap not installed (apt-get install bubblewrap): no ratio");
    } else {
        println!(
            "targets: lean p50 <= 0.70 x bwrap p50 ({:.2}); cold p50 <= 0.60 x ({:.2}); standby {:.2}",
            pct(&ln, 50) / bwrap_p50,
            pct(&cold, 50) / bwrap_p50,
            pct(&standby, 50) / bwrap_p50
        );
    }
}

/// `launch-bench breakdown N`: in-process spawn with one protection removed
/// at a time, to show where the launch time goes.
fn breakdown(iterations: usize, payload: &Path) {
    let kernel = KernelFeatures::probe();
    let cgroups = CgroupRoot::new(kernel.cgroup.clone()).unwrap_or_else(|e| die(&e.to_string()));
    sandbox::clear_supplementary_groups().unwrap_or_else(|e| die(&e.to_string()));
    let full = Policy { name: "bench".into(), ..Policy::default() };
    type Tweak = fn(&mut Policy);
    let variants: [(&str, Tweak); 8] = [
        ("full", |_| {}),
        ("-seccomp", |p| p.seccomp = None),
        ("-landlock", |p| p.landlock = None),
        ("-cgroup", |p| p.cgroup.enabled = false),
        ("-netns", |p| p.namespaces.net = false),
        ("-dev", |p| p.rootfs.dev = false),
        ("-proc", |p| p.rootfs.proc = false),
        ("-caps", |p| p.capabilities.drop_all = false),
    ];
    let prepared: Vec<_> = variants
        .iter()
        .map(|(name, tweak)| {
            let mut p = full.clone();
            tweak(&mut p);
            (*name, sandbox::prepare(&p, &kernel).unwrap_or_else(|e| die(&e.to_string())))
        })
        .collect();
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); prepared.len()];
    for i in 0..iterations + 10 {
        for (j, (_, p)) in prepared.iter().enumerate() {
            let t = time(|| run_spawn(p, &cgroups, payload, None));
            if i >= 10 {
                times[j].push(t);
            }
        }
    }
    let base = pct(&times[0], 50);
    println!("in-process cold spawn, one protection removed at a time, {iterations} interleaved runs");
    println!("{:<10} {:>10} {:>10} {:>12}", "variant", "p50 ms", "p95 ms", "saves ms");
    for ((name, _), t) in prepared.iter().zip(&times) {
        println!("{:<10} {:>10.3} {:>10.3} {:>12.3}", name, pct(t, 50), pct(t, 95), base - pct(t, 50));
    }
}

fn die(msg: &str) -> ! {
    eprintln!("launch-bench: {msg}");
    std::process::exit(1)
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var("PATH").ok()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.exists())
}

fn time(f: impl FnOnce() -> bool) -> Duration {
    let t = Instant::now();
    if !f() {
        die("a launch failed (run as root; see stderr)");
    }
    t.elapsed()
}

fn pct(v: &[Duration], p: usize) -> f64 {
    let mut ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    ms[((ms.len() - 1) * p) / 100]
}

/// The same program hostd installs, as raw sock_filter bytes for bwrap
/// --seccomp, plus `execve` (bwrap execs by path after installing it).
fn write_bpf(policy: &Policy, path: &Path) {
    let mut seccomp = policy.seccomp.clone().unwrap_or_else(sandbox::seccomp::SeccompPolicy::baseline);
    seccomp.rules.push(sandbox::seccomp::SyscallRule { syscall: "execve".into(), why: "bwrap's own exec".into(), args: vec![] });
    let prog = seccomp.compile().unwrap_or_else(|e| die(&e));
    let mut bytes = Vec::new();
    for ins in &prog {
        bytes.extend_from_slice(&ins.code.to_ne_bytes());
        bytes.push(ins.jt);
        bytes.push(ins.jf);
        bytes.extend_from_slice(&ins.k.to_ne_bytes());
    }
    std::fs::write(path, bytes).unwrap_or_else(|e| die(&format!("{e}")));
}

/// Run `cmd` with one end of a socketpair as fd 3; true if it exited 0 and wrote the byte.
fn with_fd3(mut cmd: Command, extra: Option<(i32, OwnedFd)>) -> bool {
    let Ok((host, module)) = UnixStream::pair() else { return false };
    let module_fd = module.as_raw_fd();
    let extra_fd = extra.as_ref().map(|(n, f)| (*n, f.as_raw_fd()));
    // SAFETY: dup2 in the pre-exec child is async-signal-safe.
    unsafe {
        // The extra fd first: its source may itself sit at fd 3.
        cmd.pre_exec(move || {
            if let Some((n, f)) = extra_fd {
                libc::dup2(f, n);
            }
            libc::dup2(module_fd, 3);
            Ok(())
        });
    }
    let ok = cmd.stdin(Stdio::null()).status().map(|s| s.success()).unwrap_or(false);
    drop(module);
    let mut b = [0u8; 1];
    ok && (&host).peek_byte(&mut b)
}

trait PeekByte {
    fn peek_byte(self, b: &mut [u8; 1]) -> bool;
}

impl PeekByte for &UnixStream {
    fn peek_byte(self, b: &mut [u8; 1]) -> bool {
        // SAFETY: non-blocking one-byte read into a local.
        unsafe { libc::recv(self.as_raw_fd(), b.as_mut_ptr().cast(), 1, libc::MSG_DONTWAIT) == 1 }
    }
}

fn run_bare(payload: &Path) -> bool {
    with_fd3(Command::new(payload), None)
}

fn run_bwrap(bwrap: &Path, payload: &Path, bpf: &Path) -> bool {
    let Ok(f) = std::fs::File::open(bpf) else { return false };
    let mut cmd = Command::new(bwrap);
    cmd.args(["--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--die-with-parent"])
        .args(["--tmpfs", "/", "--ro-bind"])
        .arg(payload)
        .args(["/payload", "--seccomp", "10", "--", "/payload"]);
    with_fd3(cmd, Some((10, OwnedFd::from(f))))
}

/// `<binary> <subcommand…> --ipc --policy <policy> -- <payload>`.
fn run_cli(binary: &Path, subcommand: &[&str], policy: &Path, payload: &Path) -> bool {
    // The command hands the sandbox its own socketpair as fd 3 (--ipc); the
    // payload exits non-zero if that write fails.
    Command::new(binary)
        .args(subcommand)
        .args(["--ipc", "--policy"])
        .arg(policy)
        .arg("--")
        .arg(payload)
        .stdin(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn run_spawn(prepared: &sandbox::Prepared, cgroups: &CgroupRoot, payload: &Path, standbys: Option<&sandbox::Standbys>) -> bool {
    let Ok(mut cmd) = sandbox::Command::from_path(payload, &[]) else { return false };
    let Ok((host, module)) = UnixStream::pair() else { return false };
    cmd.ipc = Some(OwnedFd::from(module));
    let spawned = match standbys {
        Some(s) => s.spawn(prepared, Some(cgroups), cmd),
        None => sandbox::spawn(prepared, Some(cgroups), cmd),
    };
    let Ok(mut child) = spawned else { return false };
    let ok = matches!(child.wait(), Ok(sandbox::Outcome::Exited { code: 0 }));
    drop(child);
    let mut b = [0u8; 1];
    ok && (&host).peek_byte(&mut b)
}

