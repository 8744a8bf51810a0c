//! Landlock (landlock(7)), the last step before seccomp: every filesystem
//! right this ABI knows is handled (so anything not granted is denied), the
//! implicit rules of the policy and its own rules are added by path, the
//! verified binary by its fd, TCP ports on ABI ≥ 4 and scopes on ABI ≥ 6.
//! Unless the policy allows a downgrade, anything short of full enforcement
//! is a failure. Failures name the rule's path.
//!
//! Landlock ABI versions and the Linux release that brought each: 1 = 5.13
//! (filesystem), 2 = 5.19 (Refer), 3 = 6.2 (Truncate), 4 = 6.7 (TCP bind and
//! connect), 5 = 6.10 (device ioctl), 6 = 6.12 (abstract-unix and signal
//! scoping).

use std::os::fd::BorrowedFd;

use landlock::{
    Access, AccessFs, AccessNet, NetPort, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
    ABI,
};

use super::StepResult;
use crate::handshake::{Failure, Step};
use crate::policy::{FsAccess, LANDLOCK_ABI_NET, LANDLOCK_ABI_SCOPE};
use crate::prepare::Prepared;
use crate::seccomp::EXEC_FD;

fn fs_access(list: &[FsAccess], abi: ABI) -> landlock::BitFlags<AccessFs> {
    let mut out = landlock::BitFlags::<AccessFs>::empty();
    for a in list {
        out |= match a {
            FsAccess::Execute => AccessFs::Execute,
            FsAccess::ReadFile => AccessFs::ReadFile,
            FsAccess::ReadDir => AccessFs::ReadDir,
            FsAccess::WriteFile => AccessFs::WriteFile,
            FsAccess::Truncate => AccessFs::Truncate,
            FsAccess::RemoveFile => AccessFs::RemoveFile,
            FsAccess::RemoveDir => AccessFs::RemoveDir,
            FsAccess::MakeReg => AccessFs::MakeReg,
            FsAccess::MakeDir => AccessFs::MakeDir,
            FsAccess::MakeSym => AccessFs::MakeSym,
            FsAccess::Refer => AccessFs::Refer,
        };
    }
    // Rights the running ABI does not know cannot be requested.
    out & AccessFs::from_all(abi)
}

/// The landlock crate's errors carry no errno; say what it said.
fn failed(step: Step, detail: impl std::fmt::Display) -> Failure {
    Failure::with_detail(step, libc::EINVAL, detail.to_string())
}

pub(super) fn apply(p: &Prepared) -> StepResult {
    let Some(ll) = &p.policy.landlock else { return Ok(()) };
    let abi = ABI::from(p.landlock_abi as i32);
    let ruleset_err = |e: landlock::RulesetError| failed(Step::LandlockRuleset, e);
    let mut ruleset = Ruleset::default().handle_access(AccessFs::from_all(abi)).map_err(ruleset_err)?;
    if p.landlock_abi >= LANDLOCK_ABI_NET {
        ruleset = ruleset.handle_access(AccessNet::from_all(abi)).map_err(ruleset_err)?;
    }
    if p.landlock_abi >= LANDLOCK_ABI_SCOPE {
        let mut scopes = landlock::BitFlags::<Scope>::empty();
        if ll.scope_abstract_unix {
            scopes |= Scope::AbstractUnixSocket;
        }
        if ll.scope_signal {
            scopes |= Scope::Signal;
        }
        if !scopes.is_empty() {
            ruleset = ruleset.scope(scopes).map_err(ruleset_err)?;
        }
    }
    // The verified binary: executable and readable, by inode, wherever mounted.
    // SAFETY: EXEC_FD was placed by arrange_fds and stays open until exec.
    let exec_fd = unsafe { BorrowedFd::borrow_raw(EXEC_FD) };
    let mut created = ruleset
        .create()
        .map_err(ruleset_err)?
        .add_rule(PathBeneath::new(exec_fd, AccessFs::Execute | AccessFs::ReadFile))
        .map_err(|e| failed(Step::LandlockRule, format_args!("the binary (fd {EXEC_FD}): {e}")))?;
    for rule in p.policy.implicit_landlock_rules().into_iter().chain(ll.rules.iter().cloned()) {
        let access = fs_access(&rule.access, abi);
        if access.is_empty() {
            continue;
        }
        let path = rule.path.display().to_string();
        let fd = PathFd::new(&rule.path).map_err(|e| failed(Step::LandlockRulePath, format_args!("{path}: {e}")))?;
        created = created.add_rule(PathBeneath::new(fd, access)).map_err(|e| failed(Step::LandlockRule, format_args!("{path}: {e}")))?;
    }
    if p.landlock_abi >= LANDLOCK_ABI_NET {
        for (ports, access) in [(&ll.tcp_bind, AccessNet::BindTcp), (&ll.tcp_connect, AccessNet::ConnectTcp)] {
            for port in ports {
                created = created
                    .add_rule(NetPort::new(*port, access))
                    .map_err(|e| failed(Step::LandlockRule, format_args!("TCP port {port}: {e}")))?;
            }
        }
    }
    let status = created.restrict_self().map_err(|e| failed(Step::LandlockRestrict, e))?;
    if status.ruleset != RulesetStatus::FullyEnforced && !p.landlock_partial_ok {
        return Err(Failure::with_detail(Step::LandlockNotEnforced, libc::EOPNOTSUPP, format!("{:?} on ABI {}", status.ruleset, p.landlock_abi)));
    }
    Ok(())
}
