//! Listen addresses and limits of the eth JSON-RPC servers.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// The default HTTP address, geth's and reth's: `127.0.0.1:8545`.
pub const DEFAULT_HTTP_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8545));
/// The default WebSocket address, geth's and reth's: `127.0.0.1:8546`.
pub const DEFAULT_WS_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8546));
/// The default limit on a request body: 10 MiB.
pub const DEFAULT_MAX_REQUEST_BODY_SIZE: u32 = 10 * 1024 * 1024;
/// The default limit on a response body: 160 MiB (reth's), enough for a full block with large logs.
pub const DEFAULT_MAX_RESPONSE_BODY_SIZE: u32 = 160 * 1024 * 1024;
/// The default limit on open connections per server (HTTP and WebSocket count separately): 500, as reth.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 500;
/// The default limit on calls in one batch request: 1000, as geth.
pub const DEFAULT_MAX_BATCH_SIZE: u32 = 1000;
/// The default limit on subscriptions per WebSocket connection: 1024, as reth.
pub const DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION: u32 = 1024;

/// The `web3_clientVersion` answered by default: `alys-devnet-el/v<crate version>`.
pub fn default_client_version() -> String {
    format!("alys-devnet-el/v{}", env!("CARGO_PKG_VERSION"))
}

/// Configuration of the eth JSON-RPC servers.
///
/// HTTP and WebSocket listen on separate addresses, as geth's `--http.addr/--http.port` and
/// `--ws.addr/--ws.port`. When both addresses are equal and the port is not `0`, one server answers both
/// protocols on that port (as geth does when the ports are equal); with port `0` each protocol gets its own
/// ephemeral port, which is what tests want. `None` disables a protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EthRpcConfig {
    /// Where the HTTP server listens; `None` disables it. Default `127.0.0.1:8545`.
    pub http_addr: Option<SocketAddr>,
    /// Where the WebSocket server listens; `None` disables it. Default `127.0.0.1:8546`.
    pub ws_addr: Option<SocketAddr>,
    /// The largest request body (an HTTP body or a WebSocket message) accepted, in bytes; larger HTTP
    /// requests are answered with status 413. Default 10 MiB.
    pub max_request_body_size: u32,
    /// The largest response body sent, in bytes; a larger answer becomes an error. Default 160 MiB.
    pub max_response_body_size: u32,
    /// The most connections one server keeps open at once; further connections are refused. Default 500.
    pub max_connections: u32,
    /// The most calls in one batch request; a larger batch is answered with an error. Default 1000.
    pub max_batch_size: u32,
    /// The most subscriptions one WebSocket connection may hold. Default 1024.
    pub max_subscriptions_per_connection: u32,
    /// What `web3_clientVersion` answers. Default [`default_client_version`].
    pub client_version: String,
}

impl Default for EthRpcConfig {
    fn default() -> Self {
        Self {
            http_addr: Some(DEFAULT_HTTP_ADDR),
            ws_addr: Some(DEFAULT_WS_ADDR),
            max_request_body_size: DEFAULT_MAX_REQUEST_BODY_SIZE,
            max_response_body_size: DEFAULT_MAX_RESPONSE_BODY_SIZE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_batch_size: DEFAULT_MAX_BATCH_SIZE,
            max_subscriptions_per_connection: DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION,
            client_version: default_client_version(),
        }
    }
}

impl EthRpcConfig {
    /// The defaults, but HTTP and WebSocket each on an ephemeral port of `127.0.0.1` (for tests).
    pub fn ephemeral() -> Self {
        let any = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
        Self { http_addr: Some(any), ws_addr: Some(any), ..Self::default() }
    }

    /// Sets (or, with `None`, disables) the HTTP address.
    pub const fn with_http_addr(mut self, addr: Option<SocketAddr>) -> Self {
        self.http_addr = addr;
        self
    }

    /// Sets (or, with `None`, disables) the WebSocket address.
    pub const fn with_ws_addr(mut self, addr: Option<SocketAddr>) -> Self {
        self.ws_addr = addr;
        self
    }

    /// Sets the largest accepted request body, in bytes.
    pub const fn with_max_request_body_size(mut self, bytes: u32) -> Self {
        self.max_request_body_size = bytes;
        self
    }

    /// Sets the largest response body, in bytes.
    pub const fn with_max_response_body_size(mut self, bytes: u32) -> Self {
        self.max_response_body_size = bytes;
        self
    }

    /// Sets the most open connections per server.
    pub const fn with_max_connections(mut self, connections: u32) -> Self {
        self.max_connections = connections;
        self
    }

    /// Sets the most calls in one batch request.
    pub const fn with_max_batch_size(mut self, calls: u32) -> Self {
        self.max_batch_size = calls;
        self
    }

    /// Sets the most subscriptions per WebSocket connection.
    pub const fn with_max_subscriptions_per_connection(mut self, subscriptions: u32) -> Self {
        self.max_subscriptions_per_connection = subscriptions;
        self
    }

    /// Sets what `web3_clientVersion` answers.
    pub fn with_client_version(mut self, version: impl Into<String>) -> Self {
        self.client_version = version.into();
        self
    }

    /// Whether one server answers both protocols (equal addresses, non-zero port).
    pub(crate) fn shared_port(&self) -> Option<SocketAddr> {
        match (self.http_addr, self.ws_addr) {
            (Some(http), Some(ws)) if http == ws && http.port() != 0 => Some(http),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_geths() {
        let config = EthRpcConfig::default();
        assert_eq!(config.http_addr, Some("127.0.0.1:8545".parse().unwrap()));
        assert_eq!(config.ws_addr, Some("127.0.0.1:8546".parse().unwrap()));
        assert_eq!(config.max_request_body_size, 10 * 1024 * 1024);
        assert_eq!(config.client_version, format!("alys-devnet-el/v{}", env!("CARGO_PKG_VERSION")));
        assert_eq!(config.shared_port(), None);
    }

    #[test]
    fn equal_addresses_share_a_port_unless_ephemeral() {
        assert_eq!(EthRpcConfig::ephemeral().shared_port(), None);
        let addr: SocketAddr = "127.0.0.1:8545".parse().unwrap();
        let shared = EthRpcConfig::default().with_ws_addr(Some(addr));
        assert_eq!(shared.shared_port(), Some(addr));
        assert_eq!(shared.clone().with_http_addr(None).shared_port(), None);
        assert_eq!(shared.with_client_version("x").client_version, "x");
    }
}
