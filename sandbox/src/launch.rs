//! The parent side of a launch: compile a policy once (`prepare`), then
//! `spawn` as many confined children from it as needed. `begin` clones and
//! releases a child, `Starting::finish` waits for its exec; standbys
//! (`standby.rs`) share the pieces in between.
//!
//! `spawn` must run in a single-threaded process (the launcher hostd forks
//! before its async runtime, or `hostd sandbox run`): the child allocates
//! between clone and exec, which is only safe when no other thread can hold
//! the allocator's lock.

use serde::Serialize;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::cgroup::{Cgroup, CgroupMode, CgroupRoot, Usage};
use crate::child::{self, ChildFds};
use crate::error::SandboxError;
use crate::features::KernelFeatures;
use crate::policy::{Feature, Policy};

/// A policy compiled against this kernel: everything the child needs, ready
/// to use without parsing or deciding anything.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub policy: Policy,
    pub(crate) seccomp: Option<seccompiler::BpfProgram>,
    pub(crate) hostname: CString,
    pub(crate) root_tmpfs_opts: CString,
    pub(crate) data: Option<StagedData>,
    pub(crate) ro_binds: Vec<StagedBind>,
    /// (host node, staged path) for each /dev node, when the policy has /dev.
    pub(crate) dev_nodes: Vec<(CString, CString)>,
    pub(crate) envp: Vec<CString>,
    pub(crate) rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
    pub(crate) cap_last_cap: u32,
    pub(crate) landlock_abi: u32,
    pub(crate) landlock_partial_ok: bool,
    /// v1 hosts cannot CLONE_INTO_CGROUP, so the child unshares its cgroup
    /// namespace only after the parent has placed it.
    pub(crate) unshare_cgroup_late: bool,
    /// Features this policy runs without, by its own explicit permission.
    pub downgrades: Vec<Downgrade>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Downgrade {
    pub feature: Feature,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub(crate) struct StagedData {
    pub source: CString,
    pub staged_target: CString,
    pub allow_exec: bool,
    pub read_only: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct StagedBind {
    pub source: CString,
    pub staged_target: CString,
    pub is_dir: bool,
}

fn cstr(s: impl AsRef<[u8]>, what: &str) -> Result<CString, SandboxError> {
    CString::new(s.as_ref()).map_err(|_| SandboxError::PolicyInvalid {
        origin: "policy".into(),
        field: what.into(),
        message: "contains a NUL byte".into(),
    })
}

fn staged(target: &Path) -> Result<CString, SandboxError> {
    let mut v = b"/tmp".to_vec();
    v.extend_from_slice(target.as_os_str().as_bytes());
    cstr(v, "mount target")
}

/// Check the policy against the kernel and compile it.
pub fn prepare(policy: &Policy, kernel: &KernelFeatures) -> Result<Prepared, SandboxError> {
    policy.validate("policy")?;
    let downgrades = check_kernel(policy, kernel)?;
    let landlock_abi = if policy.landlock.is_some() { kernel.landlock_abi } else { 0 };
    prepare_checked(policy, kernel, downgrades, landlock_abi)
}

/// What the policy needs from this kernel: `Err(MissingFeature)` for the
/// first missing feature the policy does not allow to be missing, else the
/// downgrades it does allow (each one logged).
pub fn check_kernel(policy: &Policy, kernel: &KernelFeatures) -> Result<Vec<Downgrade>, SandboxError> {
    let mut downgrades = Vec::new();
    let mut need = |feature: Feature, present: bool, detail: String| -> Result<(), SandboxError> {
        if present {
            return Ok(());
        }
        if policy.allow_downgrade.contains(&feature) {
            tracing::warn!(policy = %policy.name, %feature, %detail, "running without a kernel feature (allowed by policy)");
            downgrades.push(Downgrade { feature, detail });
            Ok(())
        } else {
            Err(SandboxError::MissingFeature { policy: policy.name.clone(), feature, detail })
        }
    };
    need(Feature::UserNamespace, kernel.user_namespaces, "user namespaces are disabled".into())?;
    need(Feature::Seccomp, policy.seccomp.is_none() || kernel.seccomp_filter, "no seccomp filter mode".into())?;
    if let Some(ll) = &policy.landlock {
        need(
            Feature::Landlock,
            kernel.landlock_abi >= ll.min_abi,
            format!("Landlock ABI {} < required {}", kernel.landlock_abi, ll.min_abi),
        )?;
        if ll.scope_abstract_unix || ll.scope_signal {
            need(Feature::LandlockScope, kernel.landlock_abi >= 6, format!("Landlock ABI {} has no scoping (needs 6)", kernel.landlock_abi))?;
        }
        if !ll.tcp_bind.is_empty() || !ll.tcp_connect.is_empty() {
            need(Feature::LandlockNet, kernel.landlock_abi >= 4, format!("Landlock ABI {} has no TCP rules (needs 4)", kernel.landlock_abi))?;
        }
    }
    let cg = &policy.cgroup;
    if cg.enabled {
        let present = !matches!(kernel.cgroup, CgroupMode::Unavailable { .. });
        need(Feature::Cgroup, present, format!("{:?}", kernel.cgroup))?;
        if present {
            need(Feature::CgroupMemory, cg.memory_max.is_none() || kernel.cgroup.has_controller("memory"), "no memory controller".into())?;
            need(Feature::CgroupCpu, cg.cpu_max.is_none() || kernel.cgroup.has_controller("cpu"), "no cpu controller".into())?;
            need(Feature::CgroupPids, cg.pids_max.is_none() || kernel.cgroup.has_controller("pids"), "no pids controller".into())?;
        }
    }
    Ok(downgrades)
}

fn prepare_checked(
    policy: &Policy,
    kernel: &KernelFeatures,
    downgrades: Vec<Downgrade>,
    landlock_abi: u32,
) -> Result<Prepared, SandboxError> {
    let seccomp = match &policy.seccomp {
        Some(s) if kernel.seccomp_filter => {
            Some(s.compile().map_err(|message| SandboxError::Seccomp { policy: policy.name.clone(), message })?)
        }
        _ => None,
    };
    let data = match &policy.rootfs.data {
        Some(d) => Some(StagedData {
            source: cstr(d.source.as_os_str().as_bytes(), "rootfs.data.source")?,
            staged_target: staged(&d.target)?,
            allow_exec: d.allow_exec,
            read_only: d.read_only,
        }),
        None => None,
    };
    let mut ro_binds = Vec::new();
    for b in &policy.rootfs.ro_binds {
        let meta = std::fs::metadata(&b.source).map_err(|e| SandboxError::io(&b.source, "stat bind source", e))?;
        ro_binds.push(StagedBind {
            source: cstr(b.source.as_os_str().as_bytes(), "rootfs.ro_binds.source")?,
            staged_target: staged(&b.target)?,
            is_dir: meta.is_dir(),
        });
    }
    if let Some(d) = &policy.rootfs.data {
        if !d.source.is_dir() {
            return Err(SandboxError::PolicyInvalid {
                origin: "policy".into(),
                field: "rootfs.data.source".into(),
                message: format!("{} is not a directory", d.source.display()),
            });
        }
    }
    let mut dev_nodes = Vec::new();
    if policy.rootfs.dev {
        for node in crate::policy::DEV_NODES {
            dev_nodes.push((cstr(node, "dev node")?, staged(Path::new(node))?));
        }
    }
    let envp = policy.env.iter().map(|(k, v)| cstr(format!("{k}={v}"), "env")).collect::<Result<_, _>>()?;
    let r = policy.rlimits;
    let rlimits = [
        (libc::RLIMIT_NOFILE, r.nofile),
        (libc::RLIMIT_CORE, r.core),
        (libc::RLIMIT_FSIZE, r.fsize),
        (libc::RLIMIT_MEMLOCK, r.memlock),
    ]
    .into_iter()
    .filter_map(|(res, v)| v.map(|v| (res, v)))
    .collect();
    Ok(Prepared {
        policy: policy.clone(),
        seccomp,
        hostname: cstr(&policy.hostname, "hostname")?,
        root_tmpfs_opts: cstr(format!("mode=0755,size={},nr_inodes=256", policy.rootfs.tmpfs_size_bytes), "rootfs")?,
        data,
        ro_binds,
        dev_nodes,
        envp,
        rlimits,
        cap_last_cap: kernel.cap_last_cap,
        landlock_abi,
        landlock_partial_ok: policy.allow_downgrade.contains(&Feature::Landlock),
        unshare_cgroup_late: policy.namespaces.cgroup && !matches!(kernel.cgroup, CgroupMode::Unified { .. }),
        downgrades,
    })
}

/// What to run: the binary as an already-open fd (the one that was hashed).
#[derive(Debug)]
pub struct Command {
    pub exec_fd: OwnedFd,
    pub argv: Vec<CString>,
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// Becomes fd 3 in the sandbox.
    pub ipc: Option<OwnedFd>,
}

impl Command {
    /// Open `path` O_RDONLY|O_CLOEXEC; the fd is what will be exec'd.
    pub fn from_path(path: &Path, args: &[String]) -> Result<Command, SandboxError> {
        let file = std::fs::File::open(path).map_err(|e| SandboxError::io(path, "open binary", e))?;
        let mut argv = vec![cstr(path.as_os_str().as_bytes(), "argv[0]")?];
        for a in args {
            argv.push(cstr(a, "argv")?);
        }
        Ok(Command { exec_fd: file.into(), argv, stdin: None, stdout: None, stderr: None, ipc: None })
    }
}

/// How a sandboxed process ended.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Exited { code: i32 },
    Signaled { signal: i32 },
    /// Killed by SIGSYS: the seccomp filter's default action.
    SeccompViolation,
    /// Killed by the kernel OOM killer inside the sandbox's memory limit.
    OomKilled,
    /// Killed by us (`Child::kill`, teardown).
    KilledByHost,
}

impl Outcome {
    /// Shell-style status: the exit code, or 128 + signal.
    pub fn exit_status(&self) -> i32 {
        match *self {
            Outcome::Exited { code } => code,
            Outcome::Signaled { signal } => 128 + signal,
            Outcome::SeccompViolation => 128 + libc::SIGSYS,
            Outcome::OomKilled | Outcome::KilledByHost => 128 + libc::SIGKILL,
        }
    }
}

/// A running sandbox. Dropping it kills and reaps everything inside.
#[derive(Debug)]
pub struct Child {
    pid: i32,
    pidfd: OwnedFd,
    /// Created fresh for this child, so any OOM kill it counts is this child's.
    cgroup: Option<Cgroup>,
    killed_by_host: bool,
    outcome: Option<Outcome>,
}

fn last_err() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// A pipe with both ends close-on-exec.
pub fn pipe() -> Result<(OwnedFd, OwnedFd), std::io::Error> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(last_err());
    }
    // SAFETY: fresh fds from pipe2.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn threads_in_self() -> u32 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.to_string()))
        .and_then(|rest| rest.split_whitespace().nth(17).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

#[repr(C)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// CAP_SETUID and CAP_SETGID in our effective set.
fn has_id_capabilities() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:").and_then(|v| u64::from_str_radix(v.trim(), 16).ok()))
        .unwrap_or(0);
    const CAP_SETGID: u32 = 6;
    const CAP_SETUID: u32 = 7;
    let needed = (1u64 << CAP_SETUID) | (1u64 << CAP_SETGID);
    eff & needed == needed
}

/// What every clone of a sandbox needs from its caller: one thread, and root
/// or (hostd's launcher after it dropped root) CAP_SETUID and CAP_SETGID to
/// map the sandbox to its own host uid. Returns whether we are root.
pub(crate) fn check_launcher(policy: &Policy) -> Result<bool, SandboxError> {
    let threads = threads_in_self();
    if threads != 1 {
        return Err(SandboxError::NotSingleThreaded { threads });
    }
    // SAFETY: geteuid has no preconditions.
    let privileged = unsafe { libc::geteuid() } == 0;
    if !privileged && !has_id_capabilities() {
        return Err(SandboxError::NotRoot { uid: policy.identity.host_uid });
    }
    Ok(privileged)
}

/// The cgroup root to use, if the policy wants cgroup limits.
pub(crate) fn cgroup_root_for<'a>(
    prepared: &Prepared,
    cgroups: Option<&'a CgroupRoot>,
) -> Result<Option<&'a CgroupRoot>, SandboxError> {
    let wants = prepared.policy.cgroup.enabled && !prepared.downgrades.iter().any(|d| d.feature == Feature::Cgroup);
    match (wants, cgroups) {
        (true, Some(root)) => Ok(Some(root)),
        (true, None) => Err(SandboxError::CgroupSetup("policy sets cgroup limits but no cgroup root was given".into())),
        (false, _) => Ok(None),
    }
}

/// v2 children are born in their cgroup (CLONE_INTO_CGROUP); v1 children
/// are attached after the clone.
pub(crate) fn born_in_cgroup(root: Option<&CgroupRoot>) -> bool {
    root.is_some_and(|r| matches!(r.mode(), CgroupMode::Unified { .. }))
}

/// The namespace flags of `prepared` for clone3.
fn namespace_flags(prepared: &Prepared) -> u64 {
    let ns = prepared.policy.namespaces;
    let mut flags = libc::CLONE_NEWUSER as u64;
    for (on, f) in [
        (ns.mount, libc::CLONE_NEWNS),
        (ns.pid, libc::CLONE_NEWPID),
        (ns.net, libc::CLONE_NEWNET),
        (ns.ipc, libc::CLONE_NEWIPC),
        (ns.uts, libc::CLONE_NEWUTS),
        (ns.cgroup && !prepared.unshare_cgroup_late, libc::CLONE_NEWCGROUP),
    ] {
        if on {
            flags |= f as u64;
        }
    }
    flags
}

/// clone3 into `prepared`'s namespaces (and `cgroup`, on v2). The child runs
/// `child_main`, which never returns; the parent gets the pid and a pidfd.
pub(crate) fn clone_sandbox(
    prepared: &Prepared,
    cgroup: Option<&Cgroup>,
    child_main: impl FnOnce() -> std::convert::Infallible,
) -> Result<(i32, OwnedFd), std::io::Error> {
    let mut flags = namespace_flags(prepared) | libc::CLONE_PIDFD as u64;
    let mut cgroup_fd = 0u64;
    if let Some(fd) = cgroup.and_then(|c| c.clone_into_fd()) {
        flags |= CLONE_INTO_CGROUP;
        cgroup_fd = fd as u64;
    }
    let mut pidfd: i32 = -1;
    let args = CloneArgs {
        flags,
        pidfd: &mut pidfd as *mut i32 as u64,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup_fd,
    };
    // SAFETY: clone3 without CLONE_VM behaves like fork; the child runs only
    // `child_main`, which never returns.
    let pid = unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>()) };
    if pid < 0 {
        return Err(last_err());
    }
    if pid == 0 {
        // Returns an uninhabited type: the child never gets past this.
        child_main();
    }
    // SAFETY: clone3 wrote a fresh pidfd.
    Ok((pid as i32, unsafe { OwnedFd::from_raw_fd(pidfd) }))
}

/// Map the sandbox's single uid and gid to its host ids.
pub(crate) fn write_id_maps(pid: i32, policy: &Policy) -> Result<(), (&'static str, std::io::Error)> {
    let ids = policy.identity;
    write_proc(pid, "setgroups", "deny").map_err(|e| ("write setgroups", e))?;
    write_proc(pid, "uid_map", &format!("{} {} 1\n", ids.inside_uid, ids.host_uid)).map_err(|e| ("write uid_map", e))?;
    write_proc(pid, "gid_map", &format!("{} {} 1\n", ids.inside_gid, ids.host_gid)).map_err(|e| ("write gid_map", e))
}

/// The sandbox's fds 0, 1 and 2: the command's, else /dev/null for stdin and
/// copies of our own stdout and stderr.
pub(crate) fn stdio_fds(cmd: &mut Command, policy: &str) -> Result<[OwnedFd; 3], SandboxError> {
    let devnull = || -> Result<OwnedFd, SandboxError> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map(OwnedFd::from)
            .map_err(|e| SandboxError::io("/dev/null", "open", e))
    };
    let dup_std = |fd: RawFd| -> Result<OwnedFd, SandboxError> {
        // SAFETY: duplicating our own stdio fd.
        let r = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        if r < 0 {
            return Err(SandboxError::Launch { policy: policy.into(), step: "dup stdio", errno: last_err() });
        }
        // SAFETY: fresh fd.
        Ok(unsafe { OwnedFd::from_raw_fd(r) })
    };
    let stdin = match cmd.stdin.take() {
        Some(fd) => fd,
        None => devnull()?,
    };
    let stdout = match cmd.stdout.take() {
        Some(fd) => fd,
        None => dup_std(1)?,
    };
    let stderr = match cmd.stderr.take() {
        Some(fd) => fd,
        None => dup_std(2)?,
    };
    Ok([stdin, stdout, stderr])
}

/// Launch `cmd` under `prepared`. `cgroups` is required when the policy
/// enables cgroup limits and the kernel has them.
pub fn spawn(prepared: &Prepared, cgroups: Option<&CgroupRoot>, cmd: Command) -> Result<Child, SandboxError> {
    let starting = begin(prepared, cgroups, cmd)?;
    // The child is on its own now (rootfs, Landlock, seccomp, exec): use the
    // wait to remove torn-down sandboxes' cgroups, off the critical path.
    if let Some(root) = cgroups {
        root.remove_emptied();
    }
    starting.finish()
}

/// A launched child that is still setting itself up; [`Starting::finish`]
/// waits until it has exec'd the binary or reported the step that failed.
pub(crate) struct Starting {
    pub(crate) child: Child,
    /// EOF once the child exec'd (close-on-exec), else 8 bytes: step, errno.
    pub(crate) err_r: OwnedFd,
    /// Held until the exec: the child treats its hang-up as our death.
    pub(crate) release_w: Option<OwnedFd>,
    pub(crate) policy: String,
}

/// Clone a fresh child for `cmd` and release it into its setup.
pub(crate) fn begin(prepared: &Prepared, cgroups: Option<&CgroupRoot>, mut cmd: Command) -> Result<Starting, SandboxError> {
    let policy = &prepared.policy;
    let privileged = check_launcher(policy)?;
    let launch_err = |step: &'static str, errno: std::io::Error| SandboxError::Launch {
        policy: policy.name.clone(),
        step,
        errno,
    };
    let cgroup_root = cgroup_root_for(prepared, cgroups)?;
    // v2: the child is born in its cgroup, so it must exist first. v1: the
    // parent creates and attaches it while the child builds its rootfs, and
    // the child waits for that before going on.
    let born_in_cgroup = born_in_cgroup(cgroup_root);
    let cgroup = match cgroup_root {
        Some(root) if born_in_cgroup => Some(root.create(&policy.name, &policy.cgroup)?),
        _ => None,
    };
    let [stdin, stdout, stderr] = stdio_fds(&mut cmd, &policy.name)?;
    let (release_r, release_w) = pipe().map_err(|e| launch_err("pipe", e))?;
    let (err_r, err_w) = pipe().map_err(|e| launch_err("pipe", e))?;
    let child_fds = ChildFds {
        release_r: release_r.as_raw_fd(),
        err_w: err_w.as_raw_fd(),
        exec: cmd.exec_fd.as_raw_fd(),
        stdin: stdin.as_raw_fd(),
        stdout: stdout.as_raw_fd(),
        stderr: stderr.as_raw_fd(),
        ipc: cmd.ipc.as_ref().map(|f| f.as_raw_fd()),
        await_cgroup: cgroup_root.is_some() && !born_in_cgroup,
        parent_only: vec![release_w.as_raw_fd(), err_r.as_raw_fd()],
    };
    let (pid, pidfd) = clone_sandbox(prepared, cgroup.as_ref(), || child::run(prepared, &child_fds, &cmd.argv))
        .map_err(|e| launch_err("clone3", e))?;
    drop(release_r);
    drop(err_w);
    let mut child = Child::new(pid, pidfd, cgroup);

    let setup = (|| -> Result<(), SandboxError> {
        write_id_maps(pid, policy).map_err(|(step, e)| launch_err(step, e))?;
        let release = || {
            // SAFETY: one byte to the child's release pipe.
            if unsafe { libc::write(release_w.as_raw_fd(), [1u8].as_ptr().cast(), 1) } != 1 {
                return Err(launch_err("release child", last_err()));
            }
            Ok(())
        };
        let attach_v1 = |child: &mut Child| -> Result<(), SandboxError> {
            match (cgroup_root, born_in_cgroup) {
                (Some(root), false) => child.attach_new_cgroup(root, policy),
                _ => Ok(()),
            }
        };
        let v1 = cgroup_root.is_some() && !born_in_cgroup;
        if privileged {
            // Overlapped: the child builds its rootfs while we attach it.
            release()?;
            attach_v1(&mut child)?;
        } else {
            // v1 lets a non-root writer move only a task with its own uid:
            // attach before the child switches to the sandbox's ids.
            attach_v1(&mut child)?;
            release()?;
        }
        if v1 {
            release()?;
        }
        Ok(())
    })();
    if let Err(e) = setup {
        child.kill();
        let _ = child.wait();
        return Err(e);
    }
    Ok(Starting { child, err_r, release_w: Some(release_w), policy: policy.name.clone() })
}

/// Block for what a child reports on its error channel: 8 bytes (step,
/// errno) for a failure, 0 once it exec'd (or died), 1 for a parked standby.
pub(crate) fn read_report(fd: RawFd, msg: &mut [u8; 8]) -> isize {
    loop {
        // SAFETY: reading into the caller's 8-byte buffer.
        let n = unsafe { libc::read(fd, msg.as_mut_ptr().cast(), msg.len()) };
        if n < 0 && last_err().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return n;
    }
}

impl Starting {
    pub(crate) fn finish(mut self) -> Result<Child, SandboxError> {
        let mut msg = [0u8; 8];
        let n = read_report(self.err_r.as_raw_fd(), &mut msg);
        drop(self.release_w.take());
        if n == 8 {
            let _ = self.child.wait();
            return Err(child::setup_error(&self.policy, msg));
        }
        Ok(self.child)
    }
}

fn write_proc(pid: i32, file: &str, content: &str) -> Result<(), std::io::Error> {
    std::fs::write(format!("/proc/{pid}/{file}"), content)
}

impl Child {
    pub(crate) fn new(pid: i32, pidfd: OwnedFd, cgroup: Option<Cgroup>) -> Child {
        Child { pid, pidfd, cgroup, killed_by_host: false, outcome: None }
    }

    /// v1: a fresh cgroup for this child's policy, with the child moved in.
    pub(crate) fn attach_new_cgroup(&mut self, root: &CgroupRoot, policy: &Policy) -> Result<(), SandboxError> {
        let cg = root.create(&policy.name, &policy.cgroup)?;
        cg.attach(self.pid)?;
        self.cgroup = Some(cg);
        Ok(())
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn pidfd(&self) -> RawFd {
        self.pidfd.as_raw_fd()
    }

    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup.as_ref()
    }

    pub fn usage(&self) -> Usage {
        self.cgroup.as_ref().map(|c| c.usage()).unwrap_or_default()
    }

    /// SIGKILL the sandbox through its pidfd and everything in its cgroup.
    pub fn kill(&mut self) {
        if self.outcome.is_some() {
            return;
        }
        self.killed_by_host = true;
        // SAFETY: pidfd_send_signal on our own pidfd; no siginfo.
        unsafe {
            libc::syscall(libc::SYS_pidfd_send_signal, self.pidfd.as_raw_fd(), libc::SIGKILL, std::ptr::null::<u8>(), 0)
        };
        if let Some(cg) = &self.cgroup {
            cg.kill_all();
        }
    }

    /// Block until the sandbox's init exits; classify how.
    pub fn wait(&mut self) -> Result<Outcome, SandboxError> {
        if let Some(o) = self.outcome {
            return Ok(o);
        }
        self.wait_flags(libc::WEXITED).map(|o| o.unwrap_or(Outcome::KilledByHost))
    }

    /// Non-blocking wait.
    pub fn try_wait(&mut self) -> Result<Option<Outcome>, SandboxError> {
        if let Some(o) = self.outcome {
            return Ok(Some(o));
        }
        self.wait_flags(libc::WEXITED | libc::WNOHANG)
    }

    fn wait_flags(&mut self, flags: i32) -> Result<Option<Outcome>, SandboxError> {
        // SAFETY: zeroed siginfo is a valid out-parameter for waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: waitid on our own child's pidfd.
            let rc = unsafe { libc::waitid(libc::P_PIDFD, self.pidfd.as_raw_fd() as libc::id_t, &mut info, flags) };
            if rc == 0 {
                break;
            }
            let e = last_err();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(SandboxError::Launch { policy: String::new(), step: "waitid", errno: e });
        }
        // SAFETY: waitid filled a SIGCHLD siginfo.
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        if pid == 0 {
            return Ok(None);
        }
        let outcome = match info.si_code {
            libc::CLD_EXITED => Outcome::Exited { code: status },
            _ if status == libc::SIGSYS => Outcome::SeccompViolation,
            _ if status == libc::SIGKILL => {
                let ooms = self.cgroup.as_ref().and_then(|c| c.usage().oom_kills).unwrap_or(0);
                if ooms > 0 {
                    Outcome::OomKilled
                } else if self.killed_by_host {
                    Outcome::KilledByHost
                } else {
                    Outcome::Signaled { signal: status }
                }
            }
            _ => Outcome::Signaled { signal: status },
        };
        self.outcome = Some(outcome);
        // The init is gone, so the pid namespace is being torn down; make
        // sure nothing outlives it in the cgroup either.
        if let Some(cg) = &self.cgroup {
            cg.kill_all();
        }
        Ok(Some(outcome))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.outcome.is_none() {
            self.kill();
            let _ = self.wait();
        }
        // Cgroup's own Drop kills leftovers and removes the directories.
    }
}
