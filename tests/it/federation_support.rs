//! A federation on loopback for end-to-end tests: `alys-devnet --authorities N --full-nodes M`, one
//! process per node and per execution engine, with the shared stand-ins (Bitcoin regtest, governance,
//! reference miner on node 0) in the devnet process. Tests kill nodes and engines (`kill -9`), restart
//! them from their configuration and add full nodes later (`alys-devnet join`).
//!
//! Node i's files are in `<datadir>/node<i>`: `alys.toml`, `authority.key` (authorities), `sidecar/`,
//! `el/`, and the logs `node.log` and `el.log` (appended to by restarts too). Its ports are fixed (the
//! base ports plus a per-federation offset), so a restarted node or engine comes back where the others
//! expect it.

#![allow(dead_code, reason = "a harness: the federation tests use what they need of it")]

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alloy_primitives::B256;
use alys_network::{NetworkConfig, NetworkEvent, NetworkHandle, PeerStatus, Request, Response, Verdict};
use alys_primitives::BlockRef;
use alys_rpc::{
    ChainApiClient,
    jsonrpsee::http_client::HttpClient,
    types::{HeadInfo, SyncStatus},
};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::{bin, client, raw_call, root, tempdir};

/// How long the whole federation (every engine, then every node) may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(240);
/// How long one restarted node or engine may take.
const RESTART_TIMEOUT: Duration = Duration::from_secs(90);

/// Whether a node is an authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Holds one of the chain's authority keys.
    Authority,
    /// Follows the chain only.
    Full,
}

/// One node of the federation and its execution engine, as the devnet's ready line describes them.
#[derive(Debug, Clone)]
pub(crate) struct FederationNode {
    pub(crate) index: usize,
    pub(crate) role: Role,
    /// Alys RPC (`alys_*`, mining, admin).
    pub(crate) rpc: String,
    /// The engine's eth JSON-RPC.
    pub(crate) http: String,
    pub(crate) ws: String,
    /// The engine's Engine API.
    pub(crate) authrpc: String,
    /// The engine's burn feed.
    pub(crate) burn_feed: String,
    /// `http://…/metrics`.
    pub(crate) metrics: String,
    /// Where peers reach the node (`/ip4/…/tcp/…/p2p/<peer id>`; empty until the node has a network).
    pub(crate) p2p: Vec<String>,
    /// The configured listen address, `/ip4/127.0.0.1/tcp/<port>`, known even without a network.
    pub(crate) p2p_listen: String,
    pub(crate) node_pid: u32,
    pub(crate) el_pid: u32,
    /// `<datadir>/node<i>`.
    pub(crate) datadir: PathBuf,
    /// `<datadir>/node<i>/alys.toml`.
    pub(crate) config: PathBuf,
    /// `alys-devnet el`'s arguments for this node's engine.
    el_args: Vec<String>,
}

impl FederationNode {
    fn from_entry(entry: &Value) -> Self {
        let s =
            |name: &str| entry[name].as_str().unwrap_or_else(|| panic!("no {name} in {entry}")).to_owned();
        let pid = |name: &str| {
            u32::try_from(entry["pids"][name].as_u64().unwrap_or_else(|| panic!("no {name} pid in {entry}")))
                .unwrap()
        };
        Self {
            index: usize::try_from(entry["index"].as_u64().unwrap()).unwrap(),
            role: match entry["role"].as_str() {
                Some("authority") => Role::Authority,
                Some("full") => Role::Full,
                other => panic!("role {other:?} in {entry}"),
            },
            rpc: s("rpc"),
            http: s("http"),
            ws: s("ws"),
            authrpc: s("authrpc"),
            burn_feed: s("burnFeed"),
            metrics: s("metrics"),
            p2p: entry["p2p"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect(),
            p2p_listen: s("p2pListen"),
            node_pid: pid("node"),
            el_pid: pid("el"),
            datadir: s("datadir").into(),
            config: s("config").into(),
            el_args: entry["elArgs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_owned())
                .collect(),
        }
    }
}

/// Which process of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Part {
    Node,
    El,
}

/// A child the test started (the devnet, a restarted node or engine, a joined node), SIGKILLed and
/// reaped on drop.
#[derive(Debug)]
struct Owned {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Owned {
    /// Spawns `command` with stderr appended to `log` and waits up to `timeout` for its JSON ready line.
    fn start(name: String, command: Command, log: &Path, timeout: Duration) -> (Self, Value) {
        Self::try_start(name, command, log, timeout).unwrap_or_else(|failure| panic!("{failure}"))
    }

    /// [`start`](Self::start), the failure (with the logs) as an error rather than a panic.
    fn try_start(
        name: String,
        mut command: Command,
        log: &Path,
        timeout: Duration,
    ) -> Result<(Self, Value), String> {
        let log_file = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        command
            .current_dir(root())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file);
        let mut child = command.spawn().unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let owned = Self { name, child, log: log.to_owned() };
        let (line_tx, line_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(line) = lines.next() {
                let _ = line_tx.send(line);
            }
            // Keep the pipe open and drained.
            lines.for_each(drop);
        });
        let line = match line_rx.recv_timeout(timeout) {
            Ok(Ok(line)) => line,
            other => {
                let mut owned = owned;
                let status = owned.child.try_wait();
                let log = tail(&owned.log);
                // The devnet names the log of a child that failed ("…; see <path>"): show it too.
                let child_log = log
                    .split("; see ")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .map(|path| format!("\n{path}:\n{}", tail(Path::new(path))))
                    .unwrap_or_default();
                let failure = format!(
                    "{} printed no ready line ({other:?}, status {status:?}); log:\n{log}{child_log}",
                    owned.name
                );
                // Killed and reaped now, without the drop's log dump: the caller decides.
                let _ = owned.child.kill();
                let _ = owned.child.wait();
                std::mem::forget(owned);
                return Err(failure);
            }
        };
        let ready: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{}: {e}: {line:?}", owned.name));
        assert_eq!(ready["event"], "ready", "{}: {ready}", owned.name);
        Ok((owned, ready))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- last lines of {} ({}) ---\n{}", self.name, self.log.display(), tail(&self.log));
        }
    }
}

/// The last 60 lines of a log file, without backtrace frames (an error's backtrace would push its
/// message out).
fn tail(path: &Path) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let frame = |line: &str| {
        let line = line.trim_start();
        line.starts_with("at ") || line.split_once(": ").is_some_and(|(n, _)| n.parse::<u32>().is_ok())
    };
    let lines: Vec<&str> = text.lines().filter(|line| !frame(line)).collect();
    lines.get(lines.len().saturating_sub(60)..).unwrap_or_default().join("\n")
}

/// Whether process `pid` runs (exists and is not a zombie).
pub(crate) fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // `pid (comm) state …`: the state follows the last ')'.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}

/// Whether `pid` is an `alys-devnet` process (so a recycled pid is never signalled).
fn is_devnet(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains("alys-devnet"))
}

/// `kill -9 pid`, then waits until it is gone.
fn kill9(pid: u32) {
    if alive(pid) && is_devnet(pid) {
        let status = Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
        assert!(status.success(), "kill -9 {pid}: {status}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(Instant::now() < deadline, "pid {pid} still runs 10 s after SIGKILL");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The loopback port of an address: `http://127.0.0.1:7700/…`, `ws://127.0.0.1:8546`,
/// `/ip4/127.0.0.1/tcp/30333`.
fn loopback_port(addr: &str) -> Option<u16> {
    let rest = addr.split_once("127.0.0.1:").or_else(|| addr.split_once("/tcp/"))?.1;
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// Waits (up to 10 s) until every loopback port of `addrs` can be bound again. A SIGKILLed
/// multi-threaded process shows as a zombie as soon as its main thread is gone, while its other
/// threads may still hold the sockets for a moment (longer on a loaded machine); a restart in that
/// window fails with "address already in use".
fn wait_bindable(addrs: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for port in addrs.iter().filter_map(|a| loopback_port(a)) {
        while TcpListener::bind(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "port {port} still in use 10 s after its process died");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A port offset under which every port the federation uses is free right now (the devnet adds it to
/// its base ports: 3000, 8545/8546/8551 (+10 per node), 9101, 30333 and 50551, +1 per node).
fn free_offset(nodes: u16) -> u16 {
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos() ^ std::process::id();
    for attempt in 0..200u32 {
        // Multiples of 100 in 100..=14_900: 50551 + offset + nodes stays below 65536.
        let offset = u16::try_from((seed.wrapping_add(attempt.wrapping_mul(7919)) % 149 + 1) * 100).unwrap();
        let ports = (0..nodes).flat_map(|i| {
            [3000 + i, 8545 + 10 * i, 8546 + 10 * i, 8551 + 10 * i, 9101 + i, 30333 + i, 50551 + i]
                .map(|base| base + offset)
        });
        let listeners: Option<Vec<TcpListener>> =
            ports.map(|port| TcpListener::bind(("127.0.0.1", port)).ok()).collect();
        if listeners.is_some() {
            return offset;
        }
    }
    panic!("no free port offset found");
}

/// How to start a [`Federation`].
#[derive(Debug)]
pub(crate) struct FederationBuilder {
    authorities: usize,
    full_nodes: usize,
    slot_ms: u64,
    datadir: Option<PathBuf>,
    extra: Vec<String>,
}

impl FederationBuilder {
    /// Aura slot length (default 1000 ms).
    pub(crate) fn slot_ms(mut self, slot_ms: u64) -> Self {
        self.slot_ms = slot_ms;
        self
    }

    /// Keep the data in `dir` (default: a fresh temporary directory the federation removes on drop).
    pub(crate) fn datadir(mut self, dir: &Path) -> Self {
        self.datadir = Some(dir.to_owned());
        self
    }

    /// More `alys-devnet` flags (`--no-miner`, `--bitcoin.block-secs 0`, …).
    pub(crate) fn arg(mut self, arg: &str) -> Self {
        self.extra.push(arg.to_owned());
        self
    }

    /// Starts the devnet and waits for its ready line.
    pub(crate) fn start(self) -> Federation {
        let (dir, datadir) = match self.datadir {
            Some(datadir) => (None, datadir),
            None => {
                let dir = tempdir();
                let datadir = dir.path().to_owned();
                (Some(dir), datadir)
            }
        };
        let count = u16::try_from(self.authorities + self.full_nodes + 4).unwrap();
        std::fs::create_dir_all(&datadir).unwrap();
        // The devnet's fixed ports (P2P at 30333+, the burn feed at 50551+) lie in Linux's ephemeral
        // range: between the free-port probe and the bind, another process's outgoing connection can
        // take one. Such a start fails with "address in use"; it is retried on another offset.
        let mut attempt = 1;
        let (devnet, ready) = loop {
            let offset = free_offset(count);
            let mut command = Command::new(bin("alys-devnet"));
            command
                .args(["--authorities", &self.authorities.to_string()])
                .args(["--full-nodes", &self.full_nodes.to_string()])
                .args(["--ports.offset", &offset.to_string()])
                .args(["--slot-ms", &self.slot_ms.to_string()])
                .args(["--governance.addr", "127.0.0.1:0", "--governance.admin-addr", "127.0.0.1:0"])
                .args(["--bitcoin.addr", "127.0.0.1:0"])
                .args(&self.extra)
                .arg("--datadir")
                .arg(&datadir);
            match Owned::try_start("alys-devnet".into(), command, &datadir.join("devnet.log"), READY_TIMEOUT)
            {
                Ok(started) => break started,
                Err(failure) if attempt < 3 && failure.contains("in use") => {
                    eprintln!("alys-devnet start {attempt} lost a port race; retrying on another offset");
                    attempt += 1;
                }
                Err(failure) => panic!("{failure}"),
            }
        };
        let nodes = ready["nodes"].as_array().unwrap().iter().map(FederationNode::from_entry).collect();
        Federation {
            owned: HashMap::new(),
            joined: Vec::new(),
            devnet: Some(devnet),
            nodes,
            ready,
            datadir,
            _dir: dir,
        }
    }
}

/// A running multi-node devnet. Dropping it kills every process it started (the devnet's own children
/// die with it).
#[derive(Debug)]
pub(crate) struct Federation {
    /// Nodes and engines the test restarted, by node.
    owned: HashMap<(usize, Part), Owned>,
    /// `alys-devnet join` processes.
    joined: Vec<Owned>,
    devnet: Option<Owned>,
    /// Every node, authorities first, then full nodes, then joined ones; pids follow restarts.
    pub(crate) nodes: Vec<FederationNode>,
    /// The devnet's whole ready line (`governanceAdmin`, `bitcoinRpc`, `bitcoinCookie`, …).
    pub(crate) ready: Value,
    pub(crate) datadir: PathBuf,
    /// Dropped last, after every process.
    _dir: Option<TempDir>,
}

impl Federation {
    /// `authorities` authorities and `full_nodes` full nodes, 1-second slots, in a temporary directory.
    pub(crate) fn builder(authorities: usize, full_nodes: usize) -> FederationBuilder {
        FederationBuilder { authorities, full_nodes, slot_ms: 1_000, datadir: None, extra: Vec::new() }
    }

    /// Starts `authorities` authorities and `full_nodes` full nodes with the builder's defaults.
    pub(crate) fn start(authorities: usize, full_nodes: usize) -> Self {
        Self::builder(authorities, full_nodes).start()
    }

    /// A ready-line field of the devnet (`governanceAdmin`, `bitcoinRpc`, …).
    pub(crate) fn field(&self, name: &str) -> String {
        self.ready[name].as_str().unwrap_or_else(|| panic!("no {name} in {}", self.ready)).to_owned()
    }

    /// Node `i`.
    pub(crate) fn node(&self, i: usize) -> &FederationNode {
        &self.nodes[i]
    }

    /// A typed client of node `i`'s Alys RPC.
    pub(crate) fn client(&self, i: usize) -> HttpClient {
        client(&self.nodes[i].rpc)
    }

    /// `kill -9` node `i`'s Alys node (no shutdown path runs); its engine keeps running.
    pub(crate) fn kill9_node(&mut self, i: usize) {
        self.kill9(i, Part::Node);
    }

    /// `kill -9` node `i`'s execution engine; its node keeps running (and retries the engine).
    pub(crate) fn kill9_el(&mut self, i: usize) {
        self.kill9(i, Part::El);
    }

    fn kill9(&mut self, i: usize, part: Part) {
        if let Some(mut owned) = self.owned.remove(&(i, part)) {
            let _ = owned.child.kill();
            let _ = owned.child.wait();
            return;
        }
        let node = &self.nodes[i];
        kill9(match part {
            Part::Node => node.node_pid,
            Part::El => node.el_pid,
        });
    }

    /// Starts node `i` again from its configuration (`alys-devnet node --config <datadir>/node<i>/alys.toml`),
    /// killing a running one first; waits for its ready line.
    pub(crate) fn restart_node(&mut self, i: usize) {
        self.restart_node_with_env(i, &[]);
    }

    /// [`restart_node`](Self::restart_node) with extra environment variables for the new process
    /// (`FAILPOINTS=chain::equivocate=return`, `RUST_LOG=…`); a later plain restart drops them.
    pub(crate) fn restart_node_with_env(&mut self, i: usize, env: &[(&str, &str)]) {
        self.kill9_node(i);
        let node = &self.nodes[i];
        wait_bindable(&[&node.rpc, &node.metrics, &node.p2p_listen]);
        let mut command = Command::new(bin("alys-devnet"));
        command.arg("node").arg("--config").arg(&node.config);
        command.envs(env.iter().copied());
        let (owned, ready) =
            Owned::start(format!("node {i}"), command, &node.datadir.join("node.log"), RESTART_TIMEOUT);
        let node = &mut self.nodes[i];
        node.node_pid = owned.pid();
        node.rpc = ready["rpc"].as_str().unwrap().to_owned();
        node.p2p = ready["p2p"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect();
        self.owned.insert((i, Part::Node), owned);
    }

    /// Starts node `i`'s execution engine again on its ports and data directory, killing a running one
    /// first; waits for its ready line.
    pub(crate) fn restart_el(&mut self, i: usize) {
        self.kill9_el(i);
        let node = &self.nodes[i];
        wait_bindable(&[&node.http, &node.ws, &node.authrpc, &node.burn_feed]);
        let mut command = Command::new(bin("alys-devnet"));
        command.args(&node.el_args);
        let (owned, ready) =
            Owned::start(format!("engine {i}"), command, &node.datadir.join("el.log"), RESTART_TIMEOUT);
        assert_eq!(ready["authrpc"].as_str(), Some(node.authrpc.as_str()), "{ready}");
        self.nodes[i].el_pid = owned.pid();
        self.owned.insert((i, Part::El), owned);
    }

    /// Adds a full node (its own engine and node: `alys-devnet join`) with the next index, bootstrapping
    /// from every node the devnet started; returns its index.
    pub(crate) fn start_full_node(&mut self) -> usize {
        let index = self.nodes.len();
        let mut command = Command::new(bin("alys-devnet"));
        command.args(["join", "--index", &index.to_string()]).arg("--datadir").arg(&self.datadir);
        let log = self.datadir.join(format!("join{index}.log"));
        let (owned, ready) = Owned::start(format!("join {index}"), command, &log, RESTART_TIMEOUT);
        let node = FederationNode::from_entry(&ready["node"]);
        assert_eq!(node.index, index);
        self.nodes.push(node);
        self.joined.push(owned);
        index
    }

    /// Every pid of every node and engine (and the devnet's own), for checks that all are gone.
    pub(crate) fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.nodes.iter().flat_map(|n| [n.node_pid, n.el_pid]).collect();
        pids.extend(self.devnet.iter().map(Owned::pid));
        pids.extend(self.joined.iter().map(Owned::pid));
        pids
    }
}

impl Drop for Federation {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for node in &self.nodes {
                for log in ["node.log", "el.log"] {
                    let path = node.datadir.join(log);
                    eprintln!("--- last lines of {} ---\n{}", path.display(), tail(&path));
                }
            }
        }
        // The test's own children, then the devnet (its children get SIGKILL when it dies).
        self.owned.clear();
        self.joined.clear();
        self.devnet = None;
        // Belt and braces: nothing of this federation outlives it.
        for node in &self.nodes {
            for pid in [node.node_pid, node.el_pid] {
                if alive(pid) && is_devnet(pid) {
                    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                }
            }
        }
    }
}

/// Starts 3 authorities and a full node and checks every endpoint answers (see [`check_endpoints`]);
/// after drop, no process runs.
pub(crate) async fn smoke() {
    let federation = Federation::start(3, 1);
    check_endpoints(&federation).await;
    drop_and_check_gone(federation).await;
}

/// Checks a fresh `Federation::start(3, 1)`: roles, ready-line fields, each node's `alys_syncStatus`
/// lists the 3 authorities (and each authority its own index), each engine answers `eth_chainId`,
/// every process runs, each configuration has its listen address.
pub(crate) async fn check_endpoints(federation: &Federation) {
    assert_eq!(federation.nodes.len(), 4);
    let roles: Vec<Role> = federation.nodes.iter().map(|n| n.role).collect();
    assert_eq!(roles, [Role::Authority, Role::Authority, Role::Authority, Role::Full]);
    assert_eq!(federation.field("rpc"), federation.node(0).rpc);
    assert_eq!(federation.field("http"), federation.node(0).http);
    assert_eq!(federation.ready["chainId"], 121_212);
    for name in ["governance", "governanceAdmin", "bitcoinRpc", "bitcoinCookie", "burnFeed", "metrics"] {
        assert!(!federation.field(name).is_empty(), "{name}");
    }
    let mut authorities: Option<Vec<String>> = None;
    for node in &federation.nodes {
        let status = federation.client(node.index).sync_status().await.unwrap();
        assert_eq!(status.authorities.len(), 3, "node {}: {status:?}", node.index);
        if let Some(first) = &authorities {
            assert_eq!(&status.authorities, first, "every node has the same schedule");
        }
        authorities = Some(status.authorities.clone());
        let expected = (node.role == Role::Authority).then(|| u32::try_from(node.index).unwrap());
        assert_eq!(status.authority_index, expected, "node {}", node.index);
        let chain_id = raw_call(&node.http, "eth_chainId", json!([])).await.unwrap();
        assert_eq!(chain_id, "0x1d97c", "engine {}", node.index);
        assert!(alive(node.node_pid) && alive(node.el_pid), "node {}'s processes run", node.index);
        let config = std::fs::read_to_string(&node.config).unwrap();
        assert!(config.contains(&listen_socket(&node.p2p_listen)), "{config}");
    }
    let authorities = authorities.unwrap();
    let unique: std::collections::HashSet<&String> = authorities.iter().collect();
    assert_eq!(unique.len(), 3, "three different keys: {authorities:?}");
}

/// Drops the federation and checks none of its processes outlives it.
pub(crate) async fn drop_and_check_gone(federation: Federation) {
    let pids = federation.pids();
    drop(federation);
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&pid| alive(pid)) {
        assert!(Instant::now() < deadline, "processes outlived the federation: {pids:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `/ip4/127.0.0.1/tcp/30333` → `127.0.0.1:30333`.
pub(crate) fn listen_socket(multiaddr: &str) -> String {
    multiaddr.replace("/ip4/", "").replace("/tcp/", ":")
}

impl Federation {
    /// The devnet's genesis hash (the execution genesis block's).
    pub(crate) fn genesis_hash(&self) -> B256 {
        self.field("genesisHash").parse().unwrap()
    }

    /// The federation network's id: the genesis hash's first 8 bytes in hex, as nodes compute it.
    pub(crate) fn network_id(&self) -> String {
        alloy_primitives::hex::encode(&self.genesis_hash()[..8])
    }

    /// Node `i`'s `alys_syncStatus`.
    pub(crate) async fn status(&self, i: usize) -> SyncStatus {
        self.client(i).sync_status().await.unwrap_or_else(|e| panic!("node {i}: alys_syncStatus: {e}"))
    }

    /// Node `i`'s head, or `None` while its RPC does not answer.
    pub(crate) async fn head(&self, i: usize) -> Option<HeadInfo> {
        self.client(i).sync_status().await.ok().map(|s| s.head)
    }

    /// Node `i`'s canonical consensus block hash at `height`.
    pub(crate) async fn hash_at(&self, i: usize, height: u64) -> Option<B256> {
        self.client(i).block_by_height(height).await.unwrap().map(|b| b.hash)
    }

    /// Node `i`'s canonical block at `height` (consensus hash, execution hash); panics if absent.
    pub(crate) async fn block_at(&self, i: usize, height: u64) -> (B256, B256) {
        let block = self
            .client(i)
            .block_by_height(height)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("node {i} has no block at {height}"));
        assert_eq!(block.height, height);
        (block.hash, block.execution_block_hash)
    }

    /// The hash of node `i`'s engine's block `height` (`eth_getBlockByNumber`); panics if absent.
    pub(crate) async fn el_hash_at(&self, i: usize, height: u64) -> B256 {
        let block =
            raw_call(&self.nodes[i].http, "eth_getBlockByNumber", json!([format!("0x{height:x}"), false]))
                .await
                .unwrap();
        assert!(!block.is_null(), "engine {i} has no block {height}");
        crate::support::hash(&block["hash"])
    }

    /// Checks that nodes `nodes` have the same canonical block at every height of `heights`, and
    /// that each carries the execution block its own engine has at that height.
    pub(crate) async fn assert_agree(&self, nodes: &[usize], heights: std::ops::RangeInclusive<u64>) {
        for height in heights {
            let blocks = futures::future::join_all(nodes.iter().map(async |&i| {
                let ((hash, execution), el) =
                    tokio::join!(self.block_at(i, height), self.el_hash_at(i, height));
                assert_eq!(execution, el, "node {i} at {height}: consensus block vs its engine");
                (i, hash)
            }))
            .await;
            let (first, expected) = blocks[0];
            for (i, hash) in blocks {
                assert_eq!(hash, expected, "nodes {first} and {i} disagree at height {height}");
            }
        }
    }

    /// Waits until nodes `nodes` report the same head hash at once, at least `min_height`; returns it.
    pub(crate) async fn wait_same_head(
        &self,
        nodes: &[usize],
        min_height: u64,
        timeout: Duration,
    ) -> HeadInfo {
        let deadline = Instant::now() + timeout;
        loop {
            let mut heads = Vec::new();
            for &i in nodes {
                heads.push(self.head(i).await);
            }
            if let Some(Some(first)) = heads.first()
                && first.height >= min_height
                && heads.iter().all(|h| h.as_ref().is_some_and(|h| h.hash == first.hash))
            {
                return *first;
            }
            assert!(
                Instant::now() < deadline,
                "nodes {nodes:?} did not share a head at {min_height}+ within {timeout:?}: {heads:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The value of Prometheus sample `series` on node `i`'s metrics endpoint (0 when absent).
    pub(crate) async fn metric(&self, i: usize, series: &str) -> f64 {
        crate::support::metric(self.metrics_addr(i), series).await
    }

    /// Node `i`'s whole metrics page.
    pub(crate) async fn metrics_text(&self, i: usize) -> String {
        crate::support::metrics_text(self.metrics_addr(i)).await
    }

    fn metrics_addr(&self, i: usize) -> SocketAddr {
        let url = &self.nodes[i].metrics;
        url.trim_start_matches("http://").trim_end_matches("/metrics").parse().unwrap()
    }

    /// Rewrites node `i`'s `[network]` section (kept: `listen` and anything else but `bootnodes` and
    /// `peer_exchange`) with `bootnodes` and `peer_exchange`; takes effect at its next restart.
    pub(crate) fn set_network(&self, i: usize, bootnodes: &[String], peer_exchange: bool) {
        let path = &self.nodes[i].config;
        let text = std::fs::read_to_string(path).unwrap();
        let (before, section) =
            text.split_once("[network]\n").unwrap_or_else(|| panic!("no [network] in {text}"));
        assert!(!section.lines().any(|l| l.starts_with('[')), "[network] is the last section: {section}");
        let mut out = format!("{before}[network]\n");
        for line in section.lines() {
            if !line.starts_with("bootnodes") && !line.starts_with("peer_exchange") && !line.trim().is_empty()
            {
                out.push_str(line);
                out.push('\n');
            }
        }
        let bootnodes: Vec<String> = bootnodes.iter().map(|b| format!("\"{b}\"")).collect();
        out.push_str(&format!("bootnodes = [{}]\npeer_exchange = {peer_exchange}\n", bootnodes.join(", ")));
        std::fs::write(path, out).unwrap();
    }

    /// Node `i`'s log so far.
    pub(crate) fn node_log(&self, i: usize) -> String {
        String::from_utf8_lossy(&std::fs::read(self.nodes[i].datadir.join("node.log")).unwrap_or_default())
            .into_owned()
    }
}

/// A TCP forwarder on loopback that can be cut (every live connection dropped, new ones closed at
/// once) and healed; for partitions.
#[derive(Debug)]
pub(crate) struct TcpProxy {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    cut: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards every connection to `target`.
    pub(crate) async fn start(target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, cut_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                if *cut_rx.borrow() {
                    drop(inbound);
                    continue;
                }
                let mut cut_rx = cut_rx.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else { return };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_rx.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Self { addr, cut, task }
    }

    /// Its address as a bootnode multiaddr.
    pub(crate) fn multiaddr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.addr.port())
    }

    /// Drops every live connection and closes new ones as they arrive.
    pub(crate) fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Forwards new connections again.
    pub(crate) fn heal(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut.send_replace(true);
    }
}

/// A peer the test runs itself with the `alys-network` crate, to send the federation what no node
/// would. It answers `Status` with the genesis as its head (so it is not penalized for that), every
/// other request with no blocks, and ignores every gossip message it receives.
#[derive(Debug)]
pub(crate) struct Rogue {
    pub(crate) network: NetworkHandle,
    task: tokio::task::JoinHandle<()>,
    _dir: TempDir,
}

impl Rogue {
    /// Joins `federation`'s network through `bootnode`, gossip up to `max_gossip_bytes`.
    pub(crate) async fn join(federation: &Federation, bootnode: &str, max_gossip_bytes: usize) -> Self {
        let dir = tempdir();
        let network_id = federation.network_id();
        let genesis = federation.genesis_hash();
        let mut config = NetworkConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            dir.path().join("rogue.key"),
            network_id.clone(),
        );
        config.bootnodes = vec![bootnode.parse().unwrap()];
        config.peer_exchange = false;
        config.max_gossip_bytes = max_gossip_bytes;
        let (network, mut events) = alys_network::start(config).await.unwrap();
        let handle = network.clone();
        let task = tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    NetworkEvent::Gossip { id, from, .. } => handle.report(id, from, Verdict::Ignore),
                    NetworkEvent::Request { request: Request::Status, reply, .. } => {
                        let _ = reply.send(Response::Status(PeerStatus {
                            network_id: network_id.clone(),
                            head: BlockRef { height: 0, hash: genesis },
                            finalized: None,
                        }));
                    }
                    NetworkEvent::Request { reply, .. } => {
                        let _ = reply.send(Response::Blocks(Vec::new()));
                    }
                    NetworkEvent::PeerConnected(_) | NetworkEvent::PeerDisconnected(_) => {}
                }
            }
        });
        Self { network, task, _dir: dir }
    }
}

impl Drop for Rogue {
    fn drop(&mut self) {
        // The task holds the last other handle: with it gone, the network task stops.
        self.task.abort();
    }
}
