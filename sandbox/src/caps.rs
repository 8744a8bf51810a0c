//! Raw capability and securebits calls and names, shared by the sandbox
//! child's drop of everything before exec (`child/caps.rs`) and a
//! launcher's or daemon's drop to a kept set (`privdrop.rs`). Plain syscalls
//! with no allocation: safe between clone and exec.

pub const SECBIT_NOROOT: libc::c_ulong = 1 << 0;
pub const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;
pub const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
pub const SECBIT_NO_SETUID_FIXUP_LOCKED: libc::c_ulong = 1 << 3;
pub const SECBIT_KEEP_CAPS_LOCKED: libc::c_ulong = 1 << 5;
pub const SECBIT_NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;
pub const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: libc::c_ulong = 1 << 7;

/// uid 0 never gains capabilities, setuid never adjusts them, no ambient
/// raise; each bit locked so nobody can undo it.
pub const SECBITS_LOCKED_DOWN: libc::c_ulong = SECBIT_NOROOT
    | SECBIT_NOROOT_LOCKED
    | SECBIT_NO_SETUID_FIXUP
    | SECBIT_NO_SETUID_FIXUP_LOCKED
    | SECBIT_NO_CAP_AMBIENT_RAISE
    | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// capset(2) for the calling thread, 64-bit masks (capability version 3).
/// Returns the raw syscall result (negative on error, errno set).
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> libc::c_long {
    let header = CapHeader { version: crate::sys::LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let data = [
        CapData { effective: effective as u32, permitted: permitted as u32, inheritable: inheritable as u32 },
        CapData { effective: (effective >> 32) as u32, permitted: (permitted >> 32) as u32, inheritable: (inheritable >> 32) as u32 },
    ];
    // SAFETY: header and data are live locals of the layout capset expects.
    unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) }
}

/// Capability numbers hostd names in code (capabilities(7)).
pub const CAP_CHOWN: u32 = 0;
pub const CAP_FOWNER: u32 = 3;
pub const CAP_SETGID: u32 = 6;
pub const CAP_SETUID: u32 = 7;

/// Every capability's name by number, as of Linux 5.9 (CAP_CHECKPOINT_RESTORE = 40).
pub const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];
