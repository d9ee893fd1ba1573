//! Spawning `alys-devnet el`, driving it as a consensus client would, and running foundry's `cast`.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use alloy_primitives::{Address, B256};
use alloy_rpc_types_engine::{ForkchoiceState, JwtSecret, PayloadAttributes, PayloadStatusEnum};
use alys_chainspec::ChainSpec;
use alys_sidecar::engine::EngineClient;

/// The workspace root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Reads a spawned `alys-devnet` command's JSON ready line from its stdout.
pub(crate) fn ready_line(child: &mut Child) -> serde_json::Value {
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("ready line");
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(ready["event"], "ready", "{ready}");
    ready
}

/// A running `alys-devnet el` process; killed on drop.
pub(crate) struct ElProcess {
    child: Child,
    pub(crate) http: String,
    pub(crate) ws: String,
    pub(crate) authrpc: String,
    pub(crate) genesis_hash: B256,
}

impl Drop for ElProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ElProcess {
    /// Starts the engine on ephemeral ports, with `datadir` if given, and waits for its ready line.
    pub(crate) fn start(datadir: Option<&Path>) -> Self {
        Self::start_at(datadir, 0)
    }

    /// Like [`Self::start`], with the Engine API on `authrpc_port` (0 for any).
    pub(crate) fn start_at(datadir: Option<&Path>, authrpc_port: u16) -> Self {
        let root = root();
        let authrpc = format!("127.0.0.1:{authrpc_port}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_alys-devnet"));
        cmd.current_dir(&root)
            .args([
                "el",
                "--authrpc.addr",
                &authrpc,
                "--http.addr",
                "127.0.0.1:0",
                "--ws.addr",
                "127.0.0.1:0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(dir) = datadir {
            cmd.arg("--datadir").arg(dir);
        }
        let mut child = cmd.spawn().expect("spawn alys-devnet el");
        let ready = ready_line(&mut child);
        Self {
            child,
            http: ready["http"].as_str().unwrap().to_owned(),
            ws: ready["ws"].as_str().unwrap().to_owned(),
            authrpc: ready["authrpc"].as_str().unwrap().to_owned(),
            genesis_hash: ready["genesisHash"].as_str().unwrap().parse().unwrap(),
        }
    }

    /// An Engine API client with the devnet JWT secret.
    pub(crate) fn engine_client(&self) -> EngineClient {
        let secret = JwtSecret::from_file(&root().join("etc/jwt/jwt.hex")).unwrap();
        EngineClient::new(&self.authrpc, secret, Arc::new(ChainSpec::devnet().unwrap())).unwrap()
    }
}

/// Produces blocks on an execution client as a consensus client does: build, fetch, import, choose.
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
        let status =
            self.client.new_payload(built.payload, Some(B256::ZERO), built.execution_requests).await.unwrap();
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

/// A running `alys-devnet` (whole network) process; killed on drop.
pub(crate) struct DevnetProcess {
    child: Child,
    pub(crate) http: String,
    pub(crate) rpc: String,
    pub(crate) burn_feed: String,
    pub(crate) governance_admin: String,
}

impl Drop for DevnetProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DevnetProcess {
    /// Starts the whole network on ephemeral ports with 1-second slots, persisted in `datadir`.
    pub(crate) fn start(datadir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_alys-devnet"))
            .current_dir(root())
            .args(["--slot-ms", "1000", "--http.addr", "127.0.0.1:0", "--ws.addr", "127.0.0.1:0"])
            .args([
                "--authrpc.addr",
                "127.0.0.1:0",
                "--rpc.addr",
                "127.0.0.1:0",
                "--metrics.addr",
                "127.0.0.1:0",
            ])
            .args(["--feed.addr", "127.0.0.1:0", "--governance.addr", "127.0.0.1:0"])
            .args(["--governance.admin-addr", "127.0.0.1:0"])
            .arg("--datadir")
            .arg(datadir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn alys-devnet");
        let ready = ready_line(&mut child);
        Self {
            child,
            http: ready["http"].as_str().unwrap().to_owned(),
            rpc: ready["rpc"].as_str().unwrap().to_owned(),
            burn_feed: ready["burnFeed"].as_str().unwrap().to_owned(),
            governance_admin: ready["governanceAdmin"].as_str().unwrap().to_owned(),
        }
    }

    /// Sends SIGKILL: no shutdown path runs, as in a crash or `kill -9`.
    pub(crate) fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// One JSON-RPC call over HTTP; returns the result or the error object.
pub(crate) async fn rpc(
    url: &str,
    method: &str,
    params: serde_json::Value,
) -> Result<serde_json::Value, serde_json::Value> {
    use jsonrpsee::core::client::ClientT;
    let client = jsonrpsee::http_client::HttpClientBuilder::default().build(url).unwrap();
    let params = match params {
        serde_json::Value::Array(items) => {
            let mut p = jsonrpsee::core::params::ArrayParams::new();
            for item in items {
                p.insert(item).unwrap();
            }
            p
        }
        _ => jsonrpsee::core::params::ArrayParams::new(),
    };
    client.request::<serde_json::Value, _>(method, params).await.map_err(|e| match e {
        jsonrpsee::core::ClientError::Call(obj) => {
            serde_json::json!({ "code": obj.code(), "message": obj.message() })
        }
        other => serde_json::json!({ "transport": other.to_string() }),
    })
}

/// Polls `alys_syncStatus` until the head reaches `height` (panics after `timeout`).
pub(crate) async fn wait_for_height(rpc_url: &str, height: u64, timeout: Duration) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(status) = rpc(rpc_url, "alys_syncStatus", serde_json::json!([])).await
            && status["head"]["height"].as_u64().unwrap_or(0) >= height
        {
            return status;
        }
        assert!(tokio::time::Instant::now() < deadline, "head did not reach {height} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `cast send --json` from `key` to `to` with `args` (a signature and its arguments, `--value` …); checks
/// the transaction succeeded and returns the receipt.
pub(crate) async fn send(rpc: &str, key: &str, to: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["send", "--rpc-url", rpc, "--private-key", key, to];
    all.extend_from_slice(args);
    all.push("--json");
    let receipt: serde_json::Value = serde_json::from_str(&cast(&all).await.unwrap()).unwrap();
    assert_eq!(receipt["status"], "0x1", "{receipt}");
    receipt
}

/// A `0x`-hex quantity from JSON-RPC.
pub(crate) fn quantity(value: &serde_json::Value) -> u64 {
    u64::from_str_radix(value.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

/// Runs `cast` from the root's `node_modules` (installed by `npm ci`) and returns its stdout.
pub(crate) async fn cast(args: &[&str]) -> Result<String, String> {
    let bin = root().join("node_modules/.bin/cast");
    assert!(bin.exists(), "foundry's cast is missing: run `npm ci` in the repository root");
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let output =
        tokio::task::spawn_blocking(move || Command::new(bin).args(&args).output().unwrap()).await.unwrap();
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

/// A running `alys-devnet governance` process; killed on drop.
pub(crate) struct GovernanceProcess {
    child: Child,
    pub(crate) url: String,
    pub(crate) admin: String,
    pub(crate) governance_key: String,
}

impl Drop for GovernanceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GovernanceProcess {
    /// Starts the devnet governance service on `port` (0 for any) requiring the devnet token, and waits
    /// for its ready line.
    pub(crate) fn start(port: u16) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_alys-devnet"))
            .current_dir(root())
            .args(["governance", "--addr", &format!("127.0.0.1:{port}"), "--admin-addr", "127.0.0.1:0"])
            .args(["--token-file", "etc/keys/devnet-governance.token"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn alys-devnet governance");
        let ready = ready_line(&mut child);
        Self {
            child,
            url: ready["governance"].as_str().unwrap().to_owned(),
            admin: ready["admin"].as_str().unwrap().to_owned(),
            governance_key: ready["governanceKey"].as_str().unwrap().to_owned(),
        }
    }
}
