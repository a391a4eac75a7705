//! The operator's exceptions (`CHATTERFLY_ALLOW_PRIVATE`) and the check every target goes
//! through: an address is allowed when it is globally routable, or when the operator
//! allowed its network or the host name it was resolved from.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::ip::blocked_reason;

/// `CHATTERFLY_ALLOW_PRIVATE`: CIDRs, single addresses, and host names (`*.corp.example`
/// matches any name below `corp.example`).
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    nets: Vec<IpNet>,
    hosts: Vec<String>,
}

impl AllowList {
    /// Parses the comma-separated setting; an entry that is neither a network nor a host
    /// name is an error naming it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut list = Self::default();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if let Ok(net) = entry.parse::<IpNet>() {
                list.nets.push(net.trunc());
            } else if let Ok(ip) = entry.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
                list.nets.push(IpNet::from(ip));
            } else if valid_host_pattern(entry) {
                list.hosts.push(entry.to_ascii_lowercase());
            } else {
                return Err(format!(
                    "CHATTERFLY_ALLOW_PRIVATE: `{entry}` is neither a CIDR (10.0.0.0/8), an address nor a host name"
                ));
            }
        }
        Ok(list)
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty() && self.hosts.is_empty()
    }

    fn allows_ip(&self, ip: IpAddr) -> bool {
        let canonical = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(&ip) || n.contains(&canonical))
    }

    fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.iter().any(|pattern| match pattern.strip_prefix("*.") {
            Some(suffix) => {
                host.len() > suffix.len() && host.ends_with(suffix) && host[..host.len() - suffix.len()].ends_with('.')
            }
            None => *pattern == host,
        })
    }

    /// `Err(reason)` when `host` names a machine's own or its cloud's private services
    /// ([`blocked_name`]) and the operator did not allow that name: refused before any
    /// lookup, so the answer does not depend on what the resolver happens to know.
    pub fn check_name(&self, host: &str) -> Result<(), &'static str> {
        match blocked_name(host) {
            Some(reason) if !self.allows_host(host) => Err(reason),
            _ => Ok(()),
        }
    }

    /// `Err(reason)` when `ip`, reached through `host`, may not be called.
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), &'static str> {
        match blocked_reason(ip) {
            None => Ok(()),
            Some(_) if self.allows_ip(ip) || self.allows_host(host) => Ok(()),
            Some(reason) => Err(reason),
        }
    }
}

/// Names refused whatever they resolve to (compared without case and without trailing
/// dots): the loopback names (RFC 6761), names only a local network can answer, and the
/// cloud metadata services' names. A single-label name (`metadata`, `instance-data`) is
/// completed by the resolver's search domains, so only the network it runs in knows what
/// it reaches.
pub fn blocked_name(host: &str) -> Option<&'static str> {
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    let under = |zone: &str| name == zone || name.ends_with(&format!(".{zone}"));
    const METADATA: &[&str] = &[
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.com",
        "metadata.azure.internal",
        "metadata.packet.net",
        "metadata.platformequinix.com",
        "metadata.tencentyun.com",
        "metadata.oraclecloud.com",
    ];
    if name.is_empty() {
        Some("an empty host name")
    } else if under("localhost") || ["localhost.localdomain", "ip6-localhost", "ip6-loopback"].contains(&name.as_str())
    {
        Some("a loopback name (RFC 6761)")
    } else if METADATA.iter().any(|m| under(m)) {
        Some("a cloud metadata service name")
    } else if [
        "internal",
        "local",
        "localdomain",
        "home.arpa",
        "lan",
        "intranet",
        "corp",
    ]
    .iter()
    .any(|z| under(z))
    {
        Some("a name only the local network answers")
    } else if !name.contains('.') {
        Some("a single-label name (the resolver's search domains decide what it reaches)")
    } else {
        None
    }
}

fn valid_host_pattern(s: &str) -> bool {
    let name = s.strip_prefix("*.").unwrap_or(s);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty() && label.len() <= 63 && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let a = AllowList::parse("127.0.0.1, 10.1.0.0/16,fd00::/8, internal.example, *.corp.example, [::1]").unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(a.check("x", ip("127.0.0.1")).is_ok());
        assert!(
            a.check("x", ip("::ffff:127.0.0.1")).is_ok(),
            "mapped form of an allowed address"
        );
        assert!(a.check("x", ip("127.0.0.2")).is_err());
        assert!(a.check("x", ip("10.1.255.1")).is_ok());
        assert!(a.check("x", ip("10.2.0.1")).is_err());
        assert!(a.check("x", ip("fd12::1")).is_ok());
        assert!(a.check("x", ip("::1")).is_ok());
        assert!(a.check("internal.example", ip("10.9.9.9")).is_ok());
        assert!(a.check("INTERNAL.example.", ip("10.9.9.9")).is_ok());
        assert!(a.check("a.corp.example", ip("192.168.1.1")).is_ok());
        assert!(a.check("corp.example", ip("192.168.1.1")).is_err());
        assert!(a.check("evilcorp.example", ip("192.168.1.1")).is_err());
        assert!(a.check("anything", ip("8.8.8.8")).is_ok());
        for bad in ["10.0.0.0/33", "not a host", "a..b", "http://x"] {
            assert!(AllowList::parse(bad).is_err(), "{bad}");
        }
        assert!(AllowList::parse("").unwrap().is_empty());
    }
}
