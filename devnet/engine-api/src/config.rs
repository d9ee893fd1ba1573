//! Server configuration.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::Path,
};

use alloy_rpc_types_engine::{ClientCode, ClientVersionV1, JwtError, JwtSecret};

/// The Engine API's conventional port.
pub const DEFAULT_PORT: u16 = 8551;

/// Default request body limit: 16 MiB, far above the largest payload an Alys block can produce.
pub const DEFAULT_MAX_REQUEST_BODY_SIZE: u32 = 16 * 1024 * 1024;

/// Default response body limit: 256 MiB, room for 1024 full block bodies.
pub const DEFAULT_MAX_RESPONSE_BODY_SIZE: u32 = 256 * 1024 * 1024;

/// How the Engine API server listens and authenticates.
#[derive(Debug, Clone)]
pub struct EngineApiConfig {
    /// Address to listen on (default `127.0.0.1:8551`; port 0 picks a free port).
    pub addr: SocketAddr,
    /// The secret shared with the consensus client.
    pub jwt_secret: JwtSecret,
    /// Largest accepted request body, in bytes; larger requests are answered HTTP 413.
    pub max_request_body_size: u32,
    /// Largest response body, in bytes.
    pub max_response_body_size: u32,
    /// What `engine_getClientVersionV1` answers.
    pub client_version: ClientVersionV1,
}

impl EngineApiConfig {
    /// A configuration with the given secret and defaults for everything else.
    pub fn new(jwt_secret: JwtSecret) -> Self {
        Self {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT)),
            jwt_secret,
            max_request_body_size: DEFAULT_MAX_REQUEST_BODY_SIZE,
            max_response_body_size: DEFAULT_MAX_RESPONSE_BODY_SIZE,
            client_version: default_client_version(),
        }
    }

    /// A configuration whose secret is read from a file of 64 hex digits (optional `0x`).
    pub fn from_secret_file(path: impl AsRef<Path>) -> Result<Self, JwtError> {
        Ok(Self::new(JwtSecret::from_file(path.as_ref())?))
    }

    /// Sets the listen address.
    pub const fn with_addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Sets the listen port, keeping the IP.
    pub const fn with_port(mut self, port: u16) -> Self {
        self.addr.set_port(port);
        self
    }

    /// Sets the request body limit in bytes.
    pub const fn with_max_request_body_size(mut self, bytes: u32) -> Self {
        self.max_request_body_size = bytes;
        self
    }

    /// Sets the response body limit in bytes.
    pub const fn with_max_response_body_size(mut self, bytes: u32) -> Self {
        self.max_response_body_size = bytes;
        self
    }

    /// Sets what `engine_getClientVersionV1` answers.
    pub fn with_client_version(mut self, client_version: ClientVersionV1) -> Self {
        self.client_version = client_version;
        self
    }
}

/// The default client identification. The spec's client codes are a closed list and this engine stands in
/// for reth on the wire, so it uses reth's code with its own name.
pub fn default_client_version() -> ClientVersionV1 {
    ClientVersionV1 {
        code: ClientCode::RH,
        name: "alys-devnet-el".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        commit: "00000000".to_string(),
    }
}
