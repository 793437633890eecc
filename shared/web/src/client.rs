//! The client's network address, as the host saw it: API Gateway's `sourceIp` under Lambda (the
//! runtime puts it on the request), the TCP peer on a local port. Never a header a client could
//! set, such as X-Forwarded-For.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

/// Put on a request by a host that knows the client's address (the Lambda runtime).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceIp(pub IpAddr);

/// The client's address, if the host said; absent in tests that build requests by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let from_host = parts.extensions.get::<SourceIp>().map(|s| s.0);
        let peer = || {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
        };
        Ok(ClientAddr(from_host.or_else(peer)))
    }
}

/// Put on a request by a host that received it over HTTPS (API Gateway always does): cookies
/// are then Secure and the session cookie takes the `__Host-` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Https;
