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
    #[error("launch of {policy:?}: {step} failed: {errno}")]
    Launch { policy: String, step: &'static str, errno: std::io::Error },
    #[error("sandboxed child of {policy:?} failed at step `{step}`: {errno}")]
    ChildSetup { policy: String, step: &'static str, errno: std::io::Error },
}

impl SandboxError {
    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, source: std::io::Error) -> Self {
        SandboxError::Io { path: path.into(), op, source }
    }
}
