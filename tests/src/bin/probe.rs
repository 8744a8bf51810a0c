//! Escape probe: performs one named attack and prints `RESULT <what happened>`:
//! `RESULT ok …` (the attack worked), `RESULT errno NAME` (the kernel refused),
//! or `RESULT denied …` (a status check found the protection in place).
//! A seccomp kill, OOM kill or SIGXFSZ shows up in the launcher's outcome,
//! not here. Static and dependency-free so it runs in an empty sandbox root.
//! Every attack is bounded (counts, sizes, time) so an unconfined control run
//! on a developer machine stays harmless.

use std::ffi::CString;

enum R {
    Ok(String),
    Errno(i32),
    Denied(String),
    Signal(i32),
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let case = args.get(1).map(String::as_str).unwrap_or("");
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let r = run(case, &arg);
    match r {
        R::Ok(d) => println!("RESULT ok {d}"),
        R::Errno(e) => println!("RESULT errno {}", errno_name(e)),
        R::Denied(d) => println!("RESULT denied {d}"),
        R::Signal(sig) => println!("RESULT signal {sig}"),
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn rc(v: i64) -> R {
    if v < 0 {
        R::Errno(errno())
    } else {
        R::Ok(format!("{v}"))
    }
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

fn run(case: &str, arg: &dyn Fn(usize) -> String) -> R {
    // SAFETY (whole match): each arm issues the syscall it is named after
    // with valid pointers to local buffers; the probe exists to be refused.
    unsafe {
        match case {
            "noop" => R::Ok(String::new()),
            "sleep" => {
                let ms: u64 = arg(2).parse().unwrap_or(1000);
                std::thread::sleep(std::time::Duration::from_millis(ms));
                R::Ok(String::new())
            }
            "read_path" => read_path(&arg(2)),
            "cgroup_path" => match std::fs::read_to_string("/proc/self/cgroup") {
                Ok(c) => R::Ok(c.trim().replace('\n', ";")),
                Err(e) => R::Errno(e.raw_os_error().unwrap_or(0)),
            },
            // N children and the parent all sleeping: only a cgroup-wide kill ends them.
            "sleepers" => {
                let n: usize = arg(2).parse().unwrap_or(4);
                for _ in 0..n {
                    if libc::fork() == 0 {
                        let ts = libc::timespec { tv_sec: 300, tv_nsec: 0 };
                        libc::nanosleep(&ts, std::ptr::null_mut());
                        libc::_exit(0);
                    }
                }
                let ts = libc::timespec { tv_sec: 300, tv_nsec: 0 };
                libc::nanosleep(&ts, std::ptr::null_mut());
                R::Ok(String::new())
            }
            "open_by_handle_at" => open_by_handle(),
            "create_file" => {
                let p = c(&arg(2));
                rc(libc::open(p.as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC, 0o644) as i64)
            }
            "write_file" => write_file(&arg(2), b"hostd-probe"),
            "mkdir" => rc(libc::mkdir(c(&arg(2)).as_ptr(), 0o755) as i64),
            // `rename_into_dir FILE DIR`: move FILE into the existing DIR (a
            // rename across directories: Landlock's Refer right).
            "rename_into_dir" => rc(libc::rename(c(&arg(2)).as_ptr(), c(&format!("{}/moved", arg(3))).as_ptr()) as i64),
            "symlink" => rc(libc::symlink(c("/data/existing").as_ptr(), c(&arg(2)).as_ptr()) as i64),
            "hardlink" => rc(libc::link(c("/data/existing").as_ptr(), c(&arg(2)).as_ptr()) as i64),
            "list_dir" => {
                let p = c(&arg(2));
                let fd = libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC);
                if fd < 0 {
                    return R::Errno(errno());
                }
                let mut buf = [0u8; 4096];
                rc(libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()))
            }
            "exec_copy_in" => exec_copy_in(&arg(2)),
            "memfd_exec" => memfd_exec(),
            "execve_self" => {
                let exe = c("/proc/self/exe");
                let argv = [exe.as_ptr(), c"noop".as_ptr(), std::ptr::null()];
                let envp = [std::ptr::null::<libc::c_char>()];
                libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr());
                R::Errno(errno())
            }
            "mount_tmpfs" => {
                let t = c(&arg(2));
                rc(libc::mount(c"tmpfs".as_ptr(), t.as_ptr(), c"tmpfs".as_ptr(), 0, std::ptr::null()) as i64)
            }
            "umount" => {
                let t = c(&arg(2));
                rc(libc::umount2(t.as_ptr(), libc::MNT_DETACH) as i64)
            }
            "pivot_root" => {
                libc::chdir(c"/".as_ptr());
                rc(libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()))
            }
            "chroot" => rc(libc::chroot(c"/".as_ptr()) as i64),
            "unshare_user" => rc(libc::unshare(libc::CLONE_NEWUSER) as i64),
            "unshare_mount" => rc(libc::unshare(libc::CLONE_NEWNS) as i64),
            "setns_net" => {
                let fd = libc::open(c"/proc/self/ns/net".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return R::Errno(errno());
                }
                rc(libc::setns(fd, libc::CLONE_NEWNET) as i64)
            }
            "clone_newuser" => clone_child(libc::syscall(
                libc::SYS_clone,
                (libc::CLONE_NEWUSER | libc::SIGCHLD) as u64,
                0u64,
                0u64,
                0u64,
                0u64,
            )),
            "clone3_newuser" => {
                let mut args = [0u64; 11];
                args[0] = libc::CLONE_NEWUSER as u64;
                args[4] = libc::SIGCHLD as u64;
                clone_child(libc::syscall(libc::SYS_clone3, args.as_ptr(), 88usize))
            }
            "uid_map_is_host" => {
                let m = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
                let first: Vec<&str> = m.split_whitespace().collect();
                if first == ["0", "0", "4294967295"] {
                    R::Ok("initial user namespace".into())
                } else {
                    R::Denied(format!("uid_map {:?}", m.trim()))
                }
            }
            "pid_is_host" => {
                let pid = libc::getpid();
                if pid != 1 {
                    R::Ok(format!("pid {pid}"))
                } else {
                    R::Denied("pid 1 of its own namespace".into())
                }
            }
            "hostname_is" => {
                let mut u: libc::utsname = std::mem::zeroed();
                libc::uname(&mut u);
                let name = std::ffi::CStr::from_ptr(u.nodename.as_ptr()).to_string_lossy().into_owned();
                if name == arg(2) {
                    R::Ok(format!("hostname {name}"))
                } else {
                    R::Denied(format!("hostname {name}"))
                }
            }
            "net_has_interfaces" => {
                let dev = std::fs::read_to_string("/proc/self/net/dev").unwrap_or_default();
                let ifaces: Vec<&str> = dev.lines().skip(2).filter_map(|l| l.split(':').next()).map(str::trim).collect();
                if ifaces.iter().any(|i| *i != "lo") {
                    R::Ok(format!("{ifaces:?}"))
                } else {
                    R::Denied(format!("{ifaces:?}"))
                }
            }
            "status_caps" => status_check(|k, v| k.starts_with("Cap") && v.chars().any(|c| c != '0')),
            "status_no_new_privs_off" => status_check(|k, v| k == "NoNewPrivs" && v == "0"),
            "status_seccomp_off" => status_check(|k, v| k == "Seccomp" && v == "0"),
            "status_groups" => status_check(|k, v| k == "Groups" && !v.is_empty()),
            "env_has" => match std::env::var(arg(2)) {
                Ok(v) => R::Ok(format!("{}={v}", arg(2))),
                Err(_) => R::Denied(format!("{} absent; {} vars", arg(2), std::env::vars().count())),
            },
            "extra_fds" => extra_fds(),
            "ptrace_attach" => {
                let pid: i32 = arg(2).parse().unwrap_or(1);
                let r = libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0);
                if r == 0 {
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                    libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0);
                }
                rc(r)
            }
            "process_vm_readv" => vm_readv(arg(2).parse().unwrap_or(1)),
            "pidfd_getfd" => {
                let pid: i32 = arg(2).parse().unwrap_or(1);
                let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0);
                if pidfd < 0 {
                    return R::Errno(errno());
                }
                rc(libc::syscall(libc::SYS_pidfd_getfd, pidfd, 0, 0))
            }
            "kill" => rc(libc::kill(arg(2).parse().unwrap_or(1), libc::SIGCONT) as i64),
            "fork_bomb" => fork_bomb(arg(2).parse().unwrap_or(64)),
            "memory_bomb" => memory_bomb(arg(2).parse().unwrap_or(512)),
            "cpu_spin" => cpu_spin(arg(2).parse().unwrap_or(500)),
            "open_many" => {
                let n: usize = arg(2).parse().unwrap_or(1000);
                for i in 0..n {
                    if libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) < 0 {
                        let e = errno();
                        eprintln!("open #{i} failed");
                        return R::Errno(e);
                    }
                }
                R::Ok(format!("{n} fds"))
            }
            // In a forked child: the sandbox's pid 1 is its namespace's init,
            // for which the kernel drops default-action signals like SIGXFSZ.
            "write_big" => {
                // In 1 MiB writes: a whole-file buffer would count against
                // the memory limit twice where the data dir is a tmpfs (the
                // container stage's VM), and the OOM killer would answer
                // before RLIMIT_FSIZE.
                let mib: usize = arg(3).parse().unwrap_or(4);
                in_child(|| write_chunks(&arg(2), &[7u8; 1 << 20], mib))
            }
            "int80_getpid" => {
                let ret: i32;
                std::arch::asm!("int 0x80", inlateout("eax") 20 => ret, options(nostack));
                if ret < 0 {
                    R::Errno(-ret)
                } else {
                    R::Ok(format!("i386 getpid = {ret}"))
                }
            }
            "x32_getpid" => rc(libc::syscall(0x4000_0000 | libc::SYS_getpid)),
            "ioctl_tiocsti" => {
                let ch = b'x';
                rc(libc::syscall(libc::SYS_ioctl, 0, 0x5412u64, &ch as *const u8))
            }
            "ioctl_tiocsti_high_bits" => {
                let ch = b'x';
                rc(libc::syscall(libc::SYS_ioctl, 0, 0xdead_beef_0000_5412u64, &ch as *const u8))
            }
            "ioctl_tioclinux" => {
                let sub = [6u8, 0u8]; // TIOCL_GETSHIFTSTATE: read-only subcode
                rc(libc::syscall(libc::SYS_ioctl, 0, 0x541Cu64, sub.as_ptr()))
            }
            "io_uring_setup" => {
                let mut params = [0u8; 120];
                rc(libc::syscall(libc::SYS_io_uring_setup, 4, params.as_mut_ptr()))
            }
            "bpf_map_create" => {
                // BPF_MAP_CREATE of a 1-entry array: map_type, key_size, value_size, max_entries.
                let mut attr = [0u32; 30];
                attr[0] = 2;
                attr[1] = 4;
                attr[2] = 4;
                attr[3] = 1;
                rc(libc::syscall(libc::SYS_bpf, 0, attr.as_mut_ptr(), std::mem::size_of_val(&attr)))
            }
            "perf_event_open" => {
                // PERF_TYPE_SOFTWARE / PERF_COUNT_SW_CPU_CLOCK on ourselves.
                let mut attr = [0u8; 128];
                attr[0..4].copy_from_slice(&1u32.to_ne_bytes());
                attr[4..8].copy_from_slice(&128u32.to_ne_bytes());
                rc(libc::syscall(libc::SYS_perf_event_open, attr.as_mut_ptr(), 0, -1, -1, 0))
            }
            "userfaultfd" => rc(libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC)),
            "add_key" => rc(libc::syscall(
                libc::SYS_add_key,
                c"user".as_ptr(),
                c"hostd-probe".as_ptr(),
                b"x".as_ptr(),
                1usize,
                -2i32, // KEY_SPEC_PROCESS_KEYRING
            )),
            "keyctl" => rc(libc::syscall(libc::SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -2i32, 1 /* create */)),
            "init_module" => {
                let image = [0u8; 4];
                rc(libc::syscall(libc::SYS_init_module, image.as_ptr(), image.len(), c"".as_ptr()))
            }
            "finit_module" => {
                let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                rc(libc::syscall(libc::SYS_finit_module, fd, c"".as_ptr(), 0))
            }
            "kexec_load" => rc(libc::syscall(libc::SYS_kexec_load, 0usize, 0usize, std::ptr::null::<u8>(), 0usize)),
            // LINUX_REBOOT_CMD_CAD_OFF: the harmless command; refused without CAP_SYS_BOOT.
            "reboot" => rc(libc::syscall(libc::SYS_reboot, 0xfee1deadu32, 672274793u32, 0u32, std::ptr::null::<u8>())),
            "swapon" => rc(libc::syscall(libc::SYS_swapon, c"/dev/null".as_ptr(), 0)),
            "acct" => rc(libc::syscall(libc::SYS_acct, c"/dev/null".as_ptr())),
            "personality" => rc(libc::syscall(libc::SYS_personality, 0x0040000u64 /* ADDR_NO_RANDOMIZE */)),
            "socket" => {
                let (domain, ty, proto) = match arg(2).as_str() {
                    "inet" => (libc::AF_INET, libc::SOCK_STREAM, 0),
                    "inet6" => (libc::AF_INET6, libc::SOCK_STREAM, 0),
                    "netlink" => (libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE),
                    "packet" => (libc::AF_PACKET, libc::SOCK_RAW, 0),
                    "raw" => (libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP),
                    _ => (libc::AF_UNIX, libc::SOCK_STREAM, 0),
                };
                rc(libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) as i64)
            }
            "tcp_connect" => tcp_connect(arg(2).parse().unwrap_or(1)),
            "abstract_connect" => abstract_connect(&arg(2)),
            other => R::Denied(format!("unknown case {other:?}")),
        }
    }
}

/// Run `f` in a forked child; its result line, or the signal that ended it.
unsafe fn in_child(f: impl FnOnce() -> R) -> R {
    let pid = libc::fork();
    if pid < 0 {
        return R::Errno(errno());
    }
    if pid == 0 {
        let code = match f() {
            R::Ok(_) => 0,
            R::Errno(e) => 100 + e.min(100),
            _ => 1,
        };
        libc::_exit(code);
    }
    let mut status = 0;
    libc::waitpid(pid, &mut status, 0);
    if libc::WIFSIGNALED(status) {
        R::Signal(libc::WTERMSIG(status))
    } else {
        match libc::WEXITSTATUS(status) {
            0 => R::Ok("child finished".into()),
            c if c >= 100 => R::Errno(c - 100),
            c => R::Denied(format!("child exit {c}")),
        }
    }
}

unsafe fn read_path(path: &str) -> R {
    let p = c(path);
    let fd = libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return R::Errno(errno());
    }
    let mut buf = [0u8; 64];
    let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
    if n < 0 {
        R::Errno(errno())
    } else {
        R::Ok(format!("read {n} bytes"))
    }
}

unsafe fn write_file(path: &str, data: &[u8]) -> R {
    let p = c(path);
    let fd = libc::open(p.as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC | libc::O_CLOEXEC, 0o644);
    if fd < 0 {
        return R::Errno(errno());
    }
    match write_all(fd, data) {
        Ok(n) => R::Ok(format!("wrote {n} bytes")),
        Err(e) => R::Errno(e),
    }
}

/// `chunk` written `times` times to a new file at `path`.
unsafe fn write_chunks(path: &str, chunk: &[u8], times: usize) -> R {
    let p = c(path);
    let fd = libc::open(p.as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC | libc::O_CLOEXEC, 0o644);
    if fd < 0 {
        return R::Errno(errno());
    }
    let mut total = 0;
    for _ in 0..times {
        match write_all(fd, chunk) {
            Ok(n) => total += n,
            Err(e) => return R::Errno(e),
        }
    }
    R::Ok(format!("wrote {total} bytes"))
}

unsafe fn write_all(fd: i32, data: &[u8]) -> Result<usize, i32> {
    let mut off = 0;
    while off < data.len() {
        let n = libc::write(fd, data[off..].as_ptr().cast(), data.len() - off);
        if n < 0 {
            return Err(errno());
        }
        off += n as usize;
    }
    Ok(off)
}

unsafe fn open_by_handle() -> R {
    // Not every file system hands out file handles (9p, overlayfs without
    // nfs_export — a container's root): the first directory that does is
    // the target; the last answer stands if none does.
    let mut last = R::Errno(libc::EOPNOTSUPP);
    for dir in [c"/", c"/dev", c"/tmp", c"/run"] {
        // struct file_handle { u32 handle_bytes; i32 handle_type; u8 f_handle[128] }
        let mut buf = [0u8; 8 + 128];
        buf[0..4].copy_from_slice(&128u32.to_ne_bytes());
        let mut mount_id = 0i32;
        let r = libc::syscall(libc::SYS_name_to_handle_at, libc::AT_FDCWD, dir.as_ptr(), buf.as_mut_ptr(), &mut mount_id, 0);
        if r < 0 {
            last = R::Errno(errno());
            if errno() == libc::EOPNOTSUPP || errno() == libc::ENOENT {
                continue;
            }
            return last;
        }
        let mount_fd = libc::open(dir.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC);
        return rc(libc::syscall(libc::SYS_open_by_handle_at, mount_fd, buf.as_mut_ptr(), libc::O_RDONLY | libc::O_DIRECTORY));
    }
    last
}

/// Copy our own binary into `dir` and exec it through the one fd number the
/// seccomp policy lets execveat use: only the mount's noexec and Landlock stop it.
unsafe fn exec_copy_in(dir: &str) -> R {
    let bytes = match std::fs::read("/proc/self/exe") {
        Ok(b) => b,
        Err(e) => return R::Errno(e.raw_os_error().unwrap_or(0)),
    };
    let path = format!("{dir}/probe-copy");
    let p = c(&path);
    let fd = libc::open(p.as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC | libc::O_CLOEXEC, 0o755);
    if fd < 0 {
        return R::Errno(errno());
    }
    if let Err(e) = write_all(fd, &bytes) {
        return R::Errno(e);
    }
    libc::close(fd);
    let fd = libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return R::Errno(errno());
    }
    exec_fd(fd)
}

unsafe fn exec_fd(fd: i32) -> R {
    if fd != 1023 && libc::dup2(fd, 1023) < 0 {
        return R::Errno(errno());
    }
    let argv = [c"probe".as_ptr(), c"noop".as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null::<libc::c_char>()];
    libc::syscall(libc::SYS_execveat, 1023, c"".as_ptr(), argv.as_ptr(), envp.as_ptr(), libc::AT_EMPTY_PATH);
    R::Errno(errno())
}

unsafe fn memfd_exec() -> R {
    let fd = libc::syscall(libc::SYS_memfd_create, c"x".as_ptr(), 0) as i32;
    if fd < 0 {
        return R::Errno(errno());
    }
    let bytes = match std::fs::read("/proc/self/exe") {
        Ok(b) => b,
        Err(e) => return R::Errno(e.raw_os_error().unwrap_or(0)),
    };
    if let Err(e) = write_all(fd, &bytes) {
        return R::Errno(e);
    }
    exec_fd(fd)
}

unsafe fn clone_child(pid: i64) -> R {
    if pid < 0 {
        return R::Errno(errno());
    }
    if pid == 0 {
        libc::_exit(0);
    }
    let mut status = 0;
    libc::waitpid(pid as i32, &mut status, 0);
    R::Ok(format!("child in a new user namespace, status {status}"))
}

fn status_check(leak: impl Fn(&str, &str) -> bool) -> R {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mut seen = Vec::new();
    for line in status.lines() {
        if let Some((k, v)) = line.split_once(':') {
            let v = v.trim();
            if leak(k, v) {
                return R::Ok(format!("{k}={v}"));
            }
            if k.starts_with("Cap") || k == "NoNewPrivs" || k == "Seccomp" || k == "Groups" {
                seen.push(format!("{k}={v}"));
            }
        }
    }
    R::Denied(seen.join(","))
}

/// Lists /proc/self/fd with raw getdents64 so the listing's own fd is known
/// and excluded.
fn extra_fds() -> R {
    // SAFETY: open/getdents64 into a local buffer; records are parsed within
    // the length the kernel returned.
    unsafe {
        let dir = libc::open(c"/proc/self/fd".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC);
        if dir < 0 {
            return R::Errno(errno());
        }
        let mut buf = [0u8; 8192];
        let mut fds = Vec::new();
        loop {
            let n = libc::syscall(libc::SYS_getdents64, dir, buf.as_mut_ptr(), buf.len());
            if n <= 0 {
                break;
            }
            let mut off = 0usize;
            while off < n as usize {
                let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
                let name = std::ffi::CStr::from_ptr(buf[off + 19..].as_ptr().cast());
                if let Ok(fd) = name.to_string_lossy().parse::<i32>() {
                    if fd != dir {
                        fds.push(fd);
                    }
                }
                off += reclen;
            }
        }
        fds.sort_unstable();
        if fds == [0, 1, 2, 3] {
            R::Denied(format!("fds {fds:?}"))
        } else {
            R::Ok(format!("fds {fds:?}"))
        }
    }
}

unsafe fn vm_readv(pid: i32) -> R {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let addr = maps
        .lines()
        .next()
        .and_then(|l| l.split('-').next())
        .and_then(|a| usize::from_str_radix(a, 16).ok())
        .unwrap_or(0x40_0000);
    let mut buf = [0u8; 8];
    let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: 8 };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: 8 };
    rc(libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) as i64)
}

unsafe fn fork_bomb(limit: usize) -> R {
    let mut kids = Vec::new();
    let mut result = R::Ok(format!("{limit} processes"));
    for _ in 0..limit {
        let pid = libc::fork();
        if pid < 0 {
            result = R::Errno(errno());
            break;
        }
        if pid == 0 {
            let ts = libc::timespec { tv_sec: 30, tv_nsec: 0 };
            libc::nanosleep(&ts, std::ptr::null_mut());
            libc::_exit(0);
        }
        kids.push(pid);
    }
    if let R::Errno(_) = result {
        eprintln!("fork failed after {} children", kids.len());
    }
    for k in &kids {
        libc::kill(*k, libc::SIGKILL);
        libc::waitpid(*k, std::ptr::null_mut(), 0);
    }
    result
}

unsafe fn memory_bomb(mib: usize) -> R {
    let len = mib << 20;
    let p = libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
    if p == libc::MAP_FAILED {
        return R::Errno(errno());
    }
    let bytes = p as *mut u8;
    for off in (0..len).step_by(4096) {
        *bytes.add(off) = 1;
    }
    libc::munmap(p, len);
    R::Ok(format!("touched {mib} MiB"))
}

fn cpu_time_ms() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime into a local.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1000.0 + ts.tv_nsec as f64 / 1e6
}

fn cpu_spin(ms: u64) -> R {
    let start = std::time::Instant::now();
    let cpu0 = cpu_time_ms();
    let mut x = 0u64;
    while start.elapsed().as_millis() < ms as u128 {
        for i in 0..10_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
        std::hint::black_box(x);
    }
    let cpu = cpu_time_ms() - cpu0;
    let wall = start.elapsed().as_secs_f64() * 1000.0;
    let share = cpu / wall;
    if share >= 0.5 {
        R::Ok(format!("cpu share {share:.2}"))
    } else {
        R::Denied(format!("throttled: cpu share {share:.2} ({cpu:.0} ms of {wall:.0} ms)"))
    }
}

unsafe fn tcp_connect(port: u16) -> R {
    let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
    if fd < 0 {
        return R::Errno(errno());
    }
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be() },
        sin_zero: [0; 8],
    };
    rc(libc::connect(fd, (&addr as *const libc::sockaddr_in).cast(), std::mem::size_of_val(&addr) as u32) as i64)
}

unsafe fn abstract_connect(name: &str) -> R {
    let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
    if fd < 0 {
        return R::Errno(errno());
    }
    let mut addr: libc::sockaddr_un = std::mem::zeroed();
    addr.sun_family = libc::AF_UNIX as u16;
    for (i, b) in name.bytes().enumerate().take(100) {
        addr.sun_path[i + 1] = b as libc::c_char;
    }
    let len = (std::mem::size_of::<libc::sa_family_t>() + 1 + name.len().min(100)) as u32;
    rc(libc::connect(fd, (&addr as *const libc::sockaddr_un).cast(), len) as i64)
}

fn errno_name(e: i32) -> String {
    let name = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EINVAL => "EINVAL",
        libc::EMFILE => "EMFILE",
        libc::ENOTTY => "ENOTTY",
        libc::EFBIG => "EFBIG",
        libc::EROFS => "EROFS",
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EUSERS => "EUSERS",
        libc::ENOSPC => "ENOSPC",
        libc::ENOEXEC => "ENOEXEC",
        _ => return format!("E{e}"),
    };
    name.to_string()
}
