use std::path::PathBuf;

use crate::policy::Feature;

/// Every way a confinement can fail, each naming what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("policy {origin}: {message}")]
    PolicyParse { origin: String, message: String },
    #[error("policy {origin}: field `{field}`: {message}")]
    PolicyInvalid { origin: String, field: String, message: String },
    #[error("policy {policy:?} needs kernel feature `{feature}`, which is missing here ({detail}); add \"{feature}\" to allow_downgrade to run without it")]
    MissingFeature { policy: String, feature: Feature, detail: String },
    #[error("seccomp program for policy {policy:?} does not compile: {message}")]
    Seccomp { policy: String, message: String },
    #[error("the launcher must be single-threaded (found {threads} threads): fork it before starting any runtime")]
    NotSingleThreaded { threads: u32 },
    #[error("launching needs root, or CAP_SETUID and CAP_SETGID, on the host (to map the sandbox to uid {uid}); run as root or via the hostd service")]
    NotRoot { uid: u32 },
    #[error("cgroup {path}: {op}: {source}")]
    Cgroup { path: PathBuf, op: &'static str, source: std::io::Error },
    #[error("cgroups: {0}")]
    CgroupSetup(String),
    #[error("{path}: {op}: {source}")]
    Io { path: PathBuf, op: &'static str, source: std::io::Error },
    #[error("launcher set-up: {step} failed: {errno}")]
    Launcher { step: &'static str, errno: std::io::Error },
    #[error("launch of {policy:?}: {step} failed: {errno}")]
    Launch { policy: String, step: &'static str, errno: std::io::Error },
    #[error("launch of {policy:?}: {step} failed: {reason}")]
    NamespacesRefused { policy: String, step: &'static str, reason: String },
    #[error("sandboxed child of {policy:?} failed at step `{step}`{}: {errno}", detail_suffix(.detail))]
    ChildSetup { policy: String, step: &'static str, errno: std::io::Error, detail: String },
    #[error("waiting for sandbox pid {pid}: {errno}")]
    Wait { pid: i32, errno: std::io::Error },
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

impl SandboxError {
    /// The error a child's [`crate::handshake::Failure`] report stands for.
    pub(crate) fn child_setup(policy: &str, f: crate::handshake::Failure) -> Self {
        SandboxError::ChildSetup {
            policy: policy.to_string(),
            step: f.step.name(),
            errno: std::io::Error::from_raw_os_error(f.errno),
            detail: f.detail,
        }
    }

    /// A launch step of `policy` that failed with an errno, as a closure for
    /// `map_err`.
    pub(crate) fn launch(policy: &str, step: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        let policy = policy.to_string();
        move |errno| SandboxError::Launch { policy, step, errno }
    }

    /// A failed clone3 into the sandbox's namespaces. The errnos a
    /// container runtime or LSM answers with get the cause and the fix
    /// ([`crate::environment::NamespaceRefusal`]); others stay plain.
    pub(crate) fn clone(policy: &str, step: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        let policy = policy.to_string();
        move |errno| match errno.raw_os_error() {
            Some(n @ (libc::EPERM | libc::EACCES | libc::ENOSYS | libc::ENOSPC)) => {
                SandboxError::NamespacesRefused { policy, step, reason: crate::environment::NamespaceRefusal::Clone(n).to_string() }
            }
            _ => SandboxError::Launch { policy, step, errno },
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, source: std::io::Error) -> Self {
        SandboxError::Io { path: path.into(), op, source }
    }
}
