//! `sandbox`: a `Policy` value → a confined child process.
//!
//! Knows nothing about modules. See DESIGN.md for the launch order this
//! crate implements (`launch::spawn` parent side, `child` child side).

mod bpf;
pub mod caps;
pub mod cgroup;
mod child;
pub mod error;
pub mod fdpass;
pub mod features;
pub mod launch;
pub mod policy;
pub mod seccomp;
mod standby;

pub use cgroup::{CgroupMode, CgroupRoot, Usage};
pub use error::SandboxError;
pub use features::KernelFeatures;
pub use launch::{check_kernel, pipe, prepare, spawn, Child, Command, Downgrade, Outcome, Prepared};
pub use policy::{Feature, Policy};
pub use standby::Standbys;

/// Drop supplementary groups: a root parent's group 0 would otherwise stay
/// attached to the sandbox as an (unmapped, still effective) group.
/// Call once in the launcher process before the first spawn.
pub fn clear_supplementary_groups() -> Result<(), SandboxError> {
    // SAFETY: setgroups(0, NULL) has no memory preconditions.
    if unsafe { libc::setgroups(0, std::ptr::null()) } < 0 {
        return Err(SandboxError::Launch {
            policy: String::new(),
            step: "setgroups(0) in the launcher",
            errno: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}
