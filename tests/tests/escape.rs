//! The escape suite: every row performs one attack inside a real sandbox and
//! asserts the exact outcome, plus a control run (unconfined, or with the
//! protections under test removed) that must show the attack working, so no
//! row can pass vacuously. `each_protection_is_load_bearing` then removes one
//! protection at a time and requires at least one row to change.

use std::ffi::OsString;
use std::io::Read;
use std::os::linux::net::SocketAddrExt;
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use hostd_tests::{
    policy_with_data, require_daemon, require_privileged, run_sandboxed, run_sandboxed_by, run_unconfined, Run, Scratch, Seen,
    SANDBOX_UID,
};
use sandbox::policy::{CpuMax, FsAccess, FsRule};
use sandbox::Policy;

/// Ways a row may expect a run to end.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Ok,
    Errno(&'static str),
    Denied,
    Signal(i32),
    SeccompKill,
    OomKilled,
    /// The syscall ran and answered (any result line): for controls of
    /// attacks that even root may not complete harmlessly.
    Reached,
}

impl Expect {
    fn matches(&self, seen: &Seen) -> bool {
        match (self, seen) {
            (Expect::Ok, Seen::Ok) | (Expect::Denied, Seen::Denied) => true,
            (Expect::SeccompKill, Seen::SeccompKill) | (Expect::OomKilled, Seen::OomKilled) => true,
            (Expect::Errno(e), Seen::Errno(s)) => e == s,
            (Expect::Signal(a), Seen::Signal(b)) => a == b,
            (Expect::Reached, Seen::Ok | Seen::Errno(_)) => true,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protection {
    Seccomp,
    Landlock,
    Capabilities,
    PidNamespace,
    NetNamespace,
    UtsNamespace,
    IpcNamespace,
    ReadOnlyRoot,
    NoExecData,
    PidsLimit,
    MemoryLimit,
    CpuLimit,
    NofileLimit,
    FsizeLimit,
}

fn remove(policy: &mut Policy, p: Protection) {
    match p {
        Protection::Seccomp => policy.seccomp = None,
        Protection::Landlock => policy.landlock = None,
        Protection::Capabilities => policy.capabilities.drop_all = false,
        Protection::PidNamespace => {
            policy.namespaces.pid = false;
            // procfs may only be mounted by the owner of the pid namespace.
            policy.rootfs.proc = false;
        }
        Protection::NetNamespace => policy.namespaces.net = false,
        Protection::UtsNamespace => policy.namespaces.uts = false,
        Protection::IpcNamespace => policy.namespaces.ipc = false,
        Protection::ReadOnlyRoot => policy.rootfs.writable_root = true,
        Protection::NoExecData => {
            if let Some(d) = policy.rootfs.data.as_mut() {
                d.allow_exec = true
            }
        }
        Protection::PidsLimit => policy.cgroup.pids_max = None,
        Protection::MemoryLimit => policy.cgroup.memory_max = None,
        Protection::CpuLimit => policy.cgroup.cpu_max = None,
        Protection::NofileLimit => policy.rlimits.nofile = None,
        Protection::FsizeLimit => policy.rlimits.fsize = None,
    }
}

#[derive(Debug, Clone, Copy)]
enum Control {
    Unconfined(Expect),
    Without(&'static [Protection], Expect),
}

/// Host-side fixtures the attacks aim at.
struct Env {
    /// Owns (and removes on drop) the data directories below.
    _scratch: Scratch,
    data: PathBuf,
    other_data: PathBuf,
    victim: Child,
    other_sandbox: Child,
    other_sandbox_pid: i32,
    tcp: TcpListener,
    abstract_name: String,
    _abstract: UnixListener,
    hostname: String,
}

impl Env {
    /// Accept whatever the unconfined controls' connects left queued on the
    /// loopback listener.
    fn drain_listener(&self) {
        self.tcp.set_nonblocking(true).ok();
        while self.tcp.accept().is_ok() {}
    }

    fn new() -> Env {
        let scratch = Scratch::new("escape");
        let data = scratch.owned_dir("data");
        let other_data = scratch.owned_dir("other-data");
        std::fs::write(other_data.join("secret"), "other module's data").unwrap_or_else(|e| panic!("{e}"));
        let victim = Command::new("sleep").arg("300").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap_or_else(|e| panic!("spawn victim: {e}"));
        // A second sandbox (as another module would be) for cross-sandbox attacks.
        let (other_sandbox, other_sandbox_pid) = start_other_sandbox(&other_data);
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let abstract_name = format!("hostd-escape-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let abs = UnixListener::bind_addr(&addr).unwrap_or_else(|e| panic!("bind abstract: {e}"));
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string();
        Env { _scratch: scratch, data, other_data, victim, other_sandbox, other_sandbox_pid, tcp, abstract_name, _abstract: abs, hostname }
    }

    fn policy(&self) -> Policy {
        let mut p = policy_with_data("escape", SANDBOX_UID, &self.data);
        if let Some(ll) = p.landlock.as_mut() {
            ll.rules.push(FsRule {
                path: "/data".into(),
                access: vec![
                    FsAccess::ReadFile,
                    FsAccess::ReadDir,
                    FsAccess::WriteFile,
                    FsAccess::Truncate,
                    FsAccess::MakeReg,
                    FsAccess::MakeDir,
                    FsAccess::RemoveFile,
                    FsAccess::RemoveDir,
                ],
            });
        }
        p.cgroup.memory_max = Some(64 << 20);
        p.cgroup.pids_max = Some(16);
        p.cgroup.cpu_max = Some(CpuMax { quota_us: 10_000, period_us: 100_000 });
        p.rlimits.nofile = Some(64);
        p.rlimits.fsize = Some(16 << 20);
        p
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.victim.kill();
        let _ = self.victim.wait();
        // SIGTERM lets the launcher tear down its sandbox and cgroup.
        // SAFETY: signalling the launcher we started.
        unsafe { libc::kill(self.other_sandbox.id() as i32, libc::SIGTERM) };
        let _ = self.other_sandbox.wait();
    }
}

fn start_other_sandbox(data: &std::path::Path) -> (Child, i32) {
    sleeping_sandbox(&policy_with_data("other", SANDBOX_UID + 1, data), &[])
}

/// `hostd-sandbox run [options] --policy <policy> -- probe sleep`: a
/// launcher whose sandbox stays up; returns it and the sandbox's host pid.
fn sleeping_sandbox(policy: &Policy, options: &[&str]) -> (Child, i32) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let file = std::env::temp_dir().join(format!("hostd-sleeper-{}-{}.json", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&file, serde_json::to_string(policy).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new(hostd_tests::sandbox_bin())
        .arg("run")
        .args(options)
        .arg("--policy")
        .arg(&file)
        .arg("--")
        .arg(hostd_tests::probe_bin())
        .args(["sleep", "300000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn a sleeping sandbox: {e}"));
    let pid = wait_for_sandboxed_child(child.id() as i32);
    let _ = std::fs::remove_file(&file);
    (child, pid)
}

/// The host pid of the sandbox init started by launcher `launcher`.
fn wait_for_sandboxed_child(launcher: i32) -> i32 {
    for _ in 0..500 {
        let children = std::fs::read_to_string(format!("/proc/{launcher}/task/{launcher}/children")).unwrap_or_default();
        if let Some(pid) = children.split_whitespace().next().and_then(|p| p.parse().ok()) {
            // Wait until it has exec'd the probe (its comm changes from hostd).
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "hostd-probe" {
                return pid;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("launcher {launcher} never started its sandbox");
}

struct Case {
    name: &'static str,
    args: fn(&Env) -> Vec<String>,
    tweak: fn(&mut Policy),
    expect: Expect,
    control: Control,
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn none(_: &mut Policy) {}

/// `execveat` is only allowed on fd 1023, which needs RLIMIT_NOFILE > 1023.
fn nofile_1024(p: &mut Policy) {
    p.rlimits.nofile = Some(1024);
}

const UNSAFE_FOR_HOST: &[Protection] = &[Protection::Seccomp];
const MOUNT_CONTROL: &[Protection] = &[Protection::Seccomp, Protection::Landlock, Protection::Capabilities];

macro_rules! case {
    ($name:literal, $args:expr, $expect:expr, $control:expr) => {
        Case { name: $name, args: $args, tweak: none, expect: $expect, control: $control }
    };
    ($name:literal, $args:expr, $tweak:expr, $expect:expr, $control:expr) => {
        Case { name: $name, args: $args, tweak: $tweak, expect: $expect, control: $control }
    };
}

fn cases() -> Vec<Case> {
    use Control::{Unconfined, Without};
    use Expect::*;
    use Protection as P;
    vec![
        // --- host filesystem ---
        case!("read /etc/shadow", |_| s(&["read_path", "/etc/shadow"]), Errno("ENOENT"), Unconfined(Ok)),
        case!("read /proc/1/root/etc/shadow", |_| s(&["read_path", "/proc/1/root/etc/shadow"]), Errno("ENOENT"), Unconfined(Reached)),
        case!("read a host process's /proc/<pid>/root", |e| vec!["read_path".into(), format!("/proc/{}/root/etc/shadow", e.victim.id())], Errno("ENOENT"), Unconfined(Ok)),
        case!("open_by_handle_at (shocker)", |_| s(&["open_by_handle_at"]), SeccompKill, Unconfined(Ok)),
        case!("write to the root", |_| s(&["create_file", "/pwned"]), Errno("EROFS"), Without(&[P::ReadOnlyRoot, P::Landlock], Ok)),
        case!("list the root dir", |_| s(&["list_dir", "/"]), Errno("EACCES"), Without(&[P::Landlock], Ok)),
        case!("write in the data dir (must work)", |_| s(&["write_file", "/data/ok"]), Ok, Without(&[P::Landlock], Ok)),
        case!("exec a file written to the data dir", |_| s(&["exec_copy_in", "/data"]), nofile_1024, Errno("EACCES"), Without(&[P::NoExecData, P::Landlock], Ok)),
        case!("memfd_create + execveat", |_| s(&["memfd_exec"]), SeccompKill, Unconfined(Ok)),
        case!("execve", |_| s(&["execve_self"]), SeccompKill, Unconfined(Ok)),
        case!("read another sandbox's data dir", |e| vec!["read_path".into(), e.other_data.join("secret").display().to_string()], Errno("ENOENT"), Unconfined(Ok)),
        // --- mounts and namespaces ---
        case!("mount", |_| s(&["mount_tmpfs", "/dev"]), SeccompKill, Without(MOUNT_CONTROL, Ok)),
        case!("umount", |_| s(&["umount", "/proc"]), SeccompKill, Without(MOUNT_CONTROL, Ok)),
        case!("pivot_root", |_| s(&["pivot_root"]), SeccompKill, Without(MOUNT_CONTROL, Reached)),
        case!("chroot", |_| s(&["chroot"]), SeccompKill, Without(MOUNT_CONTROL, Ok)),
        case!("unshare(CLONE_NEWUSER)", |_| s(&["unshare_user"]), SeccompKill, Without(&[P::Seccomp], Ok)),
        case!("unshare(CLONE_NEWNS)", |_| s(&["unshare_mount"]), SeccompKill, Without(&[P::Seccomp, P::Capabilities], Ok)),
        case!("setns", |_| s(&["setns_net"]), SeccompKill, Without(&[P::Seccomp, P::Capabilities], Reached)),
        case!("clone(CLONE_NEWUSER)", |_| s(&["clone_newuser"]), SeccompKill, Without(&[P::Seccomp], Ok)),
        case!("clone3(CLONE_NEWUSER)", |_| s(&["clone3_newuser"]), Errno("ENOSYS"), Without(&[P::Seccomp], Ok)),
        case!("in the host user namespace", |_| s(&["uid_map_is_host"]), Denied, Unconfined(Ok)),
        case!("sees host pids", |_| s(&["pid_is_host"]), Denied, Unconfined(Ok)),
        case!("has the host hostname", |e| vec!["hostname_is".into(), e.hostname.clone()], Denied, Unconfined(Ok)),
        case!("sees host network interfaces", |_| s(&["net_has_interfaces"]), Denied, Unconfined(Ok)),
        // --- credentials, environment, fds ---
        case!("any capability", |_| s(&["status_caps"]), Denied, Unconfined(Ok)),
        case!("NoNewPrivs off", |_| s(&["status_no_new_privs_off"]), Denied, Unconfined(Ok)),
        case!("seccomp off", |_| s(&["status_seccomp_off"]), Denied, Unconfined(Ok)),
        case!("supplementary groups", |_| s(&["status_groups"]), Denied, Unconfined(Ok)),
        case!("host environment visible", |_| s(&["env_has", "HOSTD_TEST_SECRET"]), Denied, Unconfined(Ok)),
        case!("fds other than 0-3", |_| s(&["extra_fds"]), Denied, Unconfined(Ok)),
        // --- other processes ---
        case!("ptrace a host process", |e| vec!["ptrace_attach".into(), e.victim.id().to_string()], SeccompKill, Unconfined(Ok)),
        case!("process_vm_readv", |e| vec!["process_vm_readv".into(), e.victim.id().to_string()], SeccompKill, Unconfined(Ok)),
        case!("pidfd_getfd", |e| vec!["pidfd_getfd".into(), e.victim.id().to_string()], SeccompKill, Unconfined(Ok)),
        case!("signal a host process", |e| vec!["kill".into(), e.victim.id().to_string()], Errno("ESRCH"), Unconfined(Ok)),
        case!("signal another sandbox", |e| vec!["kill".into(), e.other_sandbox_pid.to_string()], Errno("ESRCH"), Unconfined(Ok)),
        // --- resources ---
        case!("fork bomb", |_| s(&["fork_bomb", "64"]), Errno("EAGAIN"), Without(&[P::PidsLimit], Ok)),
        case!("memory bomb", |_| s(&["memory_bomb", "256"]), OomKilled, Without(&[P::MemoryLimit], Ok)),
        case!("cpu spin", |_| s(&["cpu_spin", "400"]), Denied, Without(&[P::CpuLimit], Ok)),
        case!("fd exhaustion", |_| s(&["open_many", "200"]), Errno("EMFILE"), Without(&[P::NofileLimit], Ok)),
        case!("file size limit", |_| s(&["write_big", "/data/big", "32"]), Signal(libc::SIGXFSZ), Without(&[P::FsizeLimit], Ok)),
        // --- syscall ABI tricks ---
        case!("i386 int 0x80", |_| s(&["int80_getpid"]), SeccompKill, Unconfined(Ok)),
        case!("x32 syscall number", |_| s(&["x32_getpid"]), SeccompKill, Unconfined(Reached)),
        case!("TIOCSTI", |_| s(&["ioctl_tiocsti"]), SeccompKill, Unconfined(Reached)),
        case!("TIOCSTI with high bits set", |_| s(&["ioctl_tiocsti_high_bits"]), SeccompKill, Unconfined(Reached)),
        case!("TIOCLINUX", |_| s(&["ioctl_tioclinux"]), SeccompKill, Unconfined(Reached)),
        case!("io_uring_setup", |_| s(&["io_uring_setup"]), Errno("ENOSYS"), Unconfined(Ok)),
        case!("bpf", |_| s(&["bpf_map_create"]), SeccompKill, Unconfined(Ok)),
        case!("perf_event_open", |_| s(&["perf_event_open"]), SeccompKill, Unconfined(Reached)),
        case!("userfaultfd", |_| s(&["userfaultfd"]), SeccompKill, Unconfined(Ok)),
        case!("add_key", |_| s(&["add_key"]), SeccompKill, Unconfined(Ok)),
        case!("keyctl", |_| s(&["keyctl"]), SeccompKill, Unconfined(Ok)),
        // Never unconfined: with seccomp removed, the dropped capabilities
        // answer (or ENOSYS where the kernel lacks modules/kexec: still reached).
        case!("init_module", |_| s(&["init_module"]), SeccompKill, Without(UNSAFE_FOR_HOST, Reached)),
        case!("finit_module", |_| s(&["finit_module"]), SeccompKill, Without(UNSAFE_FOR_HOST, Reached)),
        case!("kexec_load", |_| s(&["kexec_load"]), SeccompKill, Without(UNSAFE_FOR_HOST, Reached)),
        case!("reboot", |_| s(&["reboot"]), SeccompKill, Without(UNSAFE_FOR_HOST, Errno("EPERM"))),
        case!("swapon", |_| s(&["swapon"]), SeccompKill, Without(UNSAFE_FOR_HOST, Errno("EPERM"))),
        case!("acct", |_| s(&["acct"]), SeccompKill, Without(UNSAFE_FOR_HOST, Errno("EPERM"))),
        case!("personality", |_| s(&["personality"]), SeccompKill, Unconfined(Ok)),
        // --- network ---
        case!("socket(AF_INET)", |_| s(&["socket", "inet"]), Errno("EAFNOSUPPORT"), Unconfined(Ok)),
        case!("socket(AF_INET6)", |_| s(&["socket", "inet6"]), Errno("EAFNOSUPPORT"), Unconfined(Ok)),
        case!("socket(AF_NETLINK)", |_| s(&["socket", "netlink"]), Errno("EAFNOSUPPORT"), Unconfined(Ok)),
        case!("socket(AF_PACKET)", |_| s(&["socket", "packet"]), Errno("EAFNOSUPPORT"), Unconfined(Ok)),
        case!("raw socket", |_| s(&["socket", "raw"]), Errno("EAFNOSUPPORT"), Unconfined(Ok)),
        case!("socket(AF_UNIX)", |_| s(&["socket", "unix"]), Errno("EAFNOSUPPORT"), Unconfined(Ok)),
        case!("connect to host loopback TCP", |e| vec!["tcp_connect".into(), port(e).to_string()], Errno("EAFNOSUPPORT"), Unconfined(Ok)),
        case!("connect to a host abstract socket", |e| vec!["abstract_connect".into(), e.abstract_name.clone()], Errno("EAFNOSUPPORT"), Unconfined(Ok)),
    ]
}

fn port(e: &Env) -> u16 {
    e.tcp.local_addr().map(|a| a.port()).unwrap_or(1)
}

fn run_case(env: &Env, case: &Case, removed: &[Protection]) -> Run {
    run_case_with(env, case, removed, &["--timeout-ms", &timeout_ms()])
}

/// How long one case may run: 30 s, or HOSTD_ESCAPE_TIMEOUT_MS where
/// everything is slower (the container stage runs three suites at once in a
/// VM without hardware virtualization, where the memory bomb's control —
/// 256 MiB touched under a 10% CPU quota — needs more).
fn timeout_ms() -> String {
    std::env::var("HOSTD_ESCAPE_TIMEOUT_MS").ok().filter(|v| v.parse::<u64>().is_ok()).unwrap_or_else(|| "30000".into())
}

/// `case` under the suite's policy minus `removed`, launched by
/// `hostd-sandbox run` with `options`.
fn run_case_with(env: &Env, case: &Case, removed: &[Protection], options: &[&str]) -> Run {
    run_case_by(&lean_command(), env, case, removed, options)
}

/// `case` launched by `command` (`hostd-sandbox run` or `hostd sandbox run`).
fn run_case_by(command: &[OsString], env: &Env, case: &Case, removed: &[Protection], options: &[&str]) -> Run {
    let mut policy = env.policy();
    (case.tweak)(&mut policy);
    for p in removed {
        remove(&mut policy, *p);
    }
    let command: Vec<&std::ffi::OsStr> = command.iter().map(OsString::as_os_str).collect();
    run_sandboxed_by(&command, &policy, &(case.args)(env), options)
}

fn lean_command() -> Vec<OsString> {
    vec![hostd_tests::sandbox_bin().into(), "run".into()]
}

/// Every case under the suite's policy, launched with `options`: the rows
/// that did not end as expected.
fn expectation_failures(env: &Env, options: &[&str]) -> Vec<String> {
    expectation_failures_by(&lean_command(), env, options)
}

fn expectation_failures_by(command: &[OsString], env: &Env, options: &[&str]) -> Vec<String> {
    cases()
        .iter()
        .filter_map(|case| {
            let run = run_case_by(command, env, case, &[], options);
            (!case.expect.matches(&run.seen)).then(|| {
                format!("{} {options:?}: expected {:?}, saw {:?} ({}) {}", case.name, case.expect, run.seen, run.line, run.stderr.trim())
            })
        })
        .collect()
}

#[test]
fn escape_suite() {
    if !require_privileged("escape suite") {
        return;
    }
    let env = Env::new();
    let cases = cases();
    assert!(cases.len() >= 40, "the suite needs at least 40 attacks, has {}", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let run = run_case(&env, case, &[]);
        if !case.expect.matches(&run.seen) {
            failures.push(format!("{}: expected {:?}, saw {:?} ({}) {}", case.name, case.expect, run.seen, run.line, run.stderr.trim()));
        }
        let (control, want) = match case.control {
            Control::Unconfined(want) => (run_unconfined(&(case.args)(&env)), want),
            Control::Without(removed, want) => (run_case(&env, case, removed), want),
        };
        if !want.matches(&control.seen) {
            failures.push(format!("{} (control {:?}): expected {:?}, saw {:?} ({}) {}", case.name, case.control, want, control.seen, control.line, control.stderr.trim()));
        }
        eprintln!("{:<40} sandboxed {:<22} control {:?}", case.name, format!("{:?}", run.seen), control.seen);
    }
    // The same attacks from a standby (namespaces, ids and cgroup made
    // ahead of time, as hostd's launcher relaunches a module).
    failures.extend(expectation_failures(&env, &["--timeout-ms", &timeout_ms(), "--standby"]));
    env.drain_listener();
    assert!(failures.is_empty(), "{} escape-suite failures:\n{}", failures.len(), failures.join("\n"));
}

/// `hostd sandbox run` is the same command inside the daemon's binary:
/// every attack ends exactly as through `hostd-sandbox run`.
#[test]
fn escape_suite_through_hostd_sandbox_run() {
    if !require_privileged("escape suite through hostd sandbox run") {
        return;
    }
    let env = Env::new();
    let command: Vec<OsString> = vec![hostd_tests::hostd_bin().into(), "sandbox".into(), "run".into()];
    let failures = expectation_failures_by(&command, &env, &["--timeout-ms", &timeout_ms()]);
    env.drain_listener();
    assert!(failures.is_empty(), "{} failures through hostd sandbox run:\n{}", failures.len(), failures.join("\n"));
}

/// hostd's own launcher is not root: it runs as the `hostd` user with only
/// CAP_SETUID and CAP_SETGID. Every attack must end exactly the same when
/// the sandbox comes from such a launcher (`hostd sandbox run --user`).
#[test]
fn escape_suite_under_the_unprivileged_launcher() {
    if !require_daemon("escape suite, unprivileged launcher") {
        return;
    }
    let env = Env::new();
    // The flag really drops: the launcher of a running sandbox is hostd's
    // user with CAP_SETUID and CAP_SETGID alone.
    let hostd = hostd::daemon::privileges::RunAs::lookup("hostd").expect("hostd user");
    let (mut launcher, _) = sleeping_sandbox(&env.policy(), &["--user", "hostd"]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", launcher.id())).unwrap_or_default();
    let _ = launcher.kill();
    let _ = launcher.wait();
    let field = |k: &str| status.lines().find_map(|l| l.strip_prefix(k)).map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "));
    assert_eq!(field("Uid:"), Some(vec![hostd.uid.to_string(); 4].join(" ")), "{status}");
    assert_eq!(field("CapEff:"), Some(format!("{:016x}", hostd::daemon::privileges::launcher_mask())), "{status}");

    // Cold launches, and launches into standbys made by that launcher.
    let mut failures = expectation_failures(&env, &["--timeout-ms", &timeout_ms(), "--user", "hostd"]);
    failures.extend(expectation_failures(&env, &["--timeout-ms", &timeout_ms(), "--user", "hostd", "--standby"]));
    env.drain_listener();
    assert!(failures.is_empty(), "{} failures under the unprivileged launcher:\n{}", failures.len(), failures.join("\n"));
}

/// Removing any one protection must change at least one row; protections
/// that only back up another (same errno, or a syscall seccomp already
/// kills) are removed as a pair with the one they back up, and say so.
#[test]
fn each_protection_is_load_bearing() {
    if !require_privileged("protection matrix") {
        return;
    }
    use Protection as P;
    let env = Env::new();
    let cases = cases();
    let sets: &[(&[Protection], &str)] = &[
        (&[P::Seccomp], ""),
        (&[P::Landlock], ""),
        (&[P::Capabilities], ""),
        (&[P::PidNamespace], ""),
        (&[P::NetNamespace], ""),
        (&[P::UtsNamespace], ""),
        (&[P::ReadOnlyRoot], ""),
        (&[P::PidsLimit], ""),
        (&[P::MemoryLimit], ""),
        (&[P::CpuLimit], ""),
        (&[P::NofileLimit], ""),
        (&[P::FsizeLimit], ""),
        (&[P::NoExecData, P::Landlock], "noexec and Landlock both answer EACCES to exec from the data dir"),
        (&[P::IpcNamespace, P::Seccomp], "SysV/POSIX IPC syscalls are not in the seccomp allowlist at all"),
    ];
    let mut report = Vec::new();
    let mut uncaught = Vec::new();
    for (removed, why) in sets {
        let caught: Vec<&str> = cases
            .iter()
            .filter(|c| {
                let run = run_case(&env, c, removed);
                // A failed launch is not a caught protection: the row must run.
                !matches!(run.seen, Seen::LaunchFailed(_)) && !c.expect.matches(&run.seen)
            })
            .map(|c| c.name)
            .collect();
        report.push(format!("without {removed:?}: {} rows fail: {caught:?} {why}", caught.len()));
        if caught.is_empty() {
            uncaught.push(format!("{removed:?}"));
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(uncaught.is_empty(), "no escape row notices the removal of {uncaught:?}");
}

#[test]
fn no_sandboxed_process_survives_a_killed_launcher() {
    if !require_privileged("launcher kill") {
        return;
    }
    let scratch = Scratch::new("launcher-kill");
    let data = scratch.owned_dir("data");
    let (mut launcher, pid) = start_other_sandbox(&data);
    // SAFETY: SIGKILL to the launcher we started.
    unsafe { libc::kill(launcher.id() as i32, libc::SIGKILL) };
    let _ = launcher.wait();
    // Gone, or a zombie waiting for init to reap it: either way not running.
    let gone = hostd_tests::eventually(|| (!hostd_tests::pid_alive(pid as u64)).then_some(()));
    assert!(gone.is_some(), "sandboxed pid {pid} survived its launcher's SIGKILL");
}

#[test]
fn memory_bomb_is_contained_and_cpu_is_throttled() {
    if !require_privileged("resource containment") {
        return;
    }
    let env = Env::new();
    let policy = env.policy();
    let run = run_sandboxed(&policy, &s(&["memory_bomb", "256"]));
    assert_eq!(run.seen, Seen::OomKilled, "{run:?}");
    let peak = run.outcome["usage"]["memory_peak"].as_u64().unwrap_or(u64::MAX);
    assert!(peak <= 64 << 20, "memory peak {peak} above the 64 MiB limit");
    let run = run_sandboxed(&policy, &s(&["cpu_spin", "400"]));
    assert_eq!(run.seen, Seen::Denied, "{run:?}");
    let throttled = run.outcome["usage"]["cpu_nr_throttled"].as_u64().unwrap_or(0);
    assert!(throttled > 0, "cpu.stat nr_throttled stayed 0: {}", run.outcome);
    let mut buf = String::new();
    std::fs::File::open("/proc/self/status").and_then(|mut f| f.read_to_string(&mut buf)).unwrap_or_else(|e| panic!("{e}"));
    assert!(buf.contains("State:"), "the host process is alive and well");
}
