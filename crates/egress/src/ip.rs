//! Which addresses a tenant's call may reach: only globally routable ones.
//!
//! std's `is_global` is unstable, and `ipnet` knows ranges but not which are special, so the
//! special-purpose registries (RFC 6890 and successors, IANA's IPv4 and IPv6 special-purpose
//! address registries) are written out here once, each range with the reason shown to the
//! user. IPv6 addresses that carry an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo)
//! are refused outright or judged by the IPv4 address inside.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

const V4: &[(&str, &str)] = &[
    ("0.0.0.0/8", "\"this network\" (0.0.0.0/8)"),
    ("10.0.0.0/8", "private network (RFC 1918)"),
    ("100.64.0.0/10", "shared address space (CGNAT, RFC 6598)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata lives here)"),
    ("172.16.0.0/12", "private network (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation (TEST-NET-1)"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("192.168.0.0/16", "private network (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking (RFC 2544)"),
    ("198.51.100.0/24", "documentation (TEST-NET-2)"),
    ("203.0.113.0/24", "documentation (TEST-NET-3)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved (includes broadcast)"),
];

const V6: &[(&str, &str)] = &[
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::ffff:0:0/96", "IPv4-mapped"),
    ("::/96", "IPv4-compatible"),
    ("64:ff9b::/96", "NAT64 (translated IPv4)"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "discard-only"),
    ("2001:2::/48", "benchmarking"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing (SRv6)"),
    ("fc00::/7", "unique local (private)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
];

/// Why an address is not globally routable; `None` when it is.
pub fn blocked_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    V4.iter()
        .find_map(|(net, why)| net.parse::<Ipv4Net>().ok().filter(|n| n.contains(&ip)).map(|_| *why))
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(why) = V6
        .iter()
        .find_map(|(net, why)| net.parse::<Ipv6Net>().ok().filter(|n| n.contains(&ip)).map(|_| *why))
    {
        return Some(why);
    }
    let seg = ip.segments();
    // 6to4: 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
    if seg[0] == 0x2002 {
        let inner = Ipv4Addr::new((seg[1] >> 8) as u8, seg[1] as u8, (seg[2] >> 8) as u8, seg[2] as u8);
        if v4_reason(inner).is_some() {
            return Some("6to4 with a non-public IPv4 inside");
        }
    }
    // Teredo: 2001:0000:SERVER:FLAGS:PORT:CLIENT, the client address inverted.
    if seg[0] == 0x2001 && seg[1] == 0 {
        let server = Ipv4Addr::new((seg[2] >> 8) as u8, seg[2] as u8, (seg[3] >> 8) as u8, seg[3] as u8);
        let (c1, c2) = (!seg[6], !seg[7]);
        let client = Ipv4Addr::new((c1 >> 8) as u8, c1 as u8, (c2 >> 8) as u8, c2 as u8);
        if v4_reason(server).is_some() || v4_reason(client).is_some() {
            return Some("Teredo with a non-public IPv4 inside");
        }
    }
    // Everything outside global unicast (2000::/3) is special or unassigned.
    if seg[0] & 0xe000 != 0x2000 {
        return Some("not in the global unicast range (2000::/3)");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(addr: &str, blocked: bool) {
        let ip: IpAddr = addr.parse().unwrap();
        assert_eq!(
            blocked_reason(ip).is_some(),
            blocked,
            "{addr}: {:?}",
            blocked_reason(ip)
        );
    }

    #[test]
    fn every_range_and_its_edges() {
        for (a, blocked) in [
            ("0.0.0.0", true),
            ("0.255.255.255", true),
            ("1.0.0.0", false),
            ("9.255.255.255", false),
            ("10.0.0.0", true),
            ("10.255.255.255", true),
            ("11.0.0.0", false),
            ("100.63.255.255", false),
            ("100.64.0.0", true),
            ("100.127.255.255", true),
            ("100.128.0.0", false),
            ("100.100.100.200", true),
            ("126.255.255.255", false),
            ("127.0.0.1", true),
            ("127.255.255.255", true),
            ("128.0.0.0", false),
            ("169.253.255.255", false),
            ("169.254.0.0", true),
            ("169.254.169.254", true),
            ("169.255.0.0", false),
            ("172.15.255.255", false),
            ("172.16.0.0", true),
            ("172.31.255.255", true),
            ("172.32.0.0", false),
            ("192.0.0.0", true),
            ("192.0.0.255", true),
            ("192.0.1.0", false),
            ("192.0.2.1", true),
            ("192.88.99.1", true),
            ("192.167.255.255", false),
            ("192.168.0.0", true),
            ("192.168.255.255", true),
            ("192.169.0.0", false),
            ("198.17.255.255", false),
            ("198.18.0.0", true),
            ("198.19.255.255", true),
            ("198.20.0.0", false),
            ("198.51.100.7", true),
            ("203.0.113.7", true),
            ("203.0.114.0", false),
            ("223.255.255.255", false),
            ("224.0.0.0", true),
            ("239.255.255.255", true),
            ("240.0.0.0", true),
            ("255.255.255.255", true),
            ("8.8.8.8", false),
            ("1.1.1.1", false),
            ("93.184.216.34", false),
            ("::", true),
            ("::1", true),
            ("::ffff:127.0.0.1", true),
            ("::ffff:8.8.8.8", true),
            ("::127.0.0.1", true),
            ("::8.8.8.8", true),
            ("64:ff9b::7f00:1", true),
            ("64:ff9b::808:808", true),
            ("64:ff9b:1::1", true),
            ("100::1", true),
            ("2001:2::1", true),
            ("2001:db8::1", true),
            ("3fff::1", true),
            ("5f00::1", true),
            ("fc00::1", true),
            ("fd00:ec2::254", true),
            ("fdff::1", true),
            ("fe80::1", true),
            ("febf::1", true),
            ("fec0::1", true),
            ("ff02::1", true),
            ("2002:7f00:1::", true),
            ("2002:a00:1::", true),
            ("2002:c0a8:101::1", true),
            ("2002:808:808::", false),
            // Teredo: server 65.54.227.120, client 127.0.0.1 obfuscated as 80ff:fffe
            ("2001:0:4136:e378:8000:63bf:80ff:fffe", true),
            // Teredo: server 10.0.0.1
            ("2001:0:a00:1:8000:63bf:f7f7:f7f7", true),
            // Teredo: both public (server 65.54.227.120, client 8.8.8.8 = f7f7:f7f7)
            ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", false),
            ("2606:4700:4700::1111", false),
            ("2001:4860:4860::8888", false),
            ("2a00:1450:4001::1", false),
            ("4000::1", true),
            ("::2", true),
        ] {
            check(a, blocked);
        }
    }
}
