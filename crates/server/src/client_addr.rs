//! The client's address, for throttling repeated invalid keys per address.
//!
//! Behind a reverse proxy every connection comes from the proxy. When the peer is one of the
//! configured `server.trusted_proxies`, the client is read from `X-Forwarded-For` instead: the
//! rightmost address in it that is not itself a trusted proxy. Entries left of that one were
//! written by whoever sent the request and could be anything, so they are never believed.

use crate::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

/// The client's address: the connection's peer, or what a trusted proxy says it forwarded for.
/// `None` when the server was started without connect info ([`crate::serve`] has it; a router
/// used on its own does not).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let trusted = &state.engine.config().server.trusted_proxies;
        Ok(ClientAddr(peer.map(|p| client_of(p, &parts.headers, trusted))))
    }
}

/// The client of a request that arrived from `peer` with these headers.
pub fn client_of(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(&ip));
    if !is_trusted(peer) {
        return peer;
    }
    // Several X-Forwarded-For headers form one list, in order.
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            // A hop that is not an address: nothing left of it can be believed, and the last
            // trusted proxy is the best answer there is.
            return client;
        };
        client = ip;
        if !is_trusted(ip) {
            return ip;
        }
    }
    client
}

/// An `X-Forwarded-For` entry: an address, optionally with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let c = client_of(ip("203.0.113.9"), &headers(&["198.51.100.1"]), &nets(&["10.0.0.0/8"]));
        assert_eq!(c, ip("203.0.113.9"));
        // No trusted proxies configured: the header is never read.
        assert_eq!(client_of(ip("10.0.0.1"), &headers(&["198.51.100.1"]), &[]), ip("10.0.0.1"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = nets(&["10.0.0.0/8"]);
        // A spoofed entry left of the real client is ignored.
        let h = headers(&["1.1.1.1, 198.51.100.7, 10.1.2.3"]);
        assert_eq!(client_of(ip("10.0.0.2"), &h, &trusted), ip("198.51.100.7"));
        // Several headers are one list; ports are dropped.
        let h = headers(&["1.1.1.1", "198.51.100.7:4711", "10.1.2.3"]);
        assert_eq!(client_of(ip("10.0.0.2"), &h, &trusted), ip("198.51.100.7"));
        let h = headers(&["[2001:db8::5]:443"]);
        assert_eq!(client_of(ip("10.0.0.2"), &h, &trusted), ip("2001:db8::5"));
    }

    #[test]
    fn missing_malformed_or_all_trusted_chains_stop_at_the_last_trusted_hop() {
        let trusted = nets(&["10.0.0.0/8", "127.0.0.1/32"]);
        assert_eq!(client_of(ip("127.0.0.1"), &HeaderMap::new(), &trusted), ip("127.0.0.1"));
        let h = headers(&["198.51.100.7, garbage, 10.9.9.9"]);
        assert_eq!(client_of(ip("127.0.0.1"), &h, &trusted), ip("10.9.9.9"));
        let h = headers(&["10.9.9.9, 10.8.8.8"]);
        assert_eq!(client_of(ip("127.0.0.1"), &h, &trusted), ip("10.9.9.9"));
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_networks() {
        let c = client_of(ip("::ffff:10.0.0.2"), &headers(&["198.51.100.7"]), &nets(&["10.0.0.0/8"]));
        assert_eq!(c, ip("198.51.100.7"));
    }
}
