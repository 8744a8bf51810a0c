//! A multi-host test bed on one machine: network namespaces made by the
//! test, joined by veth pairs with link-local /30 addresses and no route
//! anywhere else. Each host is a namespace; hostd runs inside one with
//! [`crate::daemon_env::HostdEnv::netns`]. Everything is removed on drop
//! (also when a test panics), and namespaces a killed test left behind are
//! swept at the next start.
//!
//! Edge `e` joining hosts (a, b) is 169.254.<e+1>.1/30 on a's side and
//! 169.254.<e+1>.2/30 on b's.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Names of every namespace this helper creates start with this and the
/// creating process's pid.
const PREFIX: &str = "hostd-t-";

pub struct NetBed {
    names: Vec<String>,
    pub edges: Vec<(usize, usize)>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip {args:?}: {e} (is iproute2 installed?)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Remove namespaces of test processes that no longer run.
fn sweep_stale() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else { return };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix(PREFIX) else { continue };
        let pid: Option<u64> = rest.split('-').next().and_then(|p| p.parse().ok());
        if pid.is_some_and(|p| !crate::pid_alive(p)) {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

impl NetBed {
    /// `hosts` namespaces joined by `edges` (pairs of host indexes).
    pub fn new(hosts: usize, edges: &[(usize, usize)]) -> Result<NetBed, String> {
        static N: AtomicU32 = AtomicU32::new(0);
        sweep_stale();
        let (pid, n) = (std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let mut bed = NetBed { names: Vec::new(), edges: edges.to_vec() };
        for h in 0..hosts {
            let name = format!("{PREFIX}{pid}-{n}-{h}");
            ip(&["netns", "add", &name])?;
            bed.names.push(name.clone());
            ip(&["-n", &name, "link", "set", "lo", "up"])?;
        }
        for (e, &(a, b)) in edges.iter().enumerate() {
            // Interface names are at most 15 bytes (IFNAMSIZ - 1).
            let (va, vb) = (format!("hv{pid:x}{n:x}e{e}a"), format!("hv{pid:x}{n:x}e{e}b"));
            ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb])?;
            for (v, host, side) in [(&va, a, 1), (&vb, b, 2)] {
                let ns = &bed.names[host];
                ip(&["link", "set", v, "netns", ns])?;
                ip(&["-n", ns, "addr", "add", &format!("{}/30", NetBed::edge_addr(e, side)), "dev", v])?;
                ip(&["-n", ns, "link", "set", v, "up"])?;
            }
        }
        Ok(bed)
    }

    /// The address of `side` (1 = the edge's first host, 2 = its second) on edge `e`.
    pub fn edge_addr(e: usize, side: u8) -> Ipv4Addr {
        Ipv4Addr::new(169, 254, (e + 1) as u8, side)
    }

    /// The namespaces' names (under /run/netns).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The namespace file of host `h` (for setns).
    pub fn ns_path(&self, h: usize) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.names[h])
    }

    /// Run `f` on a thread inside host `h`'s namespace: sockets it makes
    /// belong there (and may be used from any thread afterwards).
    pub fn in_ns<T: Send>(&self, h: usize, f: impl FnOnce() -> T + Send) -> T {
        let file = std::fs::File::open(self.ns_path(h)).unwrap_or_else(|e| panic!("open {}: {e}", self.ns_path(h).display()));
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on this thread only, with a namespace fd we hold.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }
}

impl Drop for NetBed {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth ends inside it, and with
        // them their peers.
        for name in &self.names {
            if let Err(e) = ip(&["netns", "del", name]) {
                eprintln!("netbed teardown: {e}");
            }
        }
    }
}
