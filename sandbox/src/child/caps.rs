//! The child's capability drop: securebits locked first (it needs
//! CAP_SETPCAP), then the bounding set, the ambient set, and last every
//! set emptied. Afterwards uid 0 inside never regains capabilities on exec,
//! and nobody can undo that.

use super::{check, StepResult};
use crate::caps;
use crate::handshake::{Failure, Step};
use crate::sys::errno;

pub(super) fn drop_all(cap_last_cap: u32) -> StepResult {
    let bits = caps::SECBITS_LOCKED_DOWN | caps::SECBIT_KEEP_CAPS_LOCKED;
    // SAFETY (block): prctl with integer arguments only.
    unsafe {
        check(Step::Securebits, libc::prctl(libc::PR_SET_SECUREBITS, bits, 0, 0, 0) as _)?;
        for cap in 0..=cap_last_cap {
            if libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) < 0 {
                return Err(Failure::with_detail(Step::CapabilityBoundingSet, errno(), format!("capability {cap}")));
            }
        }
        check(Step::AmbientCapabilities, libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) as _)?;
    }
    check(Step::Capset, caps::capset(0, 0, 0))
}
