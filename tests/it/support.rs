//! What the tests share: the binaries (built once per test run), the processes they run on loopback
//! (`alys-devnet el`, `alys run`, a whole `alys-devnet`, the devnet governance service), the Alys RPC's
//! typed client, a raw JSON-RPC call, metrics scraping, and foundry's `cast`.

use std::{
    fmt::Debug,
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, OnceLock, mpsc},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use alloy_primitives::{Address, B256};
use alloy_rpc_types_engine::{ForkchoiceState, JwtSecret, PayloadAttributes, PayloadStatusEnum};
use alys_chainspec::ChainSpec;
use alys_engine_client::EngineClient;
use alys_rpc::{
    ChainApiClient, ErrorCode,
    jsonrpsee::{
        core::{ClientError, client::ClientT, params::ArrayParams},
        http_client::{HttpClient, HttpClientBuilder},
        types::ErrorObjectOwned,
    },
    types::SyncStatus,
};
use serde_json::Value;
use tempfile::{NamedTempFile, TempDir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a process may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The workspace root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ lives in the workspace root").to_owned()
}

/// A fresh directory, removed on drop (after the processes declared later, which drop first).
pub(crate) fn tempdir() -> TempDir {
    tempfile::Builder::new().prefix("alys-e2e-").tempdir().unwrap()
}

/// A loopback address nothing listens on right now, for a port a process does not report back.
pub(crate) fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// The workspace binary `name` (`alys-devnet`, `alys` or `alys-miner`), built for the profile this test
/// binary was built with.
///
/// `env!("CARGO_BIN_EXE_…")` only names binaries of the test's own package, so the first call in a test
/// process runs `cargo build` for the three binaries with the cargo that runs the tests (it releases its
/// build lock while tests run). Under `cargo test --workspace` the binaries' own packages' integration
/// tests have already built them, with the same features, and this build finds nothing to do.
pub(crate) fn bin(name: &str) -> PathBuf {
    static PROFILE_DIR: OnceLock<PathBuf> = OnceLock::new();
    PROFILE_DIR.get_or_init(build_binaries).join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

fn build_binaries() -> PathBuf {
    // This test binary is <target dir>/<profile dir>/deps/it-<hash>.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} is not in <target>/<profile>/deps", exe.display()))
        .to_owned();
    let target_dir = profile_dir.parent().unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut build = Command::new(cargo);
    build
        .current_dir(root())
        .args(["build", "--bin", "alys-devnet", "--bin", "alys", "--bin", "alys-miner"])
        // Features as `cargo test --workspace` resolves them: every member's, dev-dependencies' included
        // (`--examples` asks for those; the workspace has no examples). Selecting only the three packages
        // would unify fewer features (tokio without `test-util`, …) and build a second copy of most of
        // the tree next to the one `cargo test --workspace` has just built.
        .args(["--workspace", "--examples"])
        .arg("--target-dir")
        .arg(target_dir);
    // Cargo describes this package to the test process in these variables. Inherited by the nested
    // cargo they would reach build scripts that watch them (ring's watches CARGO_MANIFEST_DIR), and half
    // the tree would rebuild here and again at the next plain `cargo build`.
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || matches!(
                name,
                "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "OUT_DIR"
            )
        {
            build.env_remove(name);
        }
    }
    // `dev` and `test` build into `debug`, `release` and `bench` into `release`, a custom profile into
    // a directory of its own name.
    match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") => {}
        Some("release") => {
            build.arg("--release");
        }
        Some(custom) => {
            build.args(["--profile", custom]);
        }
        None => panic!("no profile directory in {}", exe.display()),
    }
    let status = build.status().expect("running cargo");
    assert!(status.success(), "building the binaries: {build:?} failed with {status}");
    profile_dir
}

/// A child process, killed (SIGKILL) and reaped on drop. Its stderr goes to a file whose tail is printed
/// when the test fails.
#[derive(Debug)]
struct Process {
    name: &'static str,
    child: Child,
    log: NamedTempFile,
}

impl Process {
    /// Spawns `command` and returns it with the JSON ready line it prints on stdout.
    fn start(name: &'static str, command: Command) -> (Self, Value) {
        match Self::try_start(name, command) {
            Ok(started) => started,
            Err(mut process) => panic!("{name} exited before its ready line: {:?}", process.exit_status()),
        }
    }

    /// The process's exit status, if it has exited.
    fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Like [`Self::start`], but a process that exits before its ready line is handed back instead.
    fn try_start(name: &'static str, mut command: Command) -> Result<(Self, Value), Self> {
        let prefix = format!("alys-e2e-{}-", name.replace(' ', "-"));
        let log = tempfile::Builder::new().prefix(&prefix).suffix(".log").tempfile().unwrap();
        command
            .current_dir(root())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap());
        let mut child = command.spawn().unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        let stdout = child.stdout.take().unwrap();
        // Built before waiting, so a process that never gets ready is killed and its log shown.
        let process = Self { name, child, log };
        let (line_tx, line_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(line) = lines.next() {
                let _ = line_tx.send(line);
            }
            // Keep the pipe open and drained: a write to a closed stdout would fail in the process.
            lines.for_each(drop);
        });
        let line = match line_rx.recv_timeout(READY_TIMEOUT) {
            Ok(Ok(line)) => line,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Stdout closed without a line: the process ended. Wait for its status.
                let mut process = process;
                let _ = process.child.wait();
                return Err(process);
            }
            other => panic!("{name} printed no ready line: {other:?}"),
        };
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{name}: {e}: {line:?}"));
        assert_eq!(ready["event"], "ready", "{name}: {ready}");
        Ok((process, ready))
    }

    /// Sends SIGKILL and reaps the process: no shutdown path runs, as in a crash or `kill -9`.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = std::fs::read(self.log.path()).unwrap_or_default();
            let log = String::from_utf8_lossy(&log);
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines.get(lines.len().saturating_sub(60)..).unwrap_or_default();
            eprintln!("--- last {} lines of {}'s stderr ---\n{}", tail.len(), self.name, tail.join("\n"));
        }
    }
}

/// A string of the ready line.
fn field(ready: &Value, name: &str) -> String {
    ready[name].as_str().unwrap_or_else(|| panic!("no {name} in {ready}")).to_owned()
}

/// A running `alys-devnet el`: the embedded execution engine alone, as an operator runs reth or geth.
#[derive(Debug)]
pub(crate) struct ElProcess {
    _process: Process,
    pub(crate) http: String,
    pub(crate) ws: String,
    pub(crate) authrpc: String,
    pub(crate) genesis_hash: B256,
    /// Its ExEx burn feed (requiring the devnet feed token: [`feed_client`]).
    pub(crate) burn_feed: String,
}

impl ElProcess {
    /// Starts the engine in memory on ephemeral ports.
    pub(crate) fn start() -> Self {
        Self::start_at(0)
    }

    /// Like [`Self::start`], with the Engine API on `authrpc_port` (0 for any).
    pub(crate) fn start_at(authrpc_port: u16) -> Self {
        Self::start_with(authrpc_port, &[], None)
    }

    /// Like [`Self::start_at`], with `extra` flags and failpoints armed (`FAILPOINTS=<actions>`).
    pub(crate) fn start_with(authrpc_port: u16, extra: &[&str], failpoints: Option<&str>) -> Self {
        let mut command = Command::new(bin("alys-devnet"));
        if let Some(actions) = failpoints {
            command.env("FAILPOINTS", actions);
        }
        command.args(["el", "--authrpc.addr", &format!("127.0.0.1:{authrpc_port}")]).args(extra).args([
            "--http.addr",
            "127.0.0.1:0",
            "--ws.addr",
            "127.0.0.1:0",
            "--feed.addr",
            "127.0.0.1:0",
        ]);
        let (process, ready) = Process::start("alys-devnet el", command);
        Self {
            _process: process,
            http: field(&ready, "http"),
            ws: field(&ready, "ws"),
            authrpc: field(&ready, "authrpc"),
            genesis_hash: field(&ready, "genesisHash").parse().unwrap(),
            burn_feed: field(&ready, "burnFeed"),
        }
    }

    /// The Engine API's port.
    pub(crate) fn authrpc_port(&self) -> u16 {
        self.authrpc.rsplit(':').next().and_then(|port| port.parse().ok()).unwrap()
    }

    /// An Engine API client with the devnet JWT secret.
    pub(crate) fn engine_client(&self) -> EngineClient {
        let secret = JwtSecret::from_file(&root().join("etc/jwt/jwt.hex")).unwrap();
        EngineClient::new(&self.authrpc, secret, Arc::new(ChainSpec::devnet().unwrap())).unwrap()
    }
}

/// Produces blocks on an execution client as a consensus client does: build, fetch, import, choose.
#[derive(Debug)]
pub(crate) struct Producer {
    client: EngineClient,
    head: B256,
    head_timestamp: u64,
}

impl Producer {
    pub(crate) fn new(client: EngineClient, genesis_hash: B256) -> Self {
        let genesis_timestamp = ChainSpec::devnet().unwrap().genesis().timestamp;
        Self { client, head: genesis_hash, head_timestamp: genesis_timestamp }
    }

    /// Builds, imports and makes canonical one block; returns its hash.
    pub(crate) async fn produce(&mut self) -> B256 {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let timestamp = now.max(self.head_timestamp + 1);
        let state = ForkchoiceState {
            head_block_hash: self.head,
            safe_block_hash: self.head,
            finalized_block_hash: self.head,
        };
        let attributes = PayloadAttributes {
            timestamp,
            prev_randao: B256::with_last_byte(timestamp as u8),
            suggested_fee_recipient: Address::ZERO,
            withdrawals: Some(Vec::new()),
            parent_beacon_block_root: Some(B256::ZERO),
            ..Default::default()
        };
        let updated =
            self.client.forkchoice_updated(state, Some(attributes), self.head_timestamp).await.unwrap();
        assert_eq!(updated.payload_status.status, PayloadStatusEnum::Valid);
        let id = updated.payload_id.expect("payload id");
        let built = self.client.get_payload(id, timestamp).await.unwrap();
        let hash = built.payload.block_hash();
        let status = self
            .client
            .new_payload(built.payload, Some(B256::ZERO), Vec::new(), built.execution_requests)
            .await
            .unwrap();
        assert_eq!(status.status, PayloadStatusEnum::Valid, "{status:?}");
        let state =
            ForkchoiceState { head_block_hash: hash, safe_block_hash: hash, finalized_block_hash: hash };
        let updated = self.client.forkchoice_updated(state, None, timestamp).await.unwrap();
        assert_eq!(updated.payload_status.status, PayloadStatusEnum::Valid);
        self.head = hash;
        self.head_timestamp = timestamp;
        hash
    }

    /// Produces a block every `interval` in the background until the returned handle is aborted.
    pub(crate) fn run(mut self, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                self.produce().await;
                tokio::time::sleep(interval).await;
            }
        })
    }
}

/// How to run `alys run`: the devnet authority with 1-second slots, driving one execution client.
#[derive(Debug)]
pub(crate) struct NodeBuilder {
    dir: PathBuf,
    engine_url: String,
    eth_rpc_url: String,
    genesis: Option<PathBuf>,
    max_blocks_without_pow: Option<u64>,
    governance: Option<(String, String)>,
    metrics: Option<SocketAddr>,
    failpoints: Option<String>,
    pegout_feed: Option<String>,
}

impl NodeBuilder {
    /// Starts from the genesis file `path` (the devnet's otherwise).
    pub(crate) fn with_genesis(mut self, path: &Path) -> Self {
        self.genesis = Some(path.to_owned());
        self
    }

    /// Production stops after `blocks` blocks without AuxPow.
    pub(crate) const fn with_max_blocks_without_pow(mut self, blocks: u64) -> Self {
        self.max_blocks_without_pow = Some(blocks);
        self
    }

    /// Follows the governance service at `url` signing with `key`, with the devnet bearer token.
    pub(crate) fn with_governance(mut self, url: &str, key: &str) -> Self {
        self.governance = Some((url.to_owned(), key.to_owned()));
        self
    }

    /// Serves Prometheus metrics on `addr` (otherwise on an ephemeral port nobody reads).
    pub(crate) const fn with_metrics(mut self, addr: SocketAddr) -> Self {
        self.metrics = Some(addr);
        self
    }

    /// Arms failpoints: `FAILPOINTS=<actions>` (the `fail` crate's syntax).
    pub(crate) fn with_failpoints(mut self, actions: &str) -> Self {
        self.failpoints = Some(actions.to_owned());
        self
    }

    /// Follows the burn feed at `url` (`[pegout] source = "exex"`) with the devnet feed token.
    pub(crate) fn with_pegout_feed(mut self, url: &str) -> Self {
        self.pegout_feed = Some(url.to_owned());
        self
    }

    /// The configuration file's text.
    fn toml(&self) -> String {
        // A JSON string is a TOML basic string.
        fn quoted(text: &str) -> String {
            Value::from(text).to_string()
        }
        fn path(path: &Path) -> String {
            quoted(path.to_str().expect("a UTF-8 path"))
        }
        let etc = root().join("etc");
        let metrics = self.metrics.map_or_else(|| "127.0.0.1:0".to_owned(), |addr| addr.to_string());
        let mut text = format!(
            "[chain]\ngenesis = {genesis}\nslot_duration = \"1s\"\nfuture_tolerance = \"500ms\"\n\
             authorities = [{authority}]\n\n[authority]\nkey_file = {key}\n\n[storage]\ndata_dir = {data}\n\n\
             [engine]\nurl = {engine}\njwt_secret = {jwt}\neth_rpc_url = {eth}\n\n[rpc]\nlisten = \"127.0.0.1:0\"\n\n\
             [metrics]\nlisten = {metrics}\n",
            genesis = path(self.genesis.as_deref().unwrap_or(&etc.join("genesis/devnet.json"))),
            authority = quoted(authority_public_key()),
            key = path(&private_devnet_key(&self.dir)),
            data = path(&self.dir.join("alys")),
            engine = quoted(&self.engine_url),
            eth = quoted(&self.eth_rpc_url),
            jwt = path(&etc.join("jwt/jwt.hex")),
            metrics = quoted(&metrics),
        );
        if let Some(blocks) = self.max_blocks_without_pow {
            text.push_str(&format!("\n[auxpow]\nmax_blocks_without_pow = {blocks}\n"));
        }
        if let Some((url, key)) = &self.governance {
            text.push_str(&format!(
                "\n[governance]\nurl = {}\ngovernance_key = {}\nbearer_token_file = {}\n",
                quoted(url),
                quoted(key),
                path(&etc.join("keys/devnet-governance.token")),
            ));
        }
        if let Some(url) = &self.pegout_feed {
            text.push_str(&format!(
                "\n[pegout]\nsource = \"exex\"\nfeed_url = {}\nbearer_token_file = {}\n",
                quoted(url),
                path(&etc.join("keys/devnet-feed.token")),
            ));
        }
        text
    }

    /// Writes `alys.toml` into the node's directory, runs `alys run` on it and waits until it is ready.
    pub(crate) fn start(self) -> NodeProcess {
        let config = self.dir.join("alys.toml");
        std::fs::write(&config, self.toml()).unwrap();
        let mut command = Command::new(bin("alys"));
        command.args(["run", "--config"]).arg(&config);
        if let Some(actions) = &self.failpoints {
            command.env("FAILPOINTS", actions);
        }
        let (process, ready) = Process::start("alys", command);
        NodeProcess { _process: process, rpc: field(&ready, "rpc") }
    }

    /// Runs `alys run` on this configuration expecting it to refuse to start; returns its stderr.
    pub(crate) fn refused(self) -> String {
        let config = self.dir.join("alys.toml");
        std::fs::write(&config, self.toml()).unwrap();
        let output = Command::new(bin("alys"))
            .current_dir(root())
            .env("NO_COLOR", "1")
            .args(["run", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!output.status.success(), "the node started: {output:?}");
        assert!(output.stdout.is_empty(), "no ready line: {output:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    }
}

/// A private (mode 0600) copy of the public devnet authority key in `dir`: the node refuses key files
/// other users can read, and a checkout leaves the committed one at 0644.
pub(crate) fn private_devnet_key(dir: &Path) -> PathBuf {
    let key = dir.join("authority.key");
    if !key.exists() {
        let text = std::fs::read_to_string(root().join("etc/keys/devnet-authority.key")).unwrap();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        std::io::Write::write_all(&mut options.open(&key).unwrap(), text.as_bytes()).unwrap();
    }
    key
}

/// The devnet authority's BLS public key, as `alys key public` prints it.
fn authority_public_key() -> &'static str {
    static KEY: OnceLock<String> = OnceLock::new();
    KEY.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new(bin("alys"))
            .args(["key", "public", "--key-file"])
            .arg(private_devnet_key(dir.path()))
            .output()
            .unwrap();
        assert!(output.status.success(), "alys key public: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    })
}

/// A running `alys run`.
#[derive(Debug)]
pub(crate) struct NodeProcess {
    _process: Process,
    pub(crate) rpc: String,
}

impl NodeProcess {
    /// A node keeping its configuration and data in `dir`, driving `el`'s Engine API.
    pub(crate) fn builder(dir: &Path, el: &ElProcess) -> NodeBuilder {
        NodeBuilder {
            dir: dir.to_owned(),
            engine_url: el.authrpc.clone(),
            eth_rpc_url: el.http.clone(),
            genesis: None,
            max_blocks_without_pow: None,
            governance: None,
            metrics: None,
            failpoints: None,
            pegout_feed: None,
        }
    }

    /// A typed client of its RPC.
    pub(crate) fn client(&self) -> HttpClient {
        client(&self.rpc)
    }
}

/// A running `alys-devnet`: the whole network (engine, authority, miner, governance) in one process.
#[derive(Debug)]
pub(crate) struct DevnetProcess {
    process: Process,
    pub(crate) http: String,
    pub(crate) rpc: String,
    /// The node's dashboard page (`ready.dashboard`).
    pub(crate) dashboard: String,
    pub(crate) burn_feed: String,
    pub(crate) governance_admin: String,
    /// The devnet's Bitcoin regtest node (bitcoind JSON-RPC) and its cookie file.
    pub(crate) bitcoin_rpc: String,
    pub(crate) bitcoin_cookie: PathBuf,
    metrics: SocketAddr,
}

impl DevnetProcess {
    /// Starts the whole network on ephemeral ports with 1-second slots, persisted in `datadir`.
    pub(crate) fn start(datadir: &Path) -> Self {
        Self::start_with_args(datadir, &[])
    }

    /// Like [`Self::start`], with more `alys-devnet` flags.
    pub(crate) fn start_with_args(datadir: &Path, args: &[&str]) -> Self {
        Self::launch(datadir, None, args).unwrap_or_else(|mut process| {
            panic!("alys-devnet exited before its ready line: {:?}", process.exit_status())
        })
    }

    /// Like [`Self::start`], with `FAILPOINTS` set to `actions` (crash-point tests).
    pub(crate) fn start_with_failpoints(datadir: &Path, actions: &str) -> Self {
        Self::launch(datadir, Some(actions), &[]).unwrap_or_else(|mut process| {
            panic!("alys-devnet exited before its ready line: {:?}", process.exit_status())
        })
    }

    /// Like [`Self::start_with_failpoints`], for a point the devnet may reach before it is ready: `None`
    /// when it aborted (SIGABRT, as a crash point ends it) before printing its ready line.
    pub(crate) fn try_start_with_failpoints(datadir: &Path, actions: &str) -> Option<Self> {
        Self::try_start_with(datadir, actions, &[])
    }

    /// Like [`Self::try_start_with_failpoints`], with more `alys-devnet` flags.
    pub(crate) fn try_start_with(datadir: &Path, actions: &str, args: &[&str]) -> Option<Self> {
        use std::os::unix::process::ExitStatusExt;
        match Self::launch(datadir, Some(actions), args) {
            Ok(node) => Some(node),
            Err(mut process) => {
                let status = process.exit_status();
                assert!(
                    status.and_then(|s| s.signal()) == Some(6),
                    "alys-devnet exited before its ready line, not by a crash point: {status:?}"
                );
                None
            }
        }
    }

    fn launch(datadir: &Path, failpoints: Option<&str>, args: &[&str]) -> Result<Self, Process> {
        let metrics = free_addr();
        let mut command = Command::new(bin("alys-devnet"));
        command
            .args(["--slot-ms", "1000", "--http.addr", "127.0.0.1:0", "--ws.addr", "127.0.0.1:0"])
            .args(["--authrpc.addr", "127.0.0.1:0", "--rpc.addr", "127.0.0.1:0"])
            .args(["--metrics.addr", &metrics.to_string(), "--feed.addr", "127.0.0.1:0"])
            .args(["--governance.addr", "127.0.0.1:0", "--governance.admin-addr", "127.0.0.1:0"])
            .args(["--bitcoin.addr", "127.0.0.1:0"])
            .args(args)
            .arg("--datadir")
            .arg(datadir);
        if let Some(actions) = failpoints {
            command.env("FAILPOINTS", actions);
        }
        let (process, ready) = Process::try_start("alys-devnet", command)?;
        Ok(Self {
            process,
            http: field(&ready, "http"),
            rpc: field(&ready, "rpc"),
            dashboard: field(&ready, "dashboard"),
            burn_feed: field(&ready, "burnFeed"),
            governance_admin: field(&ready, "governanceAdmin"),
            bitcoin_rpc: field(&ready, "bitcoinRpc"),
            bitcoin_cookie: field(&ready, "bitcoinCookie").into(),
            metrics,
        })
    }

    /// Whether the process has exited (a crash point aborted it).
    pub(crate) fn has_exited(&mut self) -> bool {
        self.process.child.try_wait().ok().flatten().is_some()
    }

    /// Whether the process ended by `abort()` (SIGABRT), as a crash point ends it.
    pub(crate) fn aborted(&mut self) -> bool {
        use std::os::unix::process::ExitStatusExt;
        self.process.child.try_wait().ok().flatten().is_some_and(|status| status.signal() == Some(6))
    }

    /// Whether the process wrote `needle` to its stderr.
    pub(crate) fn stderr_contains(&self, needle: &str) -> bool {
        std::fs::read_to_string(self.process.log.path()).is_ok_and(|log| log.contains(needle))
    }

    /// The node's whole `/metrics` page.
    pub(crate) async fn metrics_text(&self) -> String {
        metrics_text(self.metrics).await
    }

    /// The value of a Prometheus series of the node (0 when absent).
    pub(crate) async fn metric(&self, series: &str) -> f64 {
        metric(self.metrics, series).await
    }

    /// A typed client of the node's RPC.
    pub(crate) fn client(&self) -> HttpClient {
        client(&self.rpc)
    }

    /// Sends SIGKILL: no shutdown path runs, as in a crash or `kill -9`.
    pub(crate) fn kill9(mut self) {
        self.process.kill();
    }
}

/// A running `alys-devnet governance`.
#[derive(Debug)]
pub(crate) struct GovernanceProcess {
    _process: Process,
    pub(crate) url: String,
    pub(crate) admin: String,
    pub(crate) governance_key: String,
}

impl GovernanceProcess {
    /// Starts the devnet governance service on `port` (0 for any) requiring the devnet token.
    pub(crate) fn start(port: u16) -> Self {
        let mut command = Command::new(bin("alys-devnet"));
        command
            .args(["governance", "--addr", &format!("127.0.0.1:{port}"), "--admin-addr", "127.0.0.1:0"])
            .args(["--token-file", "etc/keys/devnet-governance.token"]);
        let (process, ready) = Process::start("alys-devnet governance", command);
        Self {
            _process: process,
            url: field(&ready, "governance"),
            admin: field(&ready, "admin"),
            governance_key: field(&ready, "governanceKey"),
        }
    }

    /// The port of its gRPC service.
    pub(crate) fn port(&self) -> u16 {
        self.url.rsplit(':').next().and_then(|port| port.parse().ok()).unwrap()
    }
}

/// A burn-feed client of `url` resuming after `cursor`, with the devnet feed token
/// (`etc/keys/devnet-feed.token`, which `alys-devnet` and `alys-devnet el` require).
pub(crate) fn feed_client(url: &str, cursor: u64) -> alys_burns::BurnFeedClient {
    let token = alys_burns::BearerToken::from_file(root().join("etc/keys/devnet-feed.token")).unwrap();
    alys_burns::BurnFeedClient::new(url, cursor).unwrap().with_bearer_token(&token)
}

/// A typed client of an Alys node's RPC (every `alys_rpc::*ApiClient` trait).
pub(crate) fn client(url: &str) -> HttpClient {
    HttpClientBuilder::default().request_timeout(Duration::from_secs(10)).build(url).unwrap()
}

/// One JSON-RPC call with `params` as given: for input the typed client cannot send (malformed
/// parameters, a pool's bare-hex shapes) and for services without a typed client (the execution
/// client's `eth_` methods, the devnet governance admin RPC).
pub(crate) async fn raw_call(url: &str, method: &str, params: Value) -> Result<Value, ClientError> {
    let mut array = ArrayParams::new();
    for param in params.as_array().cloned().unwrap_or_default() {
        array.insert(param).unwrap();
    }
    client(url).request(method, array).await
}

/// The error object a call was answered with; panics on success and on transport failures.
pub(crate) fn call_error<T: Debug>(result: Result<T, ClientError>) -> ErrorObjectOwned {
    match result {
        Err(ClientError::Call(error)) => error,
        other => panic!("expected an error answer, got {other:?}"),
    }
}

/// The Alys error code a call was answered with.
pub(crate) fn error_code<T: Debug>(result: Result<T, ClientError>) -> Option<ErrorCode> {
    ErrorCode::from_code(call_error(result).code())
}

/// Polls `alys_syncStatus` until the head reaches `height` (panics after `timeout`); errors while the
/// node starts or restarts a component count as not yet.
pub(crate) async fn wait_for_height(client: &HttpClient, height: u64, timeout: Duration) -> SyncStatus {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(status) = client.sync_status().await
            && status.head.height >= height
        {
            return status;
        }
        assert!(tokio::time::Instant::now() < deadline, "head did not reach {height} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls `check` every 20 ms until it holds (panics after `timeout`).
pub(crate) async fn until(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "{what} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of the Prometheus sample `series` (name and labels, as exposed) at `addr`, 0 when absent.
pub(crate) async fn metric(addr: SocketAddr, series: &str) -> f64 {
    metrics_text(addr)
        .await
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

/// The whole `/metrics` page served at `addr` (HTTP headers included).
pub(crate) async fn metrics_text(addr: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

/// `cast send --json` from `key` to `to` with `args` (a signature and its arguments, `--value` …); checks
/// the transaction succeeded and returns the receipt.
pub(crate) async fn send(rpc: &str, key: &str, to: &str, args: &[&str]) -> Value {
    let mut all = vec!["send", "--rpc-url", rpc, "--private-key", key, to];
    all.extend_from_slice(args);
    all.push("--json");
    let receipt: Value = serde_json::from_str(&cast(&all).await.unwrap()).unwrap();
    assert_eq!(receipt["status"], "0x1", "{receipt}");
    receipt
}

/// Like [`send`], without asserting: the receipt of a successful transaction, or why there is none.
pub(crate) async fn try_send(rpc: &str, key: &str, to: &str, args: &[&str]) -> Result<Value, String> {
    let mut all = vec!["send", "--rpc-url", rpc, "--private-key", key, to];
    all.extend_from_slice(args);
    all.push("--json");
    let receipt: Value = serde_json::from_str(&cast(&all).await?).map_err(|e| e.to_string())?;
    if receipt["status"] == "0x1" { Ok(receipt) } else { Err(format!("reverted: {receipt}")) }
}

/// A `0x`-hex quantity from JSON-RPC.
pub(crate) fn quantity(value: &Value) -> u64 {
    let text = value.as_str().unwrap_or_else(|| panic!("not a quantity: {value}"));
    u64::from_str_radix(text.trim_start_matches("0x"), 16).unwrap()
}

/// A 32-byte hash from JSON-RPC.
pub(crate) fn hash(value: &Value) -> B256 {
    value.as_str().unwrap_or_else(|| panic!("not a hash: {value}")).parse().unwrap()
}

/// Runs `cast` from the root's `node_modules` (installed by `npm ci`) and returns its stdout.
pub(crate) async fn cast(args: &[&str]) -> Result<String, String> {
    let bin = root().join("node_modules/.bin/cast");
    assert!(bin.exists(), "foundry's cast is missing: run `npm ci` in the repository root");
    let output = tokio::process::Command::new(bin).args(args).output().await.unwrap();
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}
