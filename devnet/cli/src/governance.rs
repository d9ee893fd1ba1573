//! `alys-devnet governance`: the devnet governance service on its own (gRPC stream + admin JSON-RPC),
//! as an operator would run the real HSM-backed service beside a node; tests start and kill it.

use std::{net::SocketAddr, path::PathBuf};

use alys_devnet_governance::{DevGovernance, admin};
use eyre::WrapErr;

/// Flags of `alys-devnet governance`.
#[derive(Debug, clap::Args)]
pub(crate) struct GovernanceArgs {
    /// Where the `governance.v1` gRPC service listens.
    #[arg(long = "addr", default_value = "127.0.0.1:50061")]
    addr: SocketAddr,
    /// Where the admin JSON-RPC listens (rotation, proposals, faults).
    #[arg(long = "admin-addr", default_value = "127.0.0.1:50062")]
    admin_addr: SocketAddr,
    /// Federation size (devnet keys from fixed seeds: public).
    #[arg(long, default_value_t = 3)]
    members: u8,
    /// Signatures required.
    #[arg(long, default_value_t = 2)]
    threshold: u32,
    /// A file with the bearer token clients must send; none required when unset.
    #[arg(long = "token-file")]
    token_file: Option<PathBuf>,
    /// Serve TLS with this PEM certificate chain (needs `--tls-key`).
    #[arg(long = "tls-cert", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of `--tls-cert`.
    #[arg(long = "tls-key", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// Runs the service until Ctrl-C or SIGTERM; prints a JSON ready line with both addresses.
pub(crate) async fn run(args: GovernanceArgs) -> eyre::Result<()> {
    let mut governance = DevGovernance::devnet(args.members, args.threshold)?;
    if let Some(path) = &args.token_file {
        let token = std::fs::read_to_string(path).wrap_err_with(|| format!("reading {}", path.display()))?;
        governance = governance.with_bearer_token(token.trim());
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some((
            std::fs::read(cert).wrap_err_with(|| format!("reading {}", cert.display()))?,
            std::fs::read(key).wrap_err_with(|| format!("reading {}", key.display()))?,
        )),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let service = governance.into_service();
    let federation = service.state().federation()?;
    let listener =
        tokio::net::TcpListener::bind(args.addr).await.wrap_err_with(|| format!("binding {}", args.addr))?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(alys_devnet_governance::serve(service.clone(), listener, tls));
    let admin = admin::start(service.clone(), args.admin_addr).await?;
    println!(
        "{}",
        serde_json::json!({
            "event": "ready",
            "governance": format!("{scheme}://{addr}"),
            "admin": format!("http://{}", admin.addr),
            "governanceKey": service.state().governance_key().to_string(),
            "depositAddress": federation.address.to_string(),
        })
    );
    tokio::select! {
        result = server => { result??; }
        () = alys_node::shutdown_signal() => {}
    }
    admin.stop();
    Ok(())
}

/// The devnet governance service run inside the devnet process: a 2-of-3 software federation with
/// public devnet keys, requiring the devnet bearer token like a real service would, and its admin RPC
/// (rotation, proposals).
pub(crate) struct Embedded {
    /// Where the `governance.v1` service listens.
    pub(crate) addr: SocketAddr,
    /// Its public key, hex (the nodes' `[governance].governance_key`).
    pub(crate) key_hex: String,
    /// The admin JSON-RPC.
    pub(crate) admin: admin::AdminHandle,
    task: tokio::task::JoinHandle<()>,
}

impl Embedded {
    /// Starts the service on `addr` and its admin RPC on `admin_addr`.
    pub(crate) async fn start(addr: SocketAddr, admin_addr: SocketAddr) -> eyre::Result<Self> {
        let service = DevGovernance::devnet(3, 2)?
            .with_bearer_token(alys_devnet_governance::DEVNET_TOKEN)
            .into_service();
        let key_hex = alloy_primitives::hex::encode(service.state().governance_key().serialize());
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .wrap_err_with(|| format!("binding governance {addr}"))?;
        let addr = listener.local_addr()?;
        let serve = alys_devnet_governance::serve(service.clone(), listener, None);
        let task = tokio::spawn(async move {
            if let Err(error) = serve.await {
                tracing::error!(target: "alys::devnet", %error, "the governance service stopped");
            }
        });
        let admin = admin::start(service, admin_addr).await?;
        Ok(Self { addr, key_hex, admin, task })
    }

    /// Stops the service and its admin RPC.
    pub(crate) fn stop(self) {
        self.task.abort();
        self.admin.stop();
    }
}
