//! The launch benchmark's payload: write one byte to fd 3 (the IPC socket)
//! and exit 0. Static, so it runs in an empty sandbox root.

fn main() {
    // SAFETY: a one-byte write from a static buffer to an inherited fd.
    let n = unsafe { libc::write(3, b"!".as_ptr().cast(), 1) };
    std::process::exit(if n == 1 { 0 } else { 3 });
}
