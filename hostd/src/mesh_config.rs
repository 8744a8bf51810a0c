//! `[mesh]` in the host config: the network a module with `network_access`
//! gets through hostd. hostd owns every socket; the module asks for links.
//! Where a module may listen and whom it may reach are the operator's
//! allowlists; everything hostd buffers for a link or a module is bounded.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

/// The ceiling no configuration can raise for one mesh frame.
pub const MESH_HARD_MAX_FRAME: u32 = 1 << 20;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MeshSettings {
    /// Addresses and ports a module's `mesh.listen_addr` may bind, as
    /// `ADDR/LEN[:PORT[-PORT]]` (e.g. "0.0.0.0/32:8334" for the seeds'
    /// default, "169.254.0.0/16"). Empty (the default): no module listens.
    pub bind_allow: Vec<NetRule>,
    /// Peers `MeshConnect` may reach: the longest matching rule of
    /// `connect_allow` and `connect_deny` decides, a tie denies. hostd's
    /// own listeners are refused whatever the rules say.
    pub connect_allow: Vec<NetRule>,
    pub connect_deny: Vec<NetRule>,
    /// Largest frame on a link (hard cap 1 MiB).
    pub max_frame_bytes: u32,
    /// Time to connect, and for the peer's preamble to arrive.
    pub connect_timeout_ms: u32,
    pub handshake_timeout_ms: u32,
    /// A keepalive goes out after this long without sending; a link that
    /// received nothing (keepalives included) for `idle_timeout_ms`, or
    /// whose peer took that long to take bytes already queued, is closed.
    pub keepalive_ms: u32,
    pub idle_timeout_ms: u32,
    /// Once a frame's header arrived, its body must arrive within this.
    pub frame_timeout_ms: u32,
    /// Links one module holds (both directions), connects it has pending,
    /// and connects it may start per second (sustained; the burst is the
    /// pending cap).
    pub max_links_per_module: u32,
    pub max_pending_connects: u32,
    pub connects_per_sec: u32,
    /// Inbound connections a module's listener accepts per second; more
    /// are closed at once and counted.
    pub accepts_per_sec: u32,
    /// Bytes of `MeshSend` one link holds before its socket takes them
    /// (the link's `send_window`).
    pub link_send_bytes: u32,
    /// Bytes of received frames one module holds before it reads them;
    /// past it hostd stops reading that module's links (TCP backpressure).
    pub module_recv_bytes: u32,
    /// Bytes of frames all modules together hold in hostd, both ways.
    pub global_buffer_bytes: u64,
    /// Sending rates: per module and per link, frames and bytes per second
    /// (one second of each is the burst). Past them a link's frames wait.
    pub module_frames_per_sec: u32,
    pub module_bytes_per_sec: u64,
    pub link_frames_per_sec: u32,
    pub link_bytes_per_sec: u64,
    /// Threads of the runtime links run on, and their nice value (higher
    /// = lower priority than the threads serving modules' requests); 0
    /// threads: links share the runtime serving requests.
    pub io_threads: u32,
    pub io_nice: i32,
}

impl Default for MeshSettings {
    fn default() -> Self {
        let any = |s: &str| s.parse::<NetRule>().unwrap_or(NetRule::ANY_V4);
        MeshSettings {
            bind_allow: Vec::new(),
            connect_allow: ["0.0.0.0/0", "::/0"].into_iter().map(any).collect(),
            connect_deny: DEFAULT_DENY.iter().map(|s| any(s)).collect(),
            max_frame_bytes: 64 << 10,
            connect_timeout_ms: 5000,
            handshake_timeout_ms: 5000,
            keepalive_ms: 10_000,
            idle_timeout_ms: 30_000,
            frame_timeout_ms: 10_000,
            max_links_per_module: 64,
            max_pending_connects: 8,
            connects_per_sec: 10,
            accepts_per_sec: 20,
            link_send_bytes: 1 << 20,
            module_recv_bytes: 4 << 20,
            global_buffer_bytes: 256 << 20,
            module_frames_per_sec: 100_000,
            module_bytes_per_sec: 200 << 20,
            link_frames_per_sec: 100_000,
            link_bytes_per_sec: 200 << 20,
            io_threads: 2,
            io_nice: 10,
        }
    }
}

/// Refused by default: this machine (loopback, unspecified), link-local,
/// multicast and broadcast. A longer `connect_allow` rule reopens a part
/// (the multi-host tests allow their 169.254.x.y/30 links).
pub const DEFAULT_DENY: &[&str] = &[
    "0.0.0.0/8",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "255.255.255.255/32",
    "::/128",
    "::1/128",
    "fe80::/10",
    "ff00::/8",
    "::ffff:0:0/96",
];

impl MeshSettings {
    /// The first key whose value cannot work, and why. A frame reaches
    /// its module inside one IPC frame of at most `ipc_max_frame` bytes.
    pub fn check(&self, ipc_max_frame: u32) -> Result<(), (&'static str, String)> {
        if self.max_frame_bytes == 0 || self.max_frame_bytes > MESH_HARD_MAX_FRAME {
            return Err(("mesh.max_frame_bytes", format!("must be between 1 and {MESH_HARD_MAX_FRAME}")));
        }
        if u64::from(self.max_frame_bytes) + 64 > u64::from(ipc_max_frame) {
            return Err(("mesh.max_frame_bytes", format!("must be at most daemon.max_frame_bytes - 64 ({})", ipc_max_frame.saturating_sub(64))));
        }
        if self.link_send_bytes < self.max_frame_bytes || self.module_recv_bytes < self.max_frame_bytes {
            return Err(("mesh.link_send_bytes", "link_send_bytes and module_recv_bytes must hold at least one max_frame_bytes frame".into()));
        }
        if self.global_buffer_bytes < u64::from(self.module_recv_bytes) {
            return Err(("mesh.global_buffer_bytes", "must be at least module_recv_bytes".into()));
        }
        let positive = [
            ("mesh.connect_timeout_ms", self.connect_timeout_ms),
            ("mesh.handshake_timeout_ms", self.handshake_timeout_ms),
            ("mesh.keepalive_ms", self.keepalive_ms),
            ("mesh.frame_timeout_ms", self.frame_timeout_ms),
            ("mesh.max_links_per_module", self.max_links_per_module),
            ("mesh.max_pending_connects", self.max_pending_connects),
            ("mesh.connects_per_sec", self.connects_per_sec),
            ("mesh.accepts_per_sec", self.accepts_per_sec),
            ("mesh.module_frames_per_sec", self.module_frames_per_sec),
            ("mesh.link_frames_per_sec", self.link_frames_per_sec),
        ];
        if !(0..=19).contains(&self.io_nice) {
            return Err(("mesh.io_nice", "must be between 0 and 19 (a nice value; hostd never raises its priority)".into()));
        }
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err((key, "must be > 0".into()));
        }
        if self.module_bytes_per_sec < u64::from(self.max_frame_bytes) || self.link_bytes_per_sec < u64::from(self.max_frame_bytes) {
            return Err(("mesh.module_bytes_per_sec", "module_bytes_per_sec and link_bytes_per_sec must be at least max_frame_bytes".into()));
        }
        if self.idle_timeout_ms <= self.keepalive_ms {
            return Err(("mesh.idle_timeout_ms", format!("must be longer than keepalive_ms ({})", self.keepalive_ms)));
        }
        Ok(())
    }

    /// Whether a module may listen on `addr`.
    pub fn may_bind(&self, addr: SocketAddr) -> bool {
        self.bind_allow.iter().any(|r| r.matches(addr))
    }

    /// Whether `MeshConnect` may reach `addr` by the rules (hostd's own
    /// listeners are checked by the caller): the longest matching rule
    /// wins, a tie or no match denies.
    pub fn may_connect(&self, addr: SocketAddr) -> Result<(), String> {
        fn best(rules: &[NetRule], addr: SocketAddr) -> Option<&NetRule> {
            rules.iter().filter(|r| r.matches(addr)).max_by_key(|r| r.prefix)
        }
        match (best(&self.connect_allow, addr), best(&self.connect_deny, addr)) {
            (None, _) => Err(format!("{addr} matches no mesh.connect_allow rule")),
            (Some(a), Some(d)) if d.prefix >= a.prefix => Err(format!("{addr} is refused by mesh.connect_deny rule {d}")),
            _ => Ok(()),
        }
    }
}

/// The module's `mesh.listen_addr` from its merged config (its
/// `config.toml` under the host's `[modules.<name>]`), if it names one.
pub fn listen_addr(config: &toml::Table) -> Option<String> {
    let v = config.get("mesh")?.get("listen_addr")?;
    Some(v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
}

/// `ADDR/LEN[:PORT[-PORT]]`: a network and an optional port range. The
/// port comes after the prefix length, so IPv6 needs no brackets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetRule {
    pub net: IpAddr,
    pub prefix: u8,
    pub ports: (u16, u16),
}

impl NetRule {
    const ANY_V4: NetRule = NetRule { net: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), prefix: 0, ports: (0, u16::MAX) };

    pub fn matches(&self, addr: SocketAddr) -> bool {
        let port = addr.port();
        if port < self.ports.0 || port > self.ports.1 {
            return false;
        }
        let ip = match addr.ip() {
            IpAddr::V6(v6) if self.net.is_ipv4() => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            ip => ip,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(net: &[u8], addr: &[u8], prefix: u8) -> bool {
    let (whole, rest) = (usize::from(prefix / 8), prefix % 8);
    if net[..whole] != addr[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        net[whole] & mask == addr[whole] & mask
    }
}

impl std::str::FromStr for NetRule {
    type Err = String;
    fn from_str(s: &str) -> Result<NetRule, String> {
        let usage = || format!("{s:?} is not ADDR/LEN[:PORT[-PORT]] (e.g. \"169.254.0.0/16\", \"0.0.0.0/32:8334\", \"fd00::/8:9000-9100\")");
        let (net, rest) = s.split_once('/').ok_or_else(usage)?;
        let (len, ports) = match rest.split_once(':') {
            Some((len, ports)) => (len, Some(ports)),
            None => (rest, None),
        };
        let net: IpAddr = net.parse().map_err(|_| usage())?;
        let prefix: u8 = len.parse().map_err(|_| usage())?;
        let bits = if net.is_ipv4() { 32 } else { 128 };
        if prefix > bits {
            return Err(format!("{s:?}: prefix length {prefix} is longer than {bits}"));
        }
        let ports = match ports {
            None => (0, u16::MAX),
            Some(p) => {
                let (lo, hi) = p.split_once('-').unwrap_or((p, p));
                let (lo, hi): (u16, u16) = (lo.parse().map_err(|_| usage())?, hi.parse().map_err(|_| usage())?);
                if lo > hi {
                    return Err(format!("{s:?}: port range {lo}-{hi} is empty"));
                }
                (lo, hi)
            }
        };
        Ok(NetRule { net, prefix, ports })
    }
}

impl std::fmt::Display for NetRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)?;
        match self.ports {
            (0, u16::MAX) => Ok(()),
            (lo, hi) if lo == hi => write!(f, ":{lo}"),
            (lo, hi) => write!(f, ":{lo}-{hi}"),
        }
    }
}

impl Serialize for NetRule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NetRule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<NetRule, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    #[test]
    fn rules_parse_print_and_match() {
        let r: NetRule = "169.254.0.0/16:8000-9000".parse().expect("parses");
        assert_eq!(r.to_string(), "169.254.0.0/16:8000-9000");
        assert!(r.matches(sa("169.254.3.2:8334")));
        assert!(!r.matches(sa("169.254.3.2:9001")));
        assert!(!r.matches(sa("169.255.0.1:8334")));
        let v6: NetRule = "fd00::/8:9000".parse().expect("parses");
        assert!(v6.matches(sa("[fd12::1]:9000")));
        assert!(!v6.matches(sa("[fe80::1]:9000")));
        let odd: NetRule = "10.0.0.0/9".parse().expect("parses");
        assert!(odd.matches(sa("10.127.0.1:1")) && !odd.matches(sa("10.128.0.1:1")));
        for bad in ["10.0.0.1", "10.0.0.0/33", "10.0.0.0/8:9-8", "x/8", "10.0.0.0/8:port"] {
            assert!(bad.parse::<NetRule>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn default_connect_rules_refuse_this_machine_and_link_local() {
        let m = MeshSettings::default();
        for refused in ["127.0.0.1:8334", "[::1]:8334", "169.254.1.2:8334", "[fe80::1]:1", "0.0.0.0:80", "224.0.0.1:1", "[::ffff:127.0.0.1]:1"] {
            assert!(m.may_connect(sa(refused)).is_err(), "{refused} allowed");
        }
        for allowed in ["203.0.113.7:8334", "[2001:db8::1]:8334"] {
            assert!(m.may_connect(sa(allowed)).is_ok(), "{allowed} refused");
        }
    }

    #[test]
    fn a_longer_allow_rule_reopens_part_of_a_denied_range_and_a_tie_denies() {
        let mut m = MeshSettings { connect_allow: vec!["169.254.7.0/24".parse().expect("rule")], ..MeshSettings::default() };
        assert!(m.may_connect(sa("169.254.7.2:9000")).is_ok());
        assert!(m.may_connect(sa("169.254.8.2:9000")).is_err(), "outside every allow rule");
        m.connect_allow = vec!["169.254.0.0/16".parse().expect("rule")];
        assert!(m.may_connect(sa("169.254.7.2:9000")).is_err(), "tie with the deny rule");
    }

    #[test]
    fn nothing_may_listen_by_default_and_limits_are_checked() {
        let m = MeshSettings::default();
        assert!(!m.may_bind(sa("0.0.0.0:8334")));
        let ipc = hostd_protocol::DEFAULT_MAX_FRAME;
        assert!(m.check(ipc).is_ok());
        let bad = MeshSettings { max_frame_bytes: MESH_HARD_MAX_FRAME + 1, ..MeshSettings::default() };
        assert_eq!(bad.check(ipc).map_err(|e| e.0), Err("mesh.max_frame_bytes"));
        let bad = MeshSettings { max_frame_bytes: ipc - 10, ..MeshSettings::default() };
        assert_eq!(bad.check(ipc).map_err(|e| e.0), Err("mesh.max_frame_bytes"), "must fit an IPC frame");
        let bad = MeshSettings { idle_timeout_ms: 10, ..MeshSettings::default() };
        assert_eq!(bad.check(ipc).map_err(|e| e.0), Err("mesh.idle_timeout_ms"));
        let bad = MeshSettings { io_nice: -5, ..MeshSettings::default() };
        assert_eq!(bad.check(ipc).map_err(|e| e.0), Err("mesh.io_nice"));
    }
}
