//! Who sent a request, for its log line: [`ClientAddr`], and the first
//! address of `X-Forwarded-For` when the server trusts it.

use std::net::{IpAddr, SocketAddr};

use hyper::header::HeaderMap;

/// The address of the connection a request came in on, as a request
/// extension. [`serve`](crate::serve) adds it to every request; a program
/// that mounts [`App::handle`](crate::App::handle) in its own server adds it
/// too (`req.extensions_mut().insert(ClientAddr(peer))`), or its log lines
/// name no client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// The client a request's log line names: the first address of its
/// `X-Forwarded-For` when `trust_forwarded_for` and that is an IP address,
/// else the connection's peer. Formatted only when a line is written.
pub(crate) fn client(
    peer: Option<ClientAddr>,
    headers: &HeaderMap,
    trust_forwarded_for: bool,
) -> Client {
    if trust_forwarded_for && let Some(ip) = forwarded_for(headers) {
        return Client::Forwarded(ip);
    }
    peer.map_or(Client::Unknown, |ClientAddr(addr)| Client::Peer(addr))
}

/// A request's client, as its log line names it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Client {
    /// The first address of a trusted `X-Forwarded-For`.
    Forwarded(IpAddr),
    /// The connection's peer, with its port.
    Peer(SocketAddr),
    /// No peer known (a program's own server that adds no [`ClientAddr`]):
    /// an empty name.
    Unknown,
}

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Forwarded(ip) => ip.fmt(f),
            Self::Peer(addr) => addr.fmt(f),
            Self::Unknown => Ok(()),
        }
    }
}

/// The address of the client a request's rate limits count against: as
/// [`client`], without the port.
pub(crate) fn client_ip(
    peer: Option<ClientAddr>,
    headers: &HeaderMap,
    trust_forwarded_for: bool,
) -> Option<IpAddr> {
    if trust_forwarded_for && let Some(ip) = forwarded_for(headers) {
        return Some(ip);
    }
    peer.map(|ClientAddr(addr)| addr.ip())
}

/// The first address of the first `X-Forwarded-For` header, the one the
/// first proxy saw, if it is an IP address (a port or brackets are not).
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let value = headers.get("x-forwarded-for")?.to_str().ok()?;
    value.split(',').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(peer: Option<ClientAddr>, headers: &HeaderMap, trust: bool) -> Option<String> {
        Some(super::client(peer, headers, trust).to_string()).filter(|c| !c.is_empty())
    }

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        h
    }

    #[test]
    fn the_first_forwarded_address_only_when_trusted_and_valid() {
        let peer = Some(ClientAddr("10.0.0.1:4000".parse().unwrap()));
        let h = headers("203.0.113.7, 10.0.0.2");
        assert_eq!(client(peer, &h, true).as_deref(), Some("203.0.113.7"));
        assert_eq!(client(peer, &h, false).as_deref(), Some("10.0.0.1:4000"));
        assert_eq!(
            client(peer, &headers("2001:db8::1"), true).as_deref(),
            Some("2001:db8::1")
        );
        for junk in ["unknown", "", "203.0.113.7:80", "<script>"] {
            assert_eq!(
                client(peer, &headers(junk), true).as_deref(),
                Some("10.0.0.1:4000"),
                "{junk}"
            );
        }
        assert_eq!(client(None, &HeaderMap::new(), true), None);
    }
}
