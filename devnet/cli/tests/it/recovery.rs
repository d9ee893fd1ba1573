//! The sidecar keeps the chain when its execution client or its own handler fails.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use alys_chainspec::ChainSpec;
use alys_devnet_el::{Engine, EngineConfig};
use alys_engine_api::{EngineApiConfig, EngineApiServer};
use alys_sidecar::{
    chain::{AuthorityKey, ChainMessage},
    config::{
        AuthoritySection, ChainSection, EngineSection, MetricsSection, NodeConfig, RpcSection, StorageSection,
    },
    node,
};
use serde_json::json;

use crate::support::{ElProcess, root, rpc, wait_for_height};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The `alys` binary, built on demand when this package's tests run alone.
fn alys_bin() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_BIN_EXE_alys-devnet")).parent().unwrap().to_path_buf();
    let bin = dir.join("alys");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(root())
            .args(["build", "-p", "alys-sidecar", "--bin", "alys"])
            .status()
            .unwrap();
        assert!(status.success(), "building alys");
    }
    bin
}

fn node_config(dir: &std::path::Path, engine_url: String, rpc_port: u16) -> NodeConfig {
    let etc = root().join("etc");
    let key_file = etc.join("keys/devnet-authority.key");
    let key = AuthorityKey::from_file(&key_file).unwrap();
    NodeConfig {
        chain: ChainSection {
            genesis: etc.join("genesis/devnet.json"),
            slot_duration_ms: 1_000,
            future_tolerance_ms: 500,
            authorities: vec![key.public().to_string()],
            fee_recipient: Default::default(),
        },
        authority: Some(AuthoritySection { key_file }),
        storage: StorageSection { data_dir: dir.to_path_buf() },
        engine: EngineSection { url: engine_url, jwt_secret: etc.join("jwt/jwt.hex"), eth_rpc_url: None },
        rpc: RpcSection { listen: format!("127.0.0.1:{rpc_port}").parse().unwrap(), admin_token_file: None },
        metrics: MetricsSection { listen: None },
        governance: None,
        pegout: None,
        auxpow: Default::default(),
    }
}

fn write_toml(config: &NodeConfig, path: &std::path::Path) {
    let authorities: Vec<String> = config.chain.authorities.iter().map(|a| format!("\"{a}\"")).collect();
    let text = format!(
        "[chain]\ngenesis = {:?}\nslot_duration_ms = 1000\nauthorities = [{}]\n[authority]\nkey_file = {:?}\n\
         [storage]\ndata_dir = {:?}\n[engine]\nurl = {:?}\njwt_secret = {:?}\n[rpc]\nlisten = \"{}\"\n[metrics]\n",
        config.chain.genesis,
        authorities.join(","),
        config.authority.as_ref().unwrap().key_file,
        config.storage.data_dir,
        config.engine.url,
        config.engine.jwt_secret,
        config.rpc.listen,
    );
    std::fs::write(path, text).unwrap();
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_execution_client_is_refilled_by_the_sidecar() {
    let dir = std::env::temp_dir().join(format!("alys-recovery-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let authrpc = free_port();
    let el = ElProcess::start_at(None, authrpc);
    let rpc_port = free_port();
    let config = node_config(&dir.join("sidecar"), format!("http://127.0.0.1:{authrpc}"), rpc_port);
    let toml = dir.join("alys.toml");
    write_toml(&config, &toml);
    let sidecar = Kill(
        Command::new(alys_bin())
            .current_dir(root())
            .args(["run", "--config"])
            .arg(&toml)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let rpc_url = format!("http://127.0.0.1:{rpc_port}");
    let status = wait_for_height(&rpc_url, 3, Duration::from_secs(30)).await;
    let height = status["head"]["height"].as_u64().unwrap();

    // The execution client dies and comes back empty (no data directory).
    drop(el);
    let el = ElProcess::start_at(None, authrpc);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let number = rpc(&el.http, "eth_blockNumber", json!([])).await.unwrap();
        let number = u64::from_str_radix(number.as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
        if number > height {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "engine stuck at {number}, sidecar head was {height}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The refilled chain is the sidecar's: same block at the old height.
    let block = rpc(&rpc_url, "getblockbyheight", json!([height])).await.unwrap();
    let el_block =
        rpc(&el.http, "eth_getBlockByNumber", json!([format!("{height:#x}"), false])).await.unwrap();
    assert_eq!(el_block["hash"], block["executionBlockHash"]);
    drop(sidecar);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_chain_handler_is_restarted_and_blocks_continue() {
    let dir = std::env::temp_dir().join(format!("alys-panic-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let spec = Arc::new(ChainSpec::devnet().unwrap());
    let engine = Engine::spawn(EngineConfig::new(Arc::clone(&spec))).unwrap();
    let mut api = EngineApiConfig::from_secret_file(root().join("etc/jwt/jwt.hex")).unwrap();
    api.addr = "127.0.0.1:0".parse().unwrap();
    let api = EngineApiServer::new(engine.clone(), api).start().await.unwrap();
    let node = node::launch(node_config(&dir, api.http_url(), 0)).await.unwrap();
    let rpc_url = format!("http://{}", node.rpc.local_addr());

    let before =
        wait_for_height(&rpc_url, 2, Duration::from_secs(30)).await["head"]["height"].as_u64().unwrap();
    node.chain.send(ChainMessage::Panic).await.unwrap();
    let after = wait_for_height(&rpc_url, before + 2, Duration::from_secs(30)).await;
    assert!(
        after["head"]["height"].as_u64().unwrap() >= before + 2,
        "production continued after the restart"
    );
    node.shutdown().await;
    api.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
