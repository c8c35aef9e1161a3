//! The address of the client behind a request, for sign-in throttling and the
//! audit log: the connection's peer, or, when that peer is one of the configured
//! trusted proxies, the address the proxy reports in `[http] client_address_header`.
//!
//! Anyone can send that header, so it is believed only as far as trusted proxies
//! wrote it: read from the right (each proxy appends the address it saw), the
//! client is the first address that is not itself a trusted proxy.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::config::HttpConfig;
use crate::error::ApiError;

/// The client's address as svcdash records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// An address range whose hosts are proxies svcdash trusts: `10.0.0.0/8`, or
/// one address such as `127.0.0.1` or `::1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrustedProxy(IpNet);

impl TrustedProxy {
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.0.contains(&addr)
    }
}

impl FromStr for TrustedProxy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        s.parse::<IpNet>()
            .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
            .map(|net| Self(net.trunc()))
            .map_err(|_| format!("{s:?} is not an address or an address range such as 10.0.0.0/8"))
    }
}

impl TryFrom<String> for TrustedProxy {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<TrustedProxy> for String {
    fn from(proxy: TrustedProxy) -> String {
        proxy.to_string()
    }
}

impl fmt::Display for TrustedProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The client behind a connection from `peer` that sent `headers`.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, header: &str, trusted: &[TrustedProxy]) -> IpAddr {
    let is_trusted = |addr: IpAddr| trusted.iter().any(|p| p.contains(addr));
    let mut client = peer.to_canonical();
    if header.is_empty() || !is_trusted(client) {
        return client;
    }
    // Several header lines count as one list, in order.
    let entries: Vec<Option<IpAddr>> = headers
        .get_all(header)
        .iter()
        .flat_map(|line| match line.to_str() {
            Ok(line) => line.split(',').map(parse_entry).collect(),
            Err(_) => vec![None],
        })
        .collect();
    for entry in entries.into_iter().rev() {
        // What cannot be read ends what can be believed: the last proxy seen is
        // the best address known.
        let Some(addr) = entry else { break };
        client = addr;
        if !is_trusted(addr) {
            break;
        }
    }
    client
}

/// One entry of an `X-Forwarded-For`-style list: `192.0.2.1`, `192.0.2.1:5678`,
/// `2001:db8::1` or `[2001:db8::1]:5678`.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let addr = entry.parse::<IpAddr>().or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip())).ok()?;
    Some(addr.to_canonical())
}

/// Records the client's address in the request, for [`ClientAddr`] and
/// [`crate::auth::client_addr`].
pub fn identify(config: &HttpConfig, request: &mut Request) {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let client = resolve(peer.ip(), request.headers(), &config.client_address_header, &config.trusted_proxies);
        request.extensions_mut().insert(ClientAddr(client));
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<ClientAddr>()
            .copied()
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("the client's address was not recorded")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(peer: &str, lines: &[&str], trusted: &[&str]) -> String {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append("x-forwarded-for", line.parse().unwrap());
        }
        let trusted: Vec<TrustedProxy> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        resolve(peer.parse().unwrap(), &headers, "X-Forwarded-For", &trusted).to_string()
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_proxy() {
        assert_eq!(client("203.0.113.9", &["198.51.100.1"], &[]), "203.0.113.9");
        assert_eq!(client("203.0.113.9", &["198.51.100.1"], &["10.0.0.0/8"]), "203.0.113.9");
        assert_eq!(client("10.1.2.3", &["198.51.100.1"], &["10.0.0.0/8"]), "198.51.100.1");
        assert_eq!(client("10.1.2.3", &[], &["10.0.0.0/8"]), "10.1.2.3");
        // A peer connected over IPv6 with an IPv4 address.
        assert_eq!(client("::ffff:127.0.0.1", &["198.51.100.1"], &["127.0.0.1"]), "198.51.100.1");
    }

    #[test]
    fn the_client_is_the_rightmost_address_that_is_not_a_trusted_proxy() {
        let trusted = ["10.0.0.0/8", "::1"];
        // The client made up the first two entries; the proxies added the rest.
        let forged = ["127.0.0.1, 192.0.2.66", "198.51.100.7, 10.0.0.2"];
        assert_eq!(client("10.0.0.1", &forged, &trusted), "198.51.100.7");
        assert_eq!(client("10.0.0.1", &["192.0.2.66, 198.51.100.7:4711"], &trusted), "198.51.100.7");
        assert_eq!(client("::1", &["[2001:db8::7]:4711"], &trusted), "2001:db8::7");
        // Only proxies: the farthest one.
        assert_eq!(client("10.0.0.1", &["10.0.0.3, 10.0.0.2"], &trusted), "10.0.0.3");
        // Garbage ends the list that can be believed.
        assert_eq!(client("10.0.0.1", &["192.0.2.66, unknown, 10.0.0.2"], &trusted), "10.0.0.2");
        assert_eq!(client("10.0.0.1", &["192.0.2.66, unknown"], &trusted), "10.0.0.1");
    }

    #[test]
    fn trusted_proxies_are_ranges_or_addresses() {
        assert_eq!("127.0.0.1".parse::<TrustedProxy>().unwrap().to_string(), "127.0.0.1/32");
        assert_eq!("10.1.2.3/8".parse::<TrustedProxy>().unwrap().to_string(), "10.0.0.0/8");
        assert_eq!("::1".parse::<TrustedProxy>().unwrap().to_string(), "::1/128");
        assert!("10.0.0.0/33".parse::<TrustedProxy>().is_err());
        assert!("proxy.example".parse::<TrustedProxy>().is_err());
    }
}
