//! The hand-written classification agrees with the standard library wherever std has a
//! stable answer: any address std calls loopback, private, link-local, multicast,
//! unspecified, broadcast, documentation or unique-local is blocked here too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chatterfly_egress::ip::blocked_reason;
use proptest::prelude::*;

fn std_says_special_v4(ip: Ipv4Addr) -> bool {
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
}

fn std_says_special_v6(ip: Ipv6Addr) -> bool {
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        || ip.to_ipv4_mapped().is_some()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn std_special_v4_is_blocked(raw in any::<u32>()) {
        let ip = Ipv4Addr::from(raw);
        if std_says_special_v4(ip) {
            prop_assert!(blocked_reason(IpAddr::V4(ip)).is_some(), "{ip}");
        }
    }

    #[test]
    fn std_special_v6_is_blocked(raw in any::<u128>(), prefix in prop_oneof![Just(0u16), Just(0xfc00), Just(0xfd00), Just(0xfe80), Just(0xff02), Just(0x2001), Just(0x2002), Just(0x2600)]) {
        // bias the first segment towards the interesting ranges
        let raw = (raw & !(0xffffu128 << 112)) | (u128::from(prefix) << 112);
        let ip = Ipv6Addr::from(raw);
        if std_says_special_v6(ip) {
            prop_assert!(blocked_reason(IpAddr::V6(ip)).is_some(), "{ip}");
        }
    }

    #[test]
    fn mapped_addresses_follow_their_ipv4(raw in any::<u32>()) {
        let v4 = Ipv4Addr::from(raw);
        prop_assert!(blocked_reason(IpAddr::V6(v4.to_ipv6_mapped())).is_some(), "mapped forms are never dialled");
        if std_says_special_v4(v4) {
            prop_assert!(blocked_reason(IpAddr::V4(v4)).is_some());
        }
    }
}
