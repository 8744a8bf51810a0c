//! Seccomp: the policy's syscall rules as data, compiled once per policy into
//! BPF programs with seccompiler, installed in the child with raw seccomp(2).
//!
//! Layout of what gets installed (the kernel runs every filter and keeps the
//! most restrictive answer: kill > errno > allow):
//! 1. one filter per distinct errno value (match → ERRNO(n), else ALLOW), so
//!    `clone3` answers ENOSYS and `socket(AF_INET)` answers EAFNOSUPPORT;
//! 2. the allowlist (match → ALLOW, else KILL_PROCESS), installed last because
//!    each later `seccomp(2)` call must itself pass the filters already in place.
//!
//! seccompiler checks `seccomp_data.arch` against x86_64 and kills on mismatch,
//! which covers i386 `int 0x80`. It does not special-case x32 numbers
//! (nr | 0x40000000); none of them is in any rule, so the default kill covers them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch,
};

/// The fd number the launcher puts the verified binary at; the only fd
/// `execveat` is allowed on.
pub const EXEC_FD: i32 = 1023;

/// The baseline allowlist shipped in `policies/seccomp-baseline.toml`.
pub const BASELINE_TOML: &str = include_str!("../../policies/seccomp-baseline.toml");

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SeccompPolicy {
    pub default_action: DefaultAction,
    pub rules: Vec<SyscallRule>,
    #[serde(default)]
    pub errno: Vec<ErrnoRule>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DefaultAction {
    KillProcess,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SyscallRule {
    pub syscall: String,
    pub why: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<ArgCondition>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ErrnoRule {
    pub syscall: String,
    pub errno: String,
    pub why: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<ArgCondition>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ArgCondition {
    pub index: u8,
    pub width: u8,
    pub op: CmpOp,
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<Value>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    MaskedEq,
}

/// A number, or a name from [`NAMED_VALUES`] so the data file stays readable.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Value {
    Number(u64),
    Named(String),
}

/// Symbolic constants usable in policy files.
pub const NAMED_VALUES: &[(&str, u64)] = &[
    ("TIOCSTI", 0x5412),
    ("TIOCLINUX", 0x541C),
    ("AF_UNIX", libc::AF_UNIX as u64),
    ("AT_EMPTY_PATH", libc::AT_EMPTY_PATH as u64),
    ("EXEC_FD", EXEC_FD as u64),
    ("PR_SET_NAME", libc::PR_SET_NAME as u64),
    ("PR_GET_NAME", libc::PR_GET_NAME as u64),
    ("PR_GET_DUMPABLE", libc::PR_GET_DUMPABLE as u64),
    ("PR_SET_VMA", 0x53564d41),
    (
        "CLONE_NEW_MASK",
        (libc::CLONE_NEWNS
            | libc::CLONE_NEWCGROUP
            | libc::CLONE_NEWUTS
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWUSER
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWNET) as u64,
    ),
];

impl Value {
    fn resolve(&self) -> Result<u64, String> {
        match self {
            Value::Number(n) => Ok(*n),
            Value::Named(name) => NAMED_VALUES
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| *v)
                .ok_or_else(|| format!("unknown constant {name:?}; known: {}", named_list())),
        }
    }
}

fn named_list() -> String {
    NAMED_VALUES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

// The table holds libc's `SYS_*` constants; policy files use the names
// without the prefix.
macro_rules! sys {
    ($($name:ident),* $(,)?) => {
        const SYSCALLS: &[(&str, i64)] = &[$((stringify!($name), libc::$name as i64)),*];
    };
}
sys!(
    SYS_read, SYS_write, SYS_readv, SYS_writev, SYS_pread64, SYS_pwrite64, SYS_preadv, SYS_pwritev,
    SYS_preadv2, SYS_pwritev2, SYS_lseek, SYS_close, SYS_close_range, SYS_dup, SYS_dup2, SYS_dup3,
    SYS_fcntl, SYS_pipe2, SYS_pipe, SYS_ioctl, SYS_openat, SYS_openat2, SYS_open, SYS_creat, SYS_fstat,
    SYS_newfstatat, SYS_stat, SYS_lstat, SYS_statx, SYS_statfs, SYS_fstatfs, SYS_getdents64,
    SYS_getdents, SYS_getcwd, SYS_chdir, SYS_fchdir, SYS_mkdirat, SYS_mkdir, SYS_unlinkat, SYS_unlink,
    SYS_rmdir, SYS_renameat2, SYS_renameat, SYS_rename, SYS_readlinkat, SYS_readlink, SYS_faccessat,
    SYS_faccessat2, SYS_access, SYS_ftruncate, SYS_truncate, SYS_fallocate, SYS_fsync, SYS_fdatasync,
    SYS_flock, SYS_fadvise64, SYS_fchmod, SYS_fchmodat, SYS_chmod, SYS_fchown, SYS_fchownat, SYS_chown,
    SYS_lchown, SYS_utimensat, SYS_copy_file_range, SYS_sendfile, SYS_splice, SYS_tee, SYS_umask,
    SYS_link, SYS_linkat, SYS_symlink, SYS_symlinkat, SYS_mknod, SYS_mknodat, SYS_brk, SYS_mmap,
    SYS_munmap, SYS_mremap, SYS_mprotect, SYS_madvise, SYS_mincore, SYS_msync, SYS_membarrier,
    SYS_mlock, SYS_mlock2, SYS_munlock, SYS_mlockall, SYS_munlockall, SYS_clone, SYS_clone3, SYS_fork,
    SYS_vfork, SYS_futex, SYS_futex_waitv, SYS_set_robust_list, SYS_get_robust_list, SYS_set_tid_address,
    SYS_rseq, SYS_arch_prctl, SYS_prctl, SYS_rt_sigaction, SYS_rt_sigprocmask, SYS_rt_sigreturn,
    SYS_rt_sigtimedwait, SYS_rt_sigsuspend, SYS_rt_sigqueueinfo, SYS_sigaltstack, SYS_kill, SYS_tgkill,
    SYS_tkill, SYS_exit, SYS_exit_group, SYS_wait4, SYS_waitid, SYS_restart_syscall, SYS_sched_yield,
    SYS_sched_getaffinity, SYS_sched_setaffinity, SYS_getcpu, SYS_nanosleep, SYS_clock_nanosleep,
    SYS_clock_gettime, SYS_clock_getres, SYS_gettimeofday, SYS_time, SYS_getrandom, SYS_getpid,
    SYS_gettid, SYS_getppid, SYS_getuid, SYS_geteuid, SYS_getgid, SYS_getegid, SYS_getresuid,
    SYS_getresgid, SYS_getgroups, SYS_getpgrp, SYS_getpgid, SYS_getsid, SYS_setsid, SYS_setpgid,
    SYS_uname, SYS_sysinfo, SYS_getrusage, SYS_getrlimit, SYS_setrlimit, SYS_prlimit64,
    SYS_epoll_create, SYS_epoll_create1, SYS_epoll_ctl, SYS_epoll_wait, SYS_epoll_pwait, SYS_epoll_pwait2,
    SYS_poll, SYS_ppoll, SYS_select, SYS_pselect6, SYS_eventfd, SYS_eventfd2, SYS_timerfd_create,
    SYS_timerfd_settime, SYS_timerfd_gettime, SYS_signalfd, SYS_signalfd4, SYS_socket, SYS_socketpair,
    SYS_connect, SYS_bind, SYS_listen, SYS_accept, SYS_accept4, SYS_sendmsg, SYS_recvmsg, SYS_sendto,
    SYS_recvfrom, SYS_sendmmsg, SYS_recvmmsg, SYS_shutdown, SYS_getsockopt, SYS_setsockopt,
    SYS_getsockname, SYS_getpeername, SYS_execve, SYS_execveat, SYS_memfd_create, SYS_io_uring_setup,
    SYS_io_uring_enter, SYS_io_uring_register, SYS_pidfd_open, SYS_pidfd_send_signal, SYS_pidfd_getfd,
    SYS_setuid, SYS_setgid, SYS_setreuid, SYS_setregid, SYS_setresuid, SYS_setresgid, SYS_setgroups,
    SYS_capget, SYS_capset, SYS_inotify_init1, SYS_inotify_add_watch, SYS_inotify_rm_watch,
    SYS_sched_getparam, SYS_sched_getscheduler, SYS_getpriority, SYS_shmget, SYS_shmat, SYS_shmdt,
    SYS_shmctl, SYS_msgget, SYS_msgsnd, SYS_msgrcv, SYS_msgctl, SYS_semget, SYS_semop, SYS_semctl,
    SYS_alarm, SYS_pause, SYS_getitimer, SYS_setitimer, SYS_timer_create, SYS_timer_settime,
    SYS_timer_gettime, SYS_timer_delete, SYS_timer_getoverrun,
);

/// x86_64 syscall number for `name`, as used in policy files.
pub fn resolve_syscall(name: &str) -> Option<i64> {
    static INDEX: std::sync::OnceLock<std::collections::HashMap<&'static str, i64>> = std::sync::OnceLock::new();
    let index = INDEX.get_or_init(|| {
        SYSCALLS.iter().map(|(n, v)| (n.strip_prefix("SYS_").unwrap_or(n), *v)).collect()
    });
    index.get(name).copied()
}

/// errno names usable in `errno` rules.
pub fn errno_number(name: &str) -> Option<u32> {
    Some(match name {
        "EPERM" => libc::EPERM,
        "EACCES" => libc::EACCES,
        "ENOSYS" => libc::ENOSYS,
        "EAFNOSUPPORT" => libc::EAFNOSUPPORT,
        "EINVAL" => libc::EINVAL,
        "ENOTSUP" => libc::ENOTSUP,
        _ => return None,
    } as u32)
}

impl SeccompPolicy {
    /// The shipped baseline. It is compiled into the binary and checked by a
    /// unit test, so a parse failure here is a build defect, not bad input.
    pub fn baseline() -> SeccompPolicy {
        match toml::from_str::<SeccompPolicy>(BASELINE_TOML) {
            Ok(p) => p,
            Err(e) => panic!("policies/seccomp-baseline.toml is invalid: {e}"),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        for r in &self.rules {
            resolve_syscall(&r.syscall).ok_or_else(|| unknown_syscall(&r.syscall))?;
            for a in &r.args {
                a.to_condition()?;
            }
        }
        for r in &self.errno {
            resolve_syscall(&r.syscall).ok_or_else(|| unknown_syscall(&r.syscall))?;
            errno_number(&r.errno).ok_or_else(|| format!("errno rule for {}: unknown errno {:?}", r.syscall, r.errno))?;
            for a in &r.args {
                a.to_condition()?;
            }
            // Without an unconditional allow, the allowlist's kill would win
            // over the errno answer and the errno rule would never be seen.
            if !self.rules.iter().any(|a| a.syscall == r.syscall && a.args.is_empty()) {
                return Err(format!(
                    "errno rule for {} needs an unconditional allow rule for {} (the allowlist's kill outranks errno)",
                    r.syscall, r.syscall
                ));
            }
        }
        Ok(())
    }

    /// Compile into the programs to install, in install order.
    pub fn compile(&self) -> Result<Vec<BpfProgram>, String> {
        self.validate()?;
        let mut programs = Vec::new();
        let mut by_errno: BTreeMap<u32, BTreeMap<i64, Alternatives>> = BTreeMap::new();
        for r in &self.errno {
            let nr = resolve_syscall(&r.syscall).ok_or_else(|| unknown_syscall(&r.syscall))?;
            let errno = errno_number(&r.errno).ok_or_else(|| format!("unknown errno {}", r.errno))?;
            by_errno.entry(errno).or_default().entry(nr).or_default().add(&r.args)?;
        }
        for (errno, rules) in by_errno {
            programs.push(build(rules, SeccompAction::Allow, SeccompAction::Errno(errno))?);
        }
        let mut allow: BTreeMap<i64, Alternatives> = BTreeMap::new();
        for r in &self.rules {
            let nr = resolve_syscall(&r.syscall).ok_or_else(|| unknown_syscall(&r.syscall))?;
            allow.entry(nr).or_default().add(&r.args)?;
        }
        let default = match self.default_action {
            DefaultAction::KillProcess => SeccompAction::KillProcess,
        };
        programs.push(build(allow, default, SeccompAction::Allow)?);
        Ok(programs)
    }
}

/// The ORed rules for one syscall; an unconditional rule absorbs the others.
#[derive(Default)]
struct Alternatives {
    unconditional: bool,
    rules: Vec<SeccompRule>,
}

impl Alternatives {
    fn add(&mut self, args: &[ArgCondition]) -> Result<(), String> {
        if args.is_empty() {
            self.unconditional = true;
            return Ok(());
        }
        let conds = args.iter().map(|a| a.to_condition()).collect::<Result<Vec<_>, _>>()?;
        self.rules.push(SeccompRule::new(conds).map_err(|e| e.to_string())?);
        Ok(())
    }
}

fn build(
    rules: BTreeMap<i64, Alternatives>,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram, String> {
    // seccompiler matches a syscall unconditionally when its rule list is empty.
    let rules = rules
        .into_iter()
        .map(|(nr, alt)| (nr, if alt.unconditional { Vec::new() } else { alt.rules }))
        .collect();
    let filter = SeccompFilter::new(rules, mismatch, matched, TargetArch::x86_64).map_err(|e| e.to_string())?;
    BpfProgram::try_from(filter).map_err(|e| e.to_string())
}

fn unknown_syscall(name: &str) -> String {
    format!("unknown syscall {name:?} (names are x86_64 syscalls without the SYS_ prefix)")
}

impl ArgCondition {
    fn to_condition(&self) -> Result<SeccompCondition, String> {
        let len = match self.width {
            32 => SeccompCmpArgLen::Dword,
            64 => SeccompCmpArgLen::Qword,
            w => return Err(format!("arg width must be 32 or 64, not {w}")),
        };
        let value = self.value.resolve()?;
        let op = match self.op {
            CmpOp::Eq => SeccompCmpOp::Eq,
            CmpOp::Ne => SeccompCmpOp::Ne,
            CmpOp::Lt => SeccompCmpOp::Lt,
            CmpOp::Le => SeccompCmpOp::Le,
            CmpOp::Gt => SeccompCmpOp::Gt,
            CmpOp::Ge => SeccompCmpOp::Ge,
            CmpOp::MaskedEq => {
                let mask = self.mask.as_ref().ok_or("masked_eq needs a mask")?.resolve()?;
                SeccompCmpOp::MaskedEq(mask)
            }
        };
        SeccompCondition::new(self.index, len, op, value).map_err(|e| e.to_string())
    }
}

/// Install one program with raw seccomp(2) (no TSYNC: the child is single-threaded).
/// Async-signal-safe: used in the child between clone and exec.
pub(crate) fn install(program: &BpfProgram) -> Result<(), i32> {
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prog points at a live, correctly sized BPF program.
    let rc = unsafe {
        libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &prog as *const libc::sock_fprog)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_parses_and_compiles() {
        let p = SeccompPolicy::baseline();
        assert!(p.rules.len() > 100, "baseline has {} rules", p.rules.len());
        assert!(p.rules.iter().all(|r| !r.why.trim().is_empty()), "every rule needs a reason");
        let progs = p.compile().expect("baseline compiles");
        assert_eq!(progs.len(), 3, "ENOSYS filter, EAFNOSUPPORT filter, allowlist");
        // The kernel refuses programs longer than BPF_MAXINSNS (4096).
        for prog in &progs {
            assert!(prog.len() <= 4096, "program of {} instructions", prog.len());
        }
    }

    #[test]
    fn dangerous_syscalls_are_absent_from_baseline() {
        let p = SeccompPolicy::baseline();
        for bad in ["execve", "mount", "ptrace", "bpf", "memfd_create", "unshare", "setns", "bind", "listen"] {
            assert!(!p.rules.iter().any(|r| r.syscall == bad), "{bad} must not be allowed");
        }
    }

    #[test]
    fn errno_rule_without_allow_is_rejected() {
        let mut p = SeccompPolicy::baseline();
        p.rules.retain(|r| r.syscall != "clone3");
        let err = p.validate().unwrap_err();
        assert!(err.contains("clone3"), "{err}");
    }

    #[test]
    fn unknown_names_are_explained() {
        let mut p = SeccompPolicy::baseline();
        p.rules.push(SyscallRule { syscall: "opne".into(), why: "typo".into(), args: vec![] });
        assert!(p.validate().unwrap_err().contains("unknown syscall \"opne\""));
    }
}
