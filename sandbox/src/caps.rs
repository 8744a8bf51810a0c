//! Raw capability and securebits calls, shared by the sandbox child (which
//! drops everything before exec) and hostd's own privilege drop. Plain
//! syscalls with no allocation: safe between clone and exec.

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
    let header = CapHeader { version: 0x2008_0522, pid: 0 };
    let data = [
        CapData { effective: effective as u32, permitted: permitted as u32, inheritable: inheritable as u32 },
        CapData { effective: (effective >> 32) as u32, permitted: (permitted >> 32) as u32, inheritable: (inheritable >> 32) as u32 },
    ];
    // SAFETY: header and data are live locals of the layout capset expects.
    unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) }
}
