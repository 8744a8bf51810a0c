//! This machine's own addresses (in hostd's network namespace), so a
//! module cannot reach hostd's own listeners through an interface address
//! when they are bound to the unspecified address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Every IPv4/IPv6 address of every interface, from getifaddrs(3). An
/// error yields none: callers treat "unknown" as "refuse by port".
pub fn interface_addrs() -> Result<Vec<IpAddr>, std::io::Error> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family says its real type.
            let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if family == libc::AF_INET {
                // SAFETY: AF_INET means a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))));
            } else if family == libc::AF_INET6 {
                // SAFETY: AF_INET6 means a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: frees the list getifaddrs allocated, once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_is_among_the_interface_addresses_when_lo_is_up() {
        let addrs = super::interface_addrs().expect("getifaddrs");
        // A fresh network namespace has lo down and no address at all;
        // anywhere else loopback is listed.
        if !addrs.is_empty() {
            assert!(addrs.iter().any(|a| a.is_loopback()), "{addrs:?}");
        }
    }
}
