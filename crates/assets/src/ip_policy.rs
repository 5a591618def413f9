//! Which resolved addresses an asset may be fetched from.
//!
//! The deny table is the IANA special-purpose registries as condensed by daenney/ssrf and the
//! checklist of `asset-safety.md` §6 line 5. The rule is strict and deterministic: an address in
//! any listed range is refused, and the resolver refuses the whole host when *any* of its answers
//! is refused (a name that mixes public and private answers is not fetched at all).
//!
//! IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo) are denied as
//! whole prefixes; the embedded IPv4 address is unwrapped only to explain the verdict.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

/// Why an address was refused (or that it was allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A public address: may be connected to.
    Public,
    /// Allowed only because of a test-support switch (`allow_private_networks` or
    /// `allowed_networks`); the string names the range it would otherwise fall in.
    AllowedByConfig(&'static str),
    /// Refused; the string names the range (e.g. `private network (RFC 1918)`).
    Blocked(&'static str),
}

impl Verdict {
    /// Whether a connection to the address is allowed.
    pub fn is_allowed(&self) -> bool {
        !matches!(self, Verdict::Blocked(_))
    }
}

const V4: &[(&str, &str)] = &[
    ("0.0.0.0/8", "\"this network\" (0.0.0.0/8)"),
    ("10.0.0.0/8", "private network (RFC 1918)"),
    ("100.64.0.0/10", "carrier-grade NAT (RFC 6598)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (includes cloud metadata 169.254.169.254)"),
    ("172.16.0.0/12", "private network (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation (TEST-NET-1)"),
    ("192.31.196.0/24", "AS112 anycast"),
    ("192.52.193.0/24", "AMT anycast"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("192.168.0.0/16", "private network (RFC 1918)"),
    ("192.175.48.0/24", "AS112 direct delegation"),
    ("198.18.0.0/15", "benchmarking (RFC 2544)"),
    ("198.51.100.0/24", "documentation (TEST-NET-2)"),
    ("203.0.113.0/24", "documentation (TEST-NET-3)"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved (240.0.0.0/4)"),
];

const V6: &[(&str, &str)] = &[
    ("::/128", "unspecified address (::)"),
    ("::1/128", "loopback"),
    ("::ffff:0:0/96", "IPv4-mapped IPv6"),
    ("::/96", "IPv4-compatible IPv6 (deprecated)"),
    ("64:ff9b::/96", "NAT64 well-known prefix"),
    ("64:ff9b:1::/48", "NAT64 local-use prefix"),
    ("100::/64", "discard-only (RFC 6666)"),
    ("2001::/32", "Teredo"),
    ("2001:db8::/32", "documentation"),
    ("2001::/23", "IETF protocol assignments"),
    ("2002::/16", "6to4"),
    ("2620:4f:8000::/48", "AS112-v6"),
    ("3fff::/20", "documentation (RFC 9637)"),
    ("5f00::/16", "segment routing (SRv6 SIDs)"),
    ("fc00::/7", "unique local (private network)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
];

type Tables = (Vec<(Ipv4Net, &'static str)>, Vec<(Ipv6Net, &'static str)>);

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let v4 = V4.iter().map(|(n, why)| (n.parse().expect("valid v4 table entry"), *why)).collect();
        let v6 = V6.iter().map(|(n, why)| (n.parse().expect("valid v6 table entry"), *why)).collect();
        (v4, v6)
    })
}

/// The IPv4 address carried inside an IPv6 address, if it has one of the embedding forms
/// (IPv4-mapped, IPv4-compatible, NAT64 well-known, 6to4, Teredo). Used to explain verdicts.
pub fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = v6.octets();
    let seg = v6.segments();
    let tail = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    if seg[..6] == [0, 0, 0, 0, 0, 0] && !v6.is_unspecified() && !v6.is_loopback() {
        return Some(tail); // ::a.b.c.d (compatible)
    }
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail); // 64:ff9b::a.b.c.d
    }
    if seg[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])); // 2002:AABB:CCDD::/48
    }
    if seg[0] == 0x2001 && seg[1] == 0 {
        // Teredo: the client's public IPv4 is the last 32 bits, XOR-ed with 0xffffffff.
        return Some(Ipv4Addr::new(!o[12], !o[13], !o[14], !o[15]));
    }
    None
}

/// The range an address falls in, if it is not public. IPv6 outside global unicast
/// (`2000::/3`) is never public, whatever the table says.
pub fn deny_reason(ip: IpAddr) -> Option<&'static str> {
    let (v4, v6) = tables();
    match ip {
        IpAddr::V4(a) => v4.iter().find(|(n, _)| n.contains(&a)).map(|(_, why)| *why),
        IpAddr::V6(a) => {
            if let Some((_, why)) = v6.iter().find(|(n, _)| n.contains(&a)) {
                return Some(why);
            }
            if a.segments()[0] & 0xe000 != 0x2000 {
                return Some("not global unicast IPv6 (outside 2000::/3)");
            }
            None
        }
    }
}

/// The address policy in force: the deny table plus the test-support exemptions.
#[derive(Debug, Clone, Default)]
pub struct IpPolicy {
    /// Allow every address (test support; logged loudly when on).
    pub allow_private_networks: bool,
    /// Ranges exempted from the deny table (test support).
    pub allowed_networks: Vec<IpNet>,
}

impl IpPolicy {
    /// The verdict for one address.
    pub fn check(&self, ip: IpAddr) -> Verdict {
        // A v4-mapped answer is judged as the address the kernel will actually dial, so an
        // exemption for 127.0.0.1/32 does not also exempt ::ffff:127.0.0.1 by accident, and vice
        // versa: the mapped form stays denied as a whole prefix.
        match deny_reason(ip) {
            None => Verdict::Public,
            Some(why) => {
                if self.allow_private_networks || self.allowed_networks.iter().any(|n| n.contains(&ip)) {
                    Verdict::AllowedByConfig(why)
                } else {
                    Verdict::Blocked(why)
                }
            }
        }
    }

    /// A one-line human explanation of the verdict for `ip`, naming an embedded IPv4 address.
    pub fn explain(&self, ip: IpAddr) -> String {
        let embedded = match ip {
            IpAddr::V6(v6) => embedded_ipv4(v6)
                .map(|v4| format!(", embeds {v4} ({})", deny_reason(v4.into()).unwrap_or("public"))),
            IpAddr::V4(_) => None,
        }
        .unwrap_or_default();
        match self.check(ip) {
            Verdict::Public => format!("{ip}: public{embedded}"),
            Verdict::AllowedByConfig(why) => {
                format!("{ip}: {why}{embedded}, allowed by test-support configuration")
            }
            Verdict::Blocked(why) => format!("{ip}: blocked, {why}{embedded}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(s: &str) -> bool {
        !IpPolicy::default().check(s.parse().unwrap()).is_allowed()
    }

    #[test]
    fn every_listed_v4_range_is_blocked_at_both_edges() {
        for (net, _) in V4 {
            let n: Ipv4Net = net.parse().unwrap();
            assert!(blocked(&n.network().to_string()), "{net} first");
            assert!(blocked(&n.broadcast().to_string()), "{net} last");
        }
    }

    #[test]
    fn every_listed_v6_range_is_blocked_at_both_edges() {
        for (net, _) in V6 {
            let n: Ipv6Net = net.parse().unwrap();
            assert!(blocked(&n.network().to_string()), "{net} first");
            assert!(blocked(&n.broadcast().to_string()), "{net} last");
        }
    }

    #[test]
    fn neighbours_of_blocked_ranges_are_public() {
        // CGNAT edges as in smokescreen's table, and the addresses just outside RFC 1918.
        for ok in [
            "100.63.255.254",
            "100.128.0.1",
            "9.255.255.255",
            "11.0.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "169.253.255.255",
            "1.1.1.1",
            "8.8.8.8",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "2001:4860:4860::8888",
        ] {
            assert!(!blocked(ok), "{ok} should be public");
        }
    }

    #[test]
    fn sample_addresses_from_the_checklist_are_blocked() {
        for bad in [
            "0.0.0.0",
            "127.0.0.1",
            "127.255.255.254",
            "10.1.2.3",
            "169.254.169.254",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:8.8.8.8",
            "::ffff:a9fe:a9fe",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::8.8.8.8",
            "64:ff9b:1::10.0.0.1",
            "2002:a9fe:a9fe::",
            "2002:0a00:0001::",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:db8::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::2",
            "100::1",
            "3fff::1",
            "4000::1",
        ] {
            assert!(blocked(bad), "{bad} should be blocked");
        }
    }

    #[test]
    fn embedded_ipv4_is_unwrapped_in_every_form() {
        let cases = [
            ("::ffff:169.254.169.254", "169.254.169.254"),
            ("::10.0.0.1", "10.0.0.1"),
            ("64:ff9b::100.64.0.1", "100.64.0.1"),
            ("2002:0a00:0001::", "10.0.0.1"),
            // Teredo sample from RFC 4380: client 157.60.0.1 obfuscated as 62c3:fffe.
            ("2001:0:4136:e378:8000:63bf:62c3:fffe", "157.60.0.1"),
        ];
        for (v6, v4) in cases {
            let got = embedded_ipv4(v6.parse().unwrap()).map(|a| a.to_string());
            assert_eq!(got.as_deref(), Some(v4), "{v6}");
        }
        assert_eq!(embedded_ipv4("2606:4700::1111".parse().unwrap()), None);
        let msg = IpPolicy::default().explain("::ffff:a9fe:a9fe".parse().unwrap());
        assert!(msg.contains("embeds 169.254.169.254 (link-local"), "{msg}");
    }

    #[test]
    fn exemptions_are_narrow() {
        let p = IpPolicy {
            allow_private_networks: false,
            allowed_networks: vec!["127.0.0.1/32".parse().unwrap()],
        };
        assert!(p.check("127.0.0.1".parse().unwrap()).is_allowed());
        assert!(!p.check("127.0.0.2".parse().unwrap()).is_allowed());
        assert!(!p.check("::ffff:127.0.0.1".parse().unwrap()).is_allowed());
        let all = IpPolicy { allow_private_networks: true, allowed_networks: vec![] };
        assert_eq!(
            all.check("10.0.0.1".parse().unwrap()),
            Verdict::AllowedByConfig("private network (RFC 1918)")
        );
        assert_eq!(all.check("8.8.8.8".parse().unwrap()), Verdict::Public);
    }
}
