//! What the launcher accepts from the daemon. The daemon parses module
//! input, so the launcher treats it as possibly compromised and checks
//! every request against what hostd legitimately asks for.
//!
//! **Policies** ([`LauncherRules::check_policy`]): every namespace on; the
//! sandbox's host uid and gid inside `[identity]`'s module range; no
//! read-only binds (hostd's roots are empty tmpfs); the one data mount is
//! `<data_dir>/modules/<policy name>/files`, noexec, and `/` read-only;
//! capabilities dropped; seccomp and Landlock present, and every kernel
//! feature the policy may run without listed in the host config's
//! `[sandbox] allow_downgrade`.
//!
//! **Ownership work**, which the launcher holds CAP_CHOWN and CAP_FOWNER
//! for so the daemon need not ([`LauncherRules::give`]), checked on the fd
//! the daemon passed (never a path the launcher resolves, so no symlink or
//! rename race):
//!
//! - the object is a directory or a regular file with one link;
//! - it lies in a module's `files/` (`<data_dir>/modules/<name>/files`,
//!   or beneath it), per the kernel's name for the fd;
//! - it belongs to hostd (it created it) or already to a module uid;
//! - the new owner is a module uid (inside `[identity]`'s range), the group
//!   is hostd's, and the mode is the one hostd gives: 2770 for
//!   directories, 0660 for files.
//!
//! What it cannot check: which module a uid belongs to (the id map is the
//! daemon's), so a compromised daemon could move a file in one module's
//! `files/` to another module's uid — module data only, never a host file.

use crate::config::IdRange;
use sandbox::{Feature, Policy};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// What the launcher accepts, fixed at fork from the host config.
#[derive(Debug, Clone)]
pub struct LauncherRules {
    /// `<data_dir>/modules`, resolved.
    pub modules_data: PathBuf,
    pub ids: IdRange,
    pub allow_downgrade: Vec<Feature>,
}

impl LauncherRules {
    pub fn new(data_dir: &Path, ids: IdRange, allow_downgrade: Vec<Feature>) -> LauncherRules {
        let modules = data_dir.join("modules");
        // Resolved now if it exists; absolute in any case, since it is
        // compared with the kernel's names for fds.
        let resolved = std::fs::canonicalize(&modules).or_else(|_| std::path::absolute(&modules)).unwrap_or(modules);
        LauncherRules { modules_data: resolved, ids, allow_downgrade }
    }

    /// Refuse a policy the daemon could not have generated honestly.
    pub fn check_policy(&self, p: &Policy) -> Result<(), String> {
        let refuse = |why: String| Err(format!("policy {:?} refused: {why}", p.name));
        let ns = &p.namespaces;
        if !(ns.user && ns.mount && ns.pid && ns.net && ns.ipc && ns.uts && ns.cgroup) {
            return refuse("every namespace must be on".into());
        }
        for (what, id) in [("uid", p.identity.host_uid), ("gid", p.identity.host_gid)] {
            if !self.is_module_uid(id) {
                return refuse(format!("host {what} {id} is outside the module range ([identity])"));
            }
        }
        if !p.rootfs.ro_binds.is_empty() || p.rootfs.writable_root {
            return refuse("hostd's root is an empty read-only tmpfs: no binds, not writable".into());
        }
        if let Some(data) = &p.rootfs.data {
            let want = self.modules_data.join(&p.name).join("files");
            let got = std::fs::canonicalize(&data.source).unwrap_or_else(|_| data.source.clone());
            if got != want || data.allow_exec || p.name.contains('/') || p.name.starts_with('.') {
                return refuse(format!("the data mount must be {} (noexec), not {}", want.display(), data.source.display()));
            }
        }
        if !p.capabilities.drop_all {
            return refuse("capabilities must be dropped".into());
        }
        let allowed = |f: Feature| self.allow_downgrade.contains(&f);
        if p.seccomp.is_none() && !allowed(Feature::Seccomp) {
            return refuse("no seccomp filter, and [sandbox] allow_downgrade does not list seccomp".into());
        }
        if p.landlock.is_none() && !allowed(Feature::Landlock) {
            return refuse("no Landlock ruleset, and [sandbox] allow_downgrade does not list landlock".into());
        }
        if let Some(f) = p.allow_downgrade.iter().find(|f| !allowed(**f)) {
            return refuse(format!("it may run without {f}, which [sandbox] allow_downgrade does not list"));
        }
        Ok(())
    }

    fn is_module_uid(&self, uid: u32) -> bool {
        uid >= self.ids.first && uid - self.ids.first < self.ids.count
    }

    /// Check, then give the object behind `fd` to `uid` with hostd's mode.
    pub fn give(&self, fd: &OwnedFd, uid: u32) -> Result<(), String> {
        // SAFETY: zeroed stat is a valid out-parameter; fstat on an fd we hold.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
            return Err(format!("fstat: {}", std::io::Error::last_os_error()));
        }
        let mode = match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => 0o2770,
            libc::S_IFREG if st.st_nlink == 1 => 0o660,
            libc::S_IFREG => return Err(format!("refused: a file with {} links", st.st_nlink)),
            _ => return Err("refused: neither a directory nor a regular file".into()),
        };
        if !self.is_module_uid(uid) {
            return Err(format!("refused: uid {uid} is not a module uid ([identity] range)"));
        }
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        if st.st_uid != me && !self.is_module_uid(st.st_uid) {
            return Err(format!("refused: owned by uid {}, neither hostd nor a module", st.st_uid));
        }
        let path = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).map_err(|e| format!("fd path: {e}"))?;
        if !self.in_module_files(&path) {
            return Err(format!("refused: {} is not in a module's files/", path.display()));
        }
        // The fd may be O_PATH (a files/ directory its module made
        // unreadable): AT_EMPTY_PATH (Linux 2.6.39) and the fd's
        // /proc/self/fd link reach the inode without opening it again.
        // Group hostd (the launcher's own), which a module may have
        // changed: hostd's file requests reach files/ through it.
        // SAFETY: getegid has no preconditions; fchownat on an fd we hold
        // with an empty NUL-terminated path.
        if unsafe { libc::fchownat(fd.as_raw_fd(), c"".as_ptr(), uid, libc::getegid(), libc::AT_EMPTY_PATH) } != 0 {
            return Err(format!("fchownat: {}", std::io::Error::last_os_error()));
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(format!("/proc/self/fd/{}", fd.as_raw_fd()), std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("chmod: {e}"))
    }

    /// `<modules_data>/<name>/files` or beneath it.
    fn in_module_files(&self, path: &Path) -> bool {
        let Ok(rest) = path.strip_prefix(&self.modules_data) else { return false };
        let mut parts = rest.components();
        let name_ok = parts.next().is_some_and(|c| matches!(c, std::path::Component::Normal(_)));
        name_ok && parts.next().is_some_and(|c| c.as_os_str() == "files")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(dir: &Path) -> LauncherRules {
        LauncherRules::new(dir, IdRange { first: 620_000, count: 10 }, Vec::new())
    }

    #[test]
    fn only_policies_hostd_generates_are_launched() {
        let d = crate::scratch::Scratch::new("rules");
        std::fs::create_dir_all(d.join("modules/m/files")).expect("dirs");
        let r = rules(&d);
        let honest = || {
            let mut p = Policy { name: "m".into(), ..Policy::default() };
            p.identity.host_uid = 620_003;
            p.identity.host_gid = 620_003;
            p.rootfs.data = Some(sandbox::policy::DataMount {
                source: d.join("modules/m/files"),
                target: "/data".into(),
                allow_exec: false,
                read_only: false,
            });
            p
        };
        r.check_policy(&honest()).expect("control: what hostd generates passes");
        type Tamper = fn(&mut Policy);
        let rows: [(&str, Tamper); 9] = [
            ("host uid 0", |p| p.identity.host_uid = 0),
            ("hostd's gid", |p| p.identity.host_gid = 999),
            ("no network namespace", |p| p.namespaces.net = false),
            ("a bind of /", |p| p.rootfs.ro_binds.push(sandbox::policy::BindMount { source: "/".into(), target: "/host".into() })),
            ("another module's files", |p| p.name = "other".into()),
            ("exec on /data", |p| p.rootfs.data.as_mut().expect("data").allow_exec = true),
            ("no seccomp", |p| p.seccomp = None),
            ("no Landlock", |p| p.landlock = None),
            ("capabilities kept", |p| p.capabilities.drop_all = false),
        ];
        for (what, tamper) in rows {
            let mut p = honest();
            tamper(&mut p);
            assert!(r.check_policy(&p).is_err(), "{what} was accepted");
        }
        let mut p = honest();
        p.seccomp = None;
        let lenient = LauncherRules::new(&d, IdRange { first: 620_000, count: 10 }, vec![Feature::Seccomp]);
        lenient.check_policy(&p).expect("the host config allows that downgrade");
    }

    fn open(p: &Path) -> OwnedFd {
        std::fs::File::open(p).expect("open").into()
    }

    #[test]
    fn only_what_hostd_gives_a_module_is_given() {
        let d = crate::scratch::Scratch::new("own");
        let files = d.join("modules/m/files");
        std::fs::create_dir_all(files.join("sub")).expect("dirs");
        std::fs::write(files.join("f"), b"x").expect("file");
        std::fs::write(d.join("module-ids.toml"), b"x").expect("ids");
        std::fs::hard_link(files.join("f"), files.join("f2")).expect("link");
        let r = rules(&d);
        let outside_uid = r.give(&open(&files.join("sub")), 1000).unwrap_err();
        assert!(outside_uid.contains("not a module uid"), "{outside_uid}");
        let outside = r.give(&open(&d.join("module-ids.toml")), 620_001).unwrap_err();
        assert!(outside.contains("not in a module's files/"), "{outside}");
        let db = r.give(&open(&d.join("modules/m")), 620_001).unwrap_err();
        assert!(db.contains("not in a module's files/"), "{db}");
        let linked = r.give(&open(&files.join("f")), 620_001).unwrap_err();
        assert!(linked.contains("2 links"), "{linked}");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            std::fs::remove_file(files.join("f2")).expect("unlink");
            r.give(&open(&files.join("f")), 620_001).expect("a file in files/");
            r.give(&open(&files.join("sub")), 620_001).expect("a directory in files/");
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(files.join("sub")).expect("meta");
            assert_eq!((m.uid(), m.mode() & 0o7777), (620_001, 0o2770));
        }
    }
}
