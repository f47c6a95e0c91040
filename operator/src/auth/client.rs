//! Who is on the other end: the client's address behind trusted proxies (`USHER_TRUSTED_PROXIES`),
//! which the per-address throttle and the session records use.
//!
//! When the TCP peer is a trusted proxy (an ingress controller), the client is the right-most
//! `X-Forwarded-For` hop that is not itself trusted; otherwise `X-Forwarded-For` is ignored, so a
//! client cannot pick its own address.

use std::{net::IpAddr, str::FromStr};

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// A `USHER_TRUSTED_PROXIES` entry that is not a CIDR or an address.
#[derive(Debug, thiserror::Error)]
#[error(
    "USHER_TRUSTED_PROXIES: {0:?} is not an address or CIDR; write them comma-separated, such as 10.0.0.0/8,fd00::/8"
)]
pub struct BadProxy(String);

impl FromStr for TrustedProxies {
    type Err = BadProxy;

    /// Comma-separated CIDRs or single addresses; empty means none.
    fn from_str(s: &str) -> Result<TrustedProxies, BadProxy> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<IpNet>()
                    .or_else(|_| p.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| BadProxy(p.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }
}

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request that came from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        // Hops are appended left to right; several headers count as one list, in order.
        let hops: Vec<&str> = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut last = peer;
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>().map(canonical) else {
                // An unreadable hop: nothing to its left can be believed.
                return last;
            };
            if !self.trusts(ip) {
                return ip;
            }
            last = ip;
        }
        last
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, what a dual-stack listener reports) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client a throttle counts: an IPv4 address, or the /64 an IPv6 address lies in (one host
/// or one home network owns a whole /64, so a new address per guess is not a new client).
/// Anything that is not an address counts as itself.
pub fn throttle_key(address: &str) -> String {
    match address.parse::<IpAddr>().map(canonical) {
        Ok(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => address.to_owned(),
    }
}

#[cfg(test)]
mod tests {

    #![allow(clippy::unwrap_used)]

    use axum::http::HeaderValue;

    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append(X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_right_most_untrusted_hop() {
        let t: TrustedProxies = "10.0.0.0/8, 192.168.1.7".parse().unwrap();
        // The ingress (10.1.2.3) appended the client it saw.
        assert_eq!(
            t.client(ip("10.1.2.3"), &headers(&["203.0.113.9"])),
            ip("203.0.113.9")
        );
        // A client's own forged hops stand left of the one the ingress appended.
        assert_eq!(
            t.client(ip("10.1.2.3"), &headers(&["6.6.6.6, 203.0.113.9"])),
            ip("203.0.113.9")
        );
        // Two trusted proxies in a row (a load balancer, then the ingress).
        assert_eq!(
            t.client(ip("10.1.2.3"), &headers(&["203.0.113.9", "192.168.1.7"])),
            ip("203.0.113.9")
        );
        // No header: the proxy itself.
        assert_eq!(t.client(ip("10.1.2.3"), &headers(&[])), ip("10.1.2.3"));
        // Garbage stops the walk at the last hop that could be read.
        assert_eq!(
            t.client(ip("10.1.2.3"), &headers(&["203.0.113.9, junk, 10.0.0.9"])),
            ip("10.0.0.9")
        );
        assert_eq!(
            t.client(ip("::ffff:10.1.2.3"), &headers(&["2001:db8::1"])),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn from_an_untrusted_peer_forwarded_for_is_ignored() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("198.51.100.4"), &headers(&["1.2.3.4"])),
            ip("198.51.100.4")
        );
        let t: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        assert_eq!(
            t.client(ip("198.51.100.4"), &headers(&["10.0.0.1"])),
            ip("198.51.100.4")
        );
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert_eq!(
            "".parse::<TrustedProxies>().unwrap(),
            TrustedProxies::default()
        );
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_and_ipv4_per_address() {
        assert_eq!(
            super::throttle_key("2001:db8:0:1::abcd"),
            "2001:db8:0:1::/64"
        );
        assert_eq!(
            super::throttle_key("2001:db8:0:1:ffff::1"),
            "2001:db8:0:1::/64"
        );
        assert_ne!(
            super::throttle_key("2001:db8:0:2::1"),
            super::throttle_key("2001:db8:0:1::1")
        );
        assert_eq!(super::throttle_key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(super::throttle_key("192.0.2.7"), "192.0.2.7");
    }
}
