//! How a new sandbox gets into its own cgroup — the one interface the cold
//! launch and the standby share:
//! * cgroup v2: the cgroup is created, limits written, *before* the clone,
//!   and the child is born in it (CLONE_INTO_CGROUP, Linux 5.7): nothing of
//!   it ever runs outside its limits;
//! * cgroup v1: there is no CLONE_INTO_CGROUP, so the cgroup is created and
//!   the child moved in *after* the clone, while the child waits
//!   ([`crate::handshake::Go::CgroupAttached`]) before anything of the
//!   module runs;
//! * no cgroup: the policy sets no limits, or runs without them by an
//!   explicit downgrade.

use std::os::fd::RawFd;

use super::{Cgroup, CgroupMode, CgroupRoot};
use crate::error::SandboxError;
use crate::policy::{Feature, Policy};
use crate::prepare::Prepared;
use crate::process::Child;

pub(crate) enum Placement<'a> {
    None,
    /// v2: made before the clone; handed to the child's handle after it.
    BornInto(Option<Cgroup>),
    /// v1: made and joined after the clone.
    AttachAfterClone(&'a CgroupRoot),
}

impl<'a> Placement<'a> {
    /// Decide, and on v2 create the cgroup. `cgroups` is required when the
    /// policy sets limits and the kernel has cgroups.
    pub fn plan(prepared: &Prepared, cgroups: Option<&'a CgroupRoot>) -> Result<Placement<'a>, SandboxError> {
        let policy = &prepared.policy;
        let wants = policy.cgroup.enabled && !prepared.downgrades.iter().any(|d| d.feature == Feature::Cgroup);
        match (wants, cgroups) {
            (false, _) => Ok(Placement::None),
            (true, None) => Err(SandboxError::CgroupSetup(format!(
                "policy {:?} sets cgroup limits but the launcher was given no cgroup root",
                policy.name
            ))),
            (true, Some(root)) if matches!(root.mode(), CgroupMode::Unified { .. }) => {
                Ok(Placement::BornInto(Some(root.create(&policy.name, &policy.cgroup)?)))
            }
            (true, Some(root)) => Ok(Placement::AttachAfterClone(root)),
        }
    }

    /// The directory fd for CLONE_INTO_CGROUP, on v2.
    pub fn clone_into_fd(&self) -> Option<RawFd> {
        match self {
            Placement::BornInto(Some(cg)) => cg.clone_into_fd(),
            _ => None,
        }
    }

    /// Whether the child must wait for [`crate::handshake::cgroup_attached`].
    pub fn after_clone(&self) -> bool {
        matches!(self, Placement::AttachAfterClone(_))
    }

    /// Right after the clone: the child's handle owns the v2 cgroup it was
    /// born in, so its drop tears that down.
    pub fn born(&mut self, child: &mut Child) {
        if let Placement::BornInto(cg) = self {
            if let Some(cg) = cg.take() {
                child.set_cgroup(cg);
            }
        }
    }

    /// v1: create the child's cgroup and move it in (no-op otherwise). A
    /// non-root launcher must do this before the child changes its ids: v1
    /// lets an unprivileged writer move only tasks with its own uid.
    pub fn attach(&self, child: &mut Child, policy: &Policy) -> Result<(), SandboxError> {
        if let Placement::AttachAfterClone(root) = self {
            let cg = root.create(&policy.name, &policy.cgroup)?;
            cg.attach(child.pid())?;
            child.set_cgroup(cg);
        }
        Ok(())
    }
}
