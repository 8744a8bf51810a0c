//! `sandbox`: a [`Policy`] value → a confined child process. Knows nothing
//! about modules. The launch order is in `docs/architecture.md`; the kernel
//! features each step needs, with their Linux versions, in `docs/kernel.md`.
//!
//! The map:
//! * the value — `policy.rs` (what a sandbox may do), `seccomp.rs` (the
//!   allowlist as data) and `bpf.rs` (its compiled program);
//! * before any launch — `features.rs` (the kernel probe), `environment.rs`
//!   (container, cgroup layout, a real namespace attempt) and `prepare.rs`
//!   (policy + kernel → a compiled launch, or a refusal naming the feature);
//! * the launch — `launch.rs` (the launcher's order), `child/` (the child's
//!   order, one file per isolation step), `handshake.rs` (every message
//!   between the two), `standby.rs` (the first half done ahead of time),
//!   `cgroup/` (v1 and v2, and how a child gets into its cgroup);
//! * afterwards — `process.rs` (the handle: wait, classify, kill, teardown);
//! * shared mechanisms — `sys.rs` (raw syscalls and constants, with their
//!   Linux versions), `fdpass.rs` (SCM_RIGHTS over SEQPACKET), `caps.rs`
//!   and `privdrop.rs` (capabilities: the child's drop, a launcher's drop).

mod bpf;
pub mod caps;
pub mod cgroup;
mod child;
pub mod environment;
pub mod error;
pub mod fdpass;
pub mod features;
pub mod handshake;
pub mod launch;
pub mod policy;
pub mod prepare;
pub mod privdrop;
pub mod process;
pub mod seccomp;
mod standby;
pub mod sys;

pub use cgroup::{CgroupMode, CgroupRoot, Usage};
pub use error::SandboxError;
pub use features::KernelFeatures;
pub use launch::{spawn, Command};
pub use policy::{Feature, Policy};
pub use prepare::{check_kernel, prepare, Downgrade, Prepared};
pub use process::{Child, Outcome};
pub use standby::Standbys;
pub use sys::pipe;

/// Drop supplementary groups: a root parent's group 0 would otherwise stay
/// attached to the sandbox as an (unmapped, still effective) group.
/// Call once in the launcher process before the first spawn.
pub fn clear_supplementary_groups() -> Result<(), SandboxError> {
    // SAFETY: setgroups(0, NULL) has no memory preconditions.
    if unsafe { libc::setgroups(0, std::ptr::null()) } < 0 {
        return Err(SandboxError::Launcher { step: "setgroups(0)", errno: std::io::Error::last_os_error() });
    }
    Ok(())
}
