//! Starting and stopping the HTTP and WebSocket servers.

use std::net::SocketAddr;

use alys_el_api::ToolingBackend;
use jsonrpsee::{
    Methods, RpcModule,
    core::RegisterMethodError,
    core::middleware::RpcServiceBuilder,
    server::{BatchRequestConfig, Server, ServerConfig, ServerHandle},
    types::ErrorObjectOwned,
};

use crate::{
    api::EthApi, config::EthRpcConfig, error::METHOD_NOT_FOUND_CODE, module::rpc_module,
    pubsub::HexIdProvider, trace::Traced,
};

/// Why the servers could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listen address could not be bound (in use, not local, no permission).
    #[error("failed to bind the eth {protocol} server to {addr}: {source}")]
    Bind {
        /// `"HTTP"`, `"WebSocket"` or `"HTTP and WebSocket"`.
        protocol: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// Two methods were registered under one name (a bug in this crate).
    #[error("failed to register the eth methods: {0}")]
    Register(#[from] RegisterMethodError),
}

/// The running servers. Dropping it stops them; [`EthRpcHandle::stop`] does so explicitly.
#[derive(Debug)]
pub struct EthRpcHandle {
    http_addr: Option<SocketAddr>,
    ws_addr: Option<SocketAddr>,
    servers: Vec<ServerHandle>,
}

impl EthRpcHandle {
    /// The bound HTTP address (the real port when port `0` was asked), if HTTP is served.
    pub const fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The bound WebSocket address, if WebSocket is served.
    pub const fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    /// `http://<http_addr>`, if HTTP is served.
    pub fn http_url(&self) -> Option<String> {
        self.http_addr.map(|addr| format!("http://{addr}"))
    }

    /// `ws://<ws_addr>`, if WebSocket is served.
    pub fn ws_url(&self) -> Option<String> {
        self.ws_addr.map(|addr| format!("ws://{addr}"))
    }

    /// Asks the servers to stop: they stop accepting, and open connections close. Calling it twice is
    /// harmless.
    pub fn stop(&self) {
        for server in &self.servers {
            // Err means it already stopped, which is what we want.
            let _ = server.stop();
        }
    }

    /// Waits until every server has stopped (after [`Self::stop`]).
    pub async fn stopped(self) {
        for server in self.servers {
            server.stopped().await;
        }
    }
}

/// Which protocols one server answers.
#[derive(Debug, Clone, Copy)]
enum Protocols {
    Http,
    Ws,
    Both,
}

impl Protocols {
    const fn name(self) -> &'static str {
        match self {
            Self::Http => "HTTP",
            Self::Ws => "WebSocket",
            Self::Both => "HTTP and WebSocket",
        }
    }
}

async fn serve(
    config: &EthRpcConfig,
    protocols: Protocols,
    addr: SocketAddr,
    methods: Methods,
) -> Result<(SocketAddr, ServerHandle), StartError> {
    let builder = ServerConfig::builder()
        .max_request_body_size(config.max_request_body_size)
        .max_response_body_size(config.max_response_body_size)
        .max_connections(config.max_connections)
        .max_subscriptions_per_connection(config.max_subscriptions_per_connection)
        .set_batch_request_config(BatchRequestConfig::Limit(config.max_batch_size))
        .set_id_provider(HexIdProvider::default());
    let server_config = match protocols {
        Protocols::Http => builder.http_only(),
        Protocols::Ws => builder.ws_only(),
        Protocols::Both => builder,
    }
    .build();
    let bind_error = |source| StartError::Bind { protocol: protocols.name(), addr, source };
    let server = Server::builder()
        .set_config(server_config)
        .set_rpc_middleware(RpcServiceBuilder::new().layer_fn(Traced::new))
        .build(addr)
        .await
        .map_err(bind_error)?;
    let bound = server.local_addr().map_err(bind_error)?;
    tracing::info!(target: "eth_rpc", protocol = protocols.name(), %bound, "eth JSON-RPC server listening");
    Ok((bound, server.start(methods)))
}

/// The methods of an HTTP-only server: subscriptions answer geth's `-32601 notifications not supported`
/// (jsonrpsee alone would answer `-32603`).
fn http_methods<B: ToolingBackend>(mut module: RpcModule<EthApi<B>>) -> Result<Methods, RegisterMethodError> {
    for method in ["eth_subscribe", "eth_unsubscribe"] {
        module.remove_method(method);
        module.register_method(method, |_, _, _| {
            ErrorObjectOwned::owned(METHOD_NOT_FOUND_CODE, "notifications not supported", None::<()>)
        })?;
    }
    Ok(module.into())
}

/// Binds and starts the servers the config asks for, serving every method over `backend`.
///
/// Returns once the sockets are bound; the servers run on the current tokio runtime until the handle is
/// stopped or dropped.
pub async fn start<B: ToolingBackend>(backend: B, config: EthRpcConfig) -> Result<EthRpcHandle, StartError> {
    let module = rpc_module(backend, config.client_version.clone())?;
    let mut handle = EthRpcHandle { http_addr: None, ws_addr: None, servers: Vec::new() };

    if let Some(addr) = config.shared_port() {
        let (bound, server) = serve(&config, Protocols::Both, addr, module.into()).await?;
        handle.http_addr = Some(bound);
        handle.ws_addr = Some(bound);
        handle.servers.push(server);
        return Ok(handle);
    }
    if let Some(addr) = config.http_addr {
        // The clone shares the context (backend, filters); only its method table is changed.
        let (bound, server) = serve(&config, Protocols::Http, addr, http_methods(module.clone())?).await?;
        handle.http_addr = Some(bound);
        handle.servers.push(server);
    }
    if let Some(addr) = config.ws_addr {
        // On failure the HTTP server already started stops when `handle` is dropped.
        let (bound, server) = serve(&config, Protocols::Ws, addr, module.into()).await?;
        handle.ws_addr = Some(bound);
        handle.servers.push(server);
    }
    Ok(handle)
}
