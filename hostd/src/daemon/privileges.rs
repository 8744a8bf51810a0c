//! What `hostd run`'s daemon keeps when it drops root (the mechanism, and
//! what the launcher keeps, are in `sandbox::privdrop`). `hostd run` starts
//! as root, does what only root can (hand its data, run and cgroup
//! directories to the service user, fork the launcher), then both processes
//! become the service user. The daemon is the process that parses what
//! modules send; it keeps the least.

pub use sandbox::privdrop::*;
use sandbox::caps::{CAP_CHOWN, CAP_FOWNER};

/// What the daemon keeps.
pub const DAEMON_CAPS: [Retained; 2] = [
    Retained {
        cap: CAP_CHOWN,
        name: "CAP_CHOWN",
        why: "give data/modules/<name>/files and the files hostd writes there on a module's behalf to the module's uid",
    },
    Retained {
        cap: CAP_FOWNER,
        name: "CAP_FOWNER",
        why: "restore the mode (2770, group hostd) of a module's files/ directory, which the module owns and may have changed",
    },
];

/// The daemon's documented mask, for tests and `hostd status`.
pub fn daemon_mask() -> u64 {
    mask(&DAEMON_CAPS)
}
