//! What kind of place hostd runs in, for `hostd sandbox features`, the
//! daemon's start-up log and `hostd status`: a container or not (and whose),
//! the cgroup layout (v2 in a private or in the host's cgroup namespace,
//! read-only, missing controllers, v1), what hostd will do in it, and
//! whether the sandbox's namespaces can really be made here — container
//! runtimes' seccomp profiles and AppArmor refuse them in ways no sysctl shows.

use serde::Serialize;
use std::fmt;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use crate::cgroup::{join_cgroup, v2_base_dir, CgroupMode, SANDBOX_CONTROLLERS, SUPERVISOR_LEAF};
use crate::features::KernelFeatures;
use crate::prepare::missing_controller;

/// The inode of the initial cgroup namespace (PROC_CGROUP_INIT_INO in
/// include/linux/proc_ns.h, Linux 4.6): any other inode is a private one.
const INITIAL_CGROUP_NS_INODE: u64 = 0xEFFF_FFFB;

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// cgroup v2 seen through a private cgroup namespace (Docker's and
    /// Podman's default on v2 hosts): our cgroup is the namespace's root.
    V2PrivateCgroupns,
    /// cgroup v2 in the host's (initial) cgroup namespace: a systemd
    /// service, a shell, or a container run with `--cgroupns=host`.
    V2HostCgroupns,
    /// v1 controllers (a hybrid or legacy host).
    V1,
    /// No cgroup hostd can use (see the reason in `problems`).
    Unavailable,
}

#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    /// "podman", "docker", "lxc", "systemd-nspawn", …, or "unknown" for a
    /// container that names no runtime; absent outside containers.
    pub container: Option<String>,
    /// "private" or "host" (the initial cgroup namespace).
    pub cgroup_namespace: &'static str,
    pub cgroup_layout: Layout,
    /// Our cgroup as /proc/self/cgroup names it (relative to our namespace).
    pub own_cgroup: Option<PathBuf>,
    /// Where sandbox cgroups are created.
    pub sandbox_cgroups_in: Vec<PathBuf>,
    pub controllers_available: Vec<String>,
    /// v2: what the sandboxes' parent already enables for its children.
    pub controllers_enabled: Vec<String>,
    /// v2: processes in our own cgroup (the no-internal-processes rule
    /// makes hostd move them into its `supervisor/` leaf).
    pub processes_in_own_cgroup: usize,
    /// What hostd does here, in one sentence.
    pub hostd_will: String,
    /// Whether clone3 with the sandbox's namespaces and a fresh /proc work.
    pub namespaces: String,
    /// Each thing that stops a strict policy here, with what to change.
    pub problems: Vec<String>,
}

impl Environment {
    /// Read the environment; `kernel` should come from
    /// [`KernelFeatures::probe_thoroughly`] so the namespace check is real.
    pub fn probe(kernel: &KernelFeatures) -> Environment {
        let private_ns = std::fs::read_link("/proc/self/ns/cgroup")
            .ok()
            .and_then(|l| l.to_string_lossy().trim_start_matches("cgroup:[").trim_end_matches(']').parse::<u64>().ok())
            .map(|ino| ino != INITIAL_CGROUP_NS_INODE);
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        Environment::describe(kernel, container_runtime(), private_ns, read)
    }

    fn describe(kernel: &KernelFeatures, container: Option<String>, private_ns: Option<bool>, read: impl Fn(&Path) -> String) -> Environment {
        let words = |s: String| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        let mut env = Environment {
            container,
            cgroup_namespace: match private_ns {
                Some(true) => "private",
                Some(false) => "host",
                None => "unknown",
            },
            cgroup_layout: Layout::Unavailable,
            own_cgroup: None,
            sandbox_cgroups_in: Vec::new(),
            controllers_available: Vec::new(),
            controllers_enabled: Vec::new(),
            processes_in_own_cgroup: 0,
            hostd_will: String::new(),
            namespaces: match &kernel.user_namespace_refusal {
                Some(r) => format!("refused: {r}"),
                None if kernel.user_namespaces => "ok".into(),
                None => "disabled".into(),
            },
            problems: Vec::new(),
        };
        match &kernel.cgroup {
            CgroupMode::Unified { mount, own, controllers } => {
                env.cgroup_layout = if private_ns == Some(true) { Layout::V2PrivateCgroupns } else { Layout::V2HostCgroupns };
                env.own_cgroup = Some(own.clone());
                env.controllers_available = controllers.clone();
                let own_dir = join_cgroup(mount, own.to_string_lossy().as_ref());
                let base = v2_base_dir(mount, own);
                env.controllers_enabled = words(read(&base.join("cgroup.subtree_control")));
                env.processes_in_own_cgroup = read(&own_dir.join("cgroup.procs")).lines().count();
                let wanted: Vec<&str> = SANDBOX_CONTROLLERS.into_iter().filter(|c| controllers.iter().any(|a| a == c)).collect();
                env.hostd_will = if wanted.iter().all(|c| env.controllers_enabled.iter().any(|e| e == c)) {
                    format!("create sandbox cgroups in {} (its controllers are already enabled)", base.display())
                } else {
                    let moving = if env.processes_in_own_cgroup > 0 && base == own_dir {
                        format!(
                            "move the {} processes of {} into {}/ (the no-internal-processes rule), then ",
                            env.processes_in_own_cgroup,
                            base.display(),
                            SUPERVISOR_LEAF
                        )
                    } else {
                        String::new()
                    };
                    format!(
                        "{moving}enable {} in {}/cgroup.subtree_control and create sandbox cgroups there; nothing above it is written",
                        wanted.iter().map(|c| format!("+{c}")).collect::<Vec<_>>().join(" "),
                        base.display()
                    )
                };
                env.sandbox_cgroups_in = vec![base];
                for c in SANDBOX_CONTROLLERS {
                    if !controllers.iter().any(|a| a == c) {
                        env.problems.push(format!(
                            "{}; policies with {c} limits are refused unless `cgroup_{c}` is allowed to downgrade",
                            missing_controller(&kernel.cgroup, c)
                        ));
                    }
                }
            }
            CgroupMode::Legacy { hierarchies } => {
                env.cgroup_layout = Layout::V1;
                env.controllers_available = hierarchies.iter().map(|h| h.controller.clone()).collect();
                env.sandbox_cgroups_in = hierarchies.iter().map(|h| h.own_dir.clone()).collect();
                env.hostd_will = "create a cgroup beneath its own in each v1 hierarchy and attach each sandbox after the clone".into();
            }
            CgroupMode::Unavailable { reason } => env.cgroup_failed(reason),
        }
        if !kernel.user_namespaces {
            env.problems.push(kernel.user_namespace_detail());
        }
        env
    }

    /// No usable cgroup (detected, or preparing it failed for reasons no
    /// mount option shows): say so, and what follows.
    pub fn cgroup_failed(&mut self, reason: &str) {
        self.hostd_will = "refuse policies with cgroup limits unless `cgroup` is allowed to downgrade".into();
        self.sandbox_cgroups_in.clear();
        self.problems.push(reason.to_string());
    }
}

/// The container runtime we run under, from the marks runtimes leave:
/// Podman's /run/.containerenv, Docker's /.dockerenv, and the `container=`
/// variable (systemd's container interface) in our or pid 1's environment.
fn container_runtime() -> Option<String> {
    if Path::new("/run/.containerenv").exists() {
        return Some("podman".into());
    }
    if Path::new("/.dockerenv").exists() {
        return Some("docker".into());
    }
    if let Ok(v) = std::env::var("container") {
        return Some(if v.is_empty() { "unknown".into() } else { v });
    }
    let environ = std::fs::read("/proc/1/environ").unwrap_or_default();
    environ
        .split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(b"container="))
        .map(|v| if v.is_empty() { "unknown".into() } else { String::from_utf8_lossy(v).into_owned() })
}

/// Why the sandbox's namespaces cannot be made here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceRefusal {
    /// clone3 itself, or with the namespace flags, was refused.
    Clone(i32),
    /// A step inside the new namespaces failed (its errno).
    Inside(ProbeStep, i32),
    /// The probe child died without reporting (wait status).
    Child(i32),
    /// The probe cannot run in a multithreaded process (unshare of a user
    /// namespace fails with EINVAL there).
    Threads(u32),
}

/// What the probe's child does in the new namespaces, in the launch's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeStep {
    MountPrivate = 1,
    ProcMount = 2,
    SetHostname = 3,
}

impl fmt::Display for NamespaceRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = |n: i32| std::io::Error::from_raw_os_error(n);
        match self {
            NamespaceRefusal::Clone(libc::ENOSYS) => write!(
                f,
                "clone3 answers ENOSYS: the container runtime's seccomp profile hides it (Docker's and Podman's defaults do, so \
                 that glibc falls back to clone); hostd needs clone3 (Linux 5.3): run with --security-opt seccomp=unconfined or --privileged"
            ),
            NamespaceRefusal::Clone(n) => write!(
                f,
                "clone3 with the sandbox's namespaces (user, mount, pid, net, ipc, uts, cgroup) failed: {}. In a container the \
                 runtime's seccomp profile or AppArmor refuses nested namespaces: run with --privileged, or \
                 --security-opt seccomp=unconfined (and --security-opt apparmor=unconfined where AppArmor confines containers); \
                 on a host check user.max_user_namespaces (and kernel.apparmor_restrict_unprivileged_userns on Ubuntu)",
                e(*n)
            ),
            NamespaceRefusal::Inside(ProbeStep::MountPrivate, n) => {
                write!(f, "making mounts private in a new mount namespace failed: {} (a runtime's seccomp or LSM policy)", e(*n))
            }
            NamespaceRefusal::Inside(ProbeStep::ProcMount, n) => write!(
                f,
                "mounting a fresh /proc in a new pid namespace failed: {}. The container masks parts of /proc, and the kernel \
                 refuses a new proc mount that would reveal them: run with --privileged, or --security-opt unmask=/proc/* (Podman; \
                 unmask=ALL also makes /sys/fs/cgroup writable) / --security-opt systempaths=unconfined (Docker)",
                e(*n)
            ),
            NamespaceRefusal::Inside(ProbeStep::SetHostname, n) => write!(
                f,
                "sethostname in a new UTS namespace failed: {}: the container runtime's seccomp profile refuses it without \
                 CAP_SYS_ADMIN: run with --security-opt seccomp=unconfined or --privileged",
                e(*n)
            ),
            NamespaceRefusal::Child(status) => write!(f, "the namespace probe child ended with wait status {status} before reporting"),
            NamespaceRefusal::Threads(n) => write!(f, "not probed: this process has {n} threads"),
        }
    }
}

/// Make the namespaces a sandbox gets (clone3 with CLONE_NEWUSER, NEWNS,
/// NEWPID, NEWNET, NEWIPC, NEWUTS, NEWCGROUP) and do in them what the
/// launch does first that a container runtime may refuse (private mounts,
/// a fresh /proc, sethostname), in a throwaway child. Must be called while
/// single-threaded (the launcher and the CLI are).
pub fn probe_namespaces() -> Result<(), NamespaceRefusal> {
    let threads = crate::sys::threads_in_self();
    if threads > 1 {
        return Err(NamespaceRefusal::Threads(threads));
    }
    let flags = (libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWCGROUP) as u64;
    let (report_r, report_w) = crate::sys::pipe().map_err(|e| NamespaceRefusal::Clone(e.raw_os_error().unwrap_or(libc::EIO)))?;
    let (pid, _pidfd) = match crate::sys::clone3(flags, None) {
        Err(e) => return Err(NamespaceRefusal::Clone(e.raw_os_error().unwrap_or(libc::EIO))),
        Ok(Some(parent)) => parent,
        Ok(None) => probe_child(report_w.as_raw_fd()),
    };
    drop(report_w);
    let mut report = [0u8; 8];
    // SAFETY: reading into a local buffer of the given length.
    let n = unsafe { libc::read(report_r.as_raw_fd(), report.as_mut_ptr().cast(), report.len()) };
    let mut status = 0;
    // SAFETY: waiting for our own child.
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
        if crate::sys::errno() != libc::EINTR {
            break;
        }
    }
    if n == 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        return Ok(());
    }
    let word = |i: usize| i32::from_ne_bytes([report[i], report[i + 1], report[i + 2], report[i + 3]]);
    match (n, word(0)) {
        (8, 1) => Err(NamespaceRefusal::Inside(ProbeStep::MountPrivate, word(4))),
        (8, 2) => Err(NamespaceRefusal::Inside(ProbeStep::ProcMount, word(4))),
        (8, 3) => Err(NamespaceRefusal::Inside(ProbeStep::SetHostname, word(4))),
        _ => Err(NamespaceRefusal::Child(status)),
    }
}

/// The probe's child: pid 1 of its namespaces. Raw syscalls only (it is a
/// fork of the caller); a failing step writes (step, errno) to `report`.
fn probe_child(report: RawFd) -> ! {
    let fail = |step: ProbeStep| -> ! {
        let mut msg = [0u8; 8];
        msg[..4].copy_from_slice(&(step as i32).to_ne_bytes());
        msg[4..].copy_from_slice(&crate::sys::errno().to_ne_bytes());
        // SAFETY: write(2) of a local buffer; _exit never returns.
        unsafe {
            libc::write(report, msg.as_ptr().cast(), msg.len());
            libc::_exit(1)
        }
    };
    // SAFETY: mount(2) and sethostname(2) with static NUL-terminated strings.
    unsafe {
        if libc::mount(std::ptr::null(), c"/".as_ptr(), std::ptr::null(), libc::MS_REC | libc::MS_PRIVATE, std::ptr::null()) < 0 {
            fail(ProbeStep::MountPrivate);
        }
        let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        if libc::mount(c"proc".as_ptr(), c"/proc".as_ptr(), c"proc".as_ptr(), flags, std::ptr::null()) < 0 {
            fail(ProbeStep::ProcMount);
        }
        let name = b"hostd-probe";
        if libc::sethostname(name.as_ptr().cast(), name.len()) < 0 {
            fail(ProbeStep::SetHostname);
        }
        libc::_exit(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(cgroup: CgroupMode) -> KernelFeatures {
        KernelFeatures {
            kernel_release: "t".into(),
            landlock_abi: 6,
            seccomp_filter: true,
            user_namespaces: true,
            cgroup,
            cap_last_cap: 40,
            user_namespace_refusal: None,
        }
    }

    fn unified(own: &str, controllers: &str) -> CgroupMode {
        CgroupMode::Unified { mount: "/sys/fs/cgroup".into(), own: own.into(), controllers: controllers.split_whitespace().map(str::to_string).collect() }
    }

    #[test]
    fn each_layout_says_what_hostd_will_do() {
        // A private namespace with the container's processes at its root.
        let read = |p: &Path| match p.file_name().and_then(|n| n.to_str()) {
            Some("cgroup.procs") => "1\n7\n".to_string(),
            _ => String::new(),
        };
        let env = Environment::describe(&kernel(unified("/", "cpu memory pids io")), Some("podman".into()), Some(true), read);
        assert_eq!(env.cgroup_layout, Layout::V2PrivateCgroupns);
        assert_eq!(env.sandbox_cgroups_in, vec![PathBuf::from("/sys/fs/cgroup")]);
        assert!(env.hostd_will.starts_with("move the 2 processes of /sys/fs/cgroup into supervisor/"), "{}", env.hostd_will);
        assert!(env.problems.is_empty(), "{:?}", env.problems);
        // The host namespace, already prepared by an earlier hostd: nothing to move.
        let read = |p: &Path| match p.file_name().and_then(|n| n.to_str()) {
            Some("cgroup.subtree_control") => "cpu memory pids".to_string(),
            _ => String::new(),
        };
        let env = Environment::describe(&kernel(unified("/libpod_parent/x/supervisor", "cpu memory pids")), None, Some(false), read);
        assert_eq!(env.cgroup_layout, Layout::V2HostCgroupns);
        assert_eq!(env.sandbox_cgroups_in, vec![PathBuf::from("/sys/fs/cgroup/libpod_parent/x")]);
        assert!(env.hostd_will.contains("already enabled"), "{}", env.hostd_will);
        // A missing controller and refused namespaces are problems naming the fix.
        let mut k = kernel(unified("/", "memory pids"));
        k.user_namespaces = false;
        k.user_namespace_refusal = Some(NamespaceRefusal::Clone(libc::ENOSYS).to_string());
        let env = Environment::describe(&k, Some("docker".into()), Some(true), |_: &Path| String::new());
        assert_eq!(env.problems.len(), 2, "{:?}", env.problems);
        assert!(env.problems[0].contains("cpu controller") && env.problems[1].contains("seccomp=unconfined"), "{:?}", env.problems);
        assert!(env.namespaces.starts_with("refused"));
        // Read-only: the detection's reason is the problem.
        let env = Environment::describe(&kernel(CgroupMode::Unavailable { reason: "read-only".into() }), None, Some(true), |_: &Path| String::new());
        assert_eq!((env.cgroup_layout, env.problems.as_slice()), (Layout::Unavailable, &["read-only".to_string()][..]));
    }
}
