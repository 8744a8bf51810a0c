//! Whether a module's entry point can run in its sandbox at all: the
//! sandbox's root is an empty read-only tmpfs and the binary is executed
//! from an fd, so it must be an ELF executable that needs no interpreter
//! (no `PT_INTERP` program header: static, or static-pie). A dynamically
//! linked binary would fail at exec with a bare ENOENT (the loader it
//! names does not exist there); this says why, and how to build it.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// What to do instead, said with every refusal.
pub const BUILD_STATIC: &str = "build it static, e.g. `RUSTFLAGS=\"-C target-feature=+crt-static\" cargo build --release \
     --target x86_64-unknown-linux-gnu` (the --target matters: it keeps build scripts dynamic), or with musl \
     (`--target x86_64-unknown-linux-musl`)";

/// Program header type of the interpreter request (elf(5)).
const PT_INTERP: u32 = 3;

/// `Ok` for an ELF executable without an interpreter; otherwise why it
/// cannot run in a sandbox.
pub fn check_static(file: &File) -> Result<(), String> {
    let mut ident = [0u8; 64];
    let n = file.read_at(&mut ident, 0).map_err(|e| format!("read: {e}"))?;
    if n < 52 || ident[..4] != *b"\x7fELF" {
        return Err(format!("is not an ELF executable (a script's interpreter would not exist in the sandbox): {BUILD_STATIC}"));
    }
    let (wide, little) = (ident[4] == 2, ident[5] == 1);
    if !little {
        return Err("is a big-endian ELF file; hostd runs little-endian x86-64 and aarch64 binaries".into());
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or_default());
    // ELF header fields (elf(5)): program header table offset, entry size, count.
    let (phoff, phentsize, phnum) = if wide {
        (u64_at(&ident, 0x20), u16_at(&ident, 0x36), u16_at(&ident, 0x38))
    } else {
        (u64::from(u32_at(&ident, 0x1c)), u16_at(&ident, 0x2a), u16_at(&ident, 0x2c))
    };
    let entry = usize::from(phentsize).clamp(32, 64);
    let mut ph = vec![0u8; entry];
    for i in 0..u64::from(phnum) {
        let at = phoff.saturating_add(i * entry as u64);
        if file.read_at(&mut ph, at).map_err(|e| format!("read: {e}"))? < entry {
            return Err("is a truncated ELF file".into());
        }
        if u32_at(&ph, 0) != PT_INTERP {
            continue;
        }
        let (offset, size) = if wide { (u64_at(&ph, 8), u64_at(&ph, 32)) } else { (u64::from(u32_at(&ph, 4)), u64::from(u32_at(&ph, 16))) };
        let mut name = vec![0u8; size.min(256) as usize];
        let got = file.read_at(&mut name, offset).unwrap_or(0);
        let interp = String::from_utf8_lossy(&name[..got]).trim_end_matches('\0').to_string();
        return Err(format!(
            "is dynamically linked (it needs the loader {interp}), but a module's sandbox has an empty root: {BUILD_STATIC}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_binaries_and_scripts_are_refused_static_ones_pass() {
        // This test binary is built static-pie by the workspace's
        // .cargo/config.toml: the control.
        let me = File::open(std::env::current_exe().expect("exe")).expect("open");
        check_static(&me).expect("a static-pie binary passes");
        let dynamic = ["/bin/sh", "/usr/bin/env", "/bin/ls"].into_iter().find_map(|p| {
            let f = File::open(p).ok()?;
            check_static(&f).err()
        });
        let why = dynamic.expect("the host has a dynamically linked /bin/sh, env or ls");
        assert!(why.contains("dynamically linked") && why.contains("crt-static") && why.contains("ld-"), "{why}");
        let dir = crate::scratch::Scratch::new("elf");
        let script = dir.join("script");
        std::fs::write(&script, "#!/bin/sh\necho hi\n").expect("write");
        let why = check_static(&File::open(&script).expect("open")).unwrap_err();
        assert!(why.contains("not an ELF executable"), "{why}");
    }
}
