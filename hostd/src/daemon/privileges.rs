//! What `hostd run`'s processes keep when they drop root (the mechanism is
//! in `sandbox::privdrop`). `hostd run` starts as root, does what only root
//! can (hand its data, run and cgroup directories to the service user, bind
//! the control socket, fork the launcher), then both processes become the
//! service user. The daemon is the process that parses what modules send:
//! it keeps no capability at all. Ownership work on a module's behalf
//! (giving `files/` and what hostd writes there to the module's uid) is the
//! launcher's, which reads only hostd's messages and checks each request
//! (`launcher/rules.rs`).

pub use sandbox::privdrop::*;
use sandbox::caps::{CAP_CHOWN, CAP_FOWNER};

/// What the daemon keeps: nothing.
pub const DAEMON_CAPS: [Retained; 0] = [];

/// What hostd's launcher keeps: a launcher's own, plus the ownership work.
pub const HOSTD_LAUNCHER_CAPS: [Retained; 4] = [
    LAUNCHER_CAPS[0],
    LAUNCHER_CAPS[1],
    Retained {
        cap: CAP_CHOWN,
        name: "CAP_CHOWN",
        why: "give data/modules/<name>/files and the files hostd writes there on a module's behalf to the module's uid (checked: see launcher/rules.rs)",
    },
    Retained {
        cap: CAP_FOWNER,
        name: "CAP_FOWNER",
        why: "set the mode (2770 or 0660) of what it gave a module, which the module then owns",
    },
];

/// The daemon's documented mask, for tests and `hostd status`.
pub fn daemon_mask() -> u64 {
    mask(&DAEMON_CAPS)
}

/// hostd's launcher's documented mask.
pub fn hostd_launcher_mask() -> u64 {
    mask(&HOSTD_LAUNCHER_CAPS)
}
