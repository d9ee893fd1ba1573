//! `alys-devnet --authorities N [--full-nodes M]`: a federation on loopback, one process per node.
//!
//! The shared stand-ins stay in this process, as in the single-node devnet: the Bitcoin regtest node,
//! the devnet governance service (a 2-of-3 software federation) and the reference miner (pointed at
//! authority 0). Every node i (authorities 0..N, then the full nodes) gets its own execution engine,
//! `alys-devnet el`, and its own Alys node, `alys-devnet node --config <datadir>/node<i>/alys.toml`, both
//! this same executable re-run as a child. Node i listens on the base ports plus i (Alys RPC, metrics,
//! peer-to-peer, burn feed) and its engine on the base ports plus 10·i (eth HTTP, WebSocket, Engine API).
//! Children write their logs to `<datadir>/node<i>/{el,node}.log`, die with this process (even after a
//! `kill -9`: `PR_SET_PDEATHSIG`), and are not restarted when they exit: tests kill and restart them.
//!
//! `<datadir>/federation.json` records what a node's configuration needs from the running devnet, so
//! `alys-devnet join --datadir <datadir> --index i` can add a full node later.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use alys_chainspec::dev::DEV_ACCOUNTS;
use alys_node::config::NodeConfig;
use alys_primitives::AuthorityKey;
use clap::Args;
use eyre::{WrapErr, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    sync::oneshot,
    task::JoinHandle,
};

use crate::up::{UpArgs, install_devnet_key};

/// How long a child may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a child may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// The file describing a running federation, in its data directory.
const MANIFEST: &str = "federation.json";

/// `alys-devnet join`: one more full node for a running multi-node devnet.
#[derive(Debug, Args)]
pub(crate) struct JoinArgs {
    /// The running devnet's data directory (it holds `federation.json`).
    #[arg(long, default_value = "data/devnet")]
    datadir: PathBuf,
    /// The new node's index: its ports and `<datadir>/node<index>` follow from it, as for the devnet's
    /// own nodes (use one past the devnet's last node, and so on).
    #[arg(long)]
    index: u32,
}

/// Node 0's addresses; node i's are these plus i (plus 10·i for the engine's).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Bases {
    http: SocketAddr,
    ws: SocketAddr,
    authrpc: SocketAddr,
    feed: SocketAddr,
    rpc: SocketAddr,
    metrics: SocketAddr,
    p2p: SocketAddr,
}

/// What every node's configuration shares, written to `federation.json` for `alys-devnet join`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Shared {
    etc: PathBuf,
    datadir: PathBuf,
    slot_ms: u64,
    /// The authorities' BLS public keys, in schedule order.
    authorities: Vec<String>,
    /// Nodes the devnet itself runs (authorities first).
    nodes: u32,
    governance: String,
    governance_key: String,
    bitcoin_rpc: String,
    bitcoin_cookie: String,
    pegin_confirmations: u32,
    pegout_confirmations: u32,
    pegout_fee_rate: u64,
    bases: Bases,
}

/// Where node `index` lives and listens.
#[derive(Debug, Clone)]
struct Layout {
    index: u32,
    authority: bool,
    dir: PathBuf,
    http: SocketAddr,
    ws: SocketAddr,
    authrpc: SocketAddr,
    feed: SocketAddr,
    rpc: SocketAddr,
    metrics: SocketAddr,
    p2p: SocketAddr,
}

fn nth(base: SocketAddr, step: u32, index: u32) -> eyre::Result<SocketAddr> {
    let port = step
        .checked_mul(index)
        .and_then(|delta| u32::from(base.port()).checked_add(delta))
        .and_then(|port| u16::try_from(port).ok())
        .ok_or_else(|| eyre::eyre!("node {index}'s port from base {base} is past 65535"))?;
    Ok(SocketAddr::new(base.ip(), port))
}

impl Shared {
    fn layout(&self, index: u32) -> eyre::Result<Layout> {
        let b = &self.bases;
        Ok(Layout {
            index,
            authority: (index as usize) < self.authorities.len(),
            dir: self.datadir.join(format!("node{index}")),
            http: nth(b.http, 10, index)?,
            ws: nth(b.ws, 10, index)?,
            authrpc: nth(b.authrpc, 10, index)?,
            feed: nth(b.feed, 1, index)?,
            rpc: nth(b.rpc, 1, index)?,
            metrics: nth(b.metrics, 1, index)?,
            p2p: nth(b.p2p, 1, index)?,
        })
    }

    /// Every node's peer-to-peer address but `index`'s, among the first `count`.
    fn bootnodes(&self, index: u32, count: u32) -> eyre::Result<Vec<String>> {
        (0..count).filter(|&i| i != index).map(|i| Ok(multiaddr(self.layout(i)?.p2p))).collect()
    }

    /// `alys-devnet el`'s arguments for `layout`.
    fn el_args(&self, layout: &Layout) -> Vec<String> {
        let path = |p: &Path| p.display().to_string();
        vec![
            "el".into(),
            "--chain".into(),
            path(&self.etc.join("genesis/devnet.json")),
            "--datadir".into(),
            path(&layout.dir.join("el")),
            "--authrpc.addr".into(),
            layout.authrpc.to_string(),
            "--http.addr".into(),
            layout.http.to_string(),
            "--ws.addr".into(),
            layout.ws.to_string(),
            "--feed.addr".into(),
            layout.feed.to_string(),
            "--authrpc.jwtsecret".into(),
            path(&self.etc.join("jwt/jwt.hex")),
            "--feed.token-file".into(),
            path(&self.etc.join("keys/devnet-feed.token")),
        ]
    }

    /// Node `layout`'s configuration, driving the engine that printed `el`.
    fn node_toml(
        &self,
        layout: &Layout,
        el: &Value,
        key_file: Option<&Path>,
        bootnodes: &[String],
    ) -> eyre::Result<String> {
        let el_field = |name: &str| {
            get(el, name).as_str().map(str::to_owned).ok_or_else(|| eyre::eyre!("no {name} in {el}"))
        };
        let q = |p: &Path| quote(&p.display().to_string());
        let authorities: Vec<String> = self.authorities.iter().map(|a| quote(a)).collect();
        let bootnodes: Vec<String> = bootnodes.iter().map(|b| quote(b)).collect();
        let authority =
            key_file.map_or_else(String::new, |key| format!("\n[authority]\nkey_file = {}\n", q(key)));
        Ok(format!(
            "# Written by alys-devnet for node {index} ({role}); rewritten at every start.\n\
             [chain]\n\
             genesis = {genesis}\n\
             slot_duration = \"{slot_ms}ms\"\n\
             future_tolerance = \"500ms\"\n\
             authorities = [{authorities}]\n\
             {authority}\n\
             [storage]\n\
             data_dir = {storage}\n\n\
             [engine]\n\
             url = {engine}\n\
             jwt_secret = {jwt}\n\
             eth_rpc_url = {eth}\n\n\
             [rpc]\n\
             listen = \"{rpc}\"\n\
             admin_token_file = {admin}\n\n\
             [metrics]\n\
             listen = \"{metrics}\"\n\n\
             [auxpow]\n\
             target_spacing = \"10s\"\n\
             target_half_life = \"100s\"\n\
             federation_fee_address = \"{fees}\"\n\n\
             [governance]\n\
             url = {governance}\n\
             governance_key = {governance_key}\n\
             bearer_token_file = {governance_token}\n\
             node_id = \"devnet-node-{index}\"\n\n\
             [pegout]\n\
             source = \"exex\"\n\
             feed_url = {feed}\n\
             bearer_token_file = {feed_token}\n\n\
             [bitcoin]\n\
             url = {bitcoin}\n\
             cookie_file = {cookie}\n\
             start_height = 0\n\
             poll_interval = \"250ms\"\n\
             pegin_confirmations = {pegin_confirmations}\n\
             pegout_confirmations = {pegout_confirmations}\n\
             pegout_fee_rate_sat_vb = {fee_rate}\n\n\
             [network]\n\
             listen = \"{p2p}\"\n\
             bootnodes = [{bootnodes}]\n",
            index = layout.index,
            role = if layout.authority { "authority" } else { "full node" },
            genesis = q(&self.etc.join("genesis/devnet.json")),
            slot_ms = self.slot_ms,
            authorities = authorities.join(", "),
            storage = q(&layout.dir.join("sidecar")),
            engine = quote(&el_field("authrpc")?),
            jwt = q(&self.etc.join("jwt/jwt.hex")),
            eth = quote(&el_field("http")?),
            rpc = layout.rpc,
            admin = q(&self.etc.join("keys/devnet-admin.token")),
            metrics = layout.metrics,
            fees = alys_chainspec::dev::DEVNET_FEDERATION_FEES,
            governance = quote(&self.governance),
            governance_key = quote(&self.governance_key),
            governance_token = q(&self.etc.join("keys/devnet-governance.token")),
            feed = quote(&el_field("burnFeed")?),
            feed_token = q(&self.etc.join("keys/devnet-feed.token")),
            bitcoin = quote(&self.bitcoin_rpc),
            cookie = quote(&self.bitcoin_cookie),
            pegin_confirmations = self.pegin_confirmations,
            pegout_confirmations = self.pegout_confirmations,
            fee_rate = self.pegout_fee_rate.max(1),
            p2p = layout.p2p,
            bootnodes = bootnodes.join(", "),
        ))
    }
}

/// `value[name]`, or null.
fn get<'a>(value: &'a Value, name: &str) -> &'a Value {
    value.get(name).unwrap_or(&Value::Null)
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// `/ip4/…/tcp/…` for a TCP address.
fn multiaddr(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(v4) => format!("/ip4/{}/tcp/{}", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => format!("/ip6/{}/tcp/{}", v6.ip(), v6.port()),
    }
}

/// The public devnet key file of authority `index`.
fn authority_key_file(etc: &Path, index: u32) -> PathBuf {
    if index == 0 {
        etc.join("keys/devnet-authority.key")
    } else {
        etc.join(format!("keys/devnet-authority-{index}.key"))
    }
}

/// A child process (an engine or a node) followed by a task that logs an unexpected exit and stops it
/// on request; dropped, it is killed.
#[derive(Debug)]
struct Supervised {
    pid: u32,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Supervised {
    /// Starts `args` of this executable with stderr appended to `log`, and waits for its JSON ready line.
    async fn start(name: String, args: &[String], log: &Path) -> eyre::Result<(Self, Value)> {
        let exe = std::env::current_exe().wrap_err("finding this executable")?;
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .wrap_err_with(|| format!("opening {}", log.display()))?;
        let mut command = tokio::process::Command::new(exe);
        command.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log_file).kill_on_drop(true);
        die_with_parent(&mut command);
        let mut child = command.spawn().wrap_err_with(|| format!("starting {name}"))?;
        let pid = child.id().unwrap_or_default();
        let stdout = child.stdout.take().ok_or_else(|| eyre::eyre!("{name} has no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let line = match tokio::time::timeout(READY_TIMEOUT, lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(_) => {
                let status = child.wait().await.ok();
                bail!("{name} exited before it was ready ({status:?}); see {}", log.display())
            }
            Err(_) => bail!("{name} was not ready within {READY_TIMEOUT:?}; see {}", log.display()),
        };
        let ready: Value =
            serde_json::from_str(&line).wrap_err_with(|| format!("{name}'s ready line {line:?}"))?;
        if get(&ready, "event") != "ready" {
            bail!("{name} printed {line:?}, not a ready line");
        }
        // Keep the pipe drained and open: a write to a closed stdout would fail in the child.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (stop, stopped) = oneshot::channel();
        let log = log.to_owned();
        let task = tokio::spawn(async move {
            tokio::select! {
                status = child.wait() => {
                    let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                    eprintln!(
                        "alys-devnet: {name} (pid {pid}) exited: {status}; not restarting (log: {})",
                        log.display()
                    );
                }
                _ = stopped => {
                    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
                        // SAFETY: kill(2) on our own unreaped child.
                        unsafe { libc::kill(pid, libc::SIGTERM) };
                    }
                    if tokio::time::timeout(STOP_TIMEOUT, child.wait()).await.is_err() {
                        let _ = child.kill().await;
                    }
                }
            }
        });
        Ok((Self { pid, stop, task }, ready))
    }

    /// Asks every child to stop (SIGTERM, then SIGKILL after a while) and waits for them.
    async fn stop_all(children: Vec<Self>) {
        let mut tasks = Vec::with_capacity(children.len());
        for child in children {
            let _ = child.stop.send(());
            tasks.push(child.task);
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// Makes the child die (SIGKILL) when this process does, however it ends.
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut tokio::process::Command) {
    let parent = std::process::id();
    // SAFETY: prctl and getppid are async-signal-safe; nothing is allocated between fork and exec.
    // The death signal follows the thread that forked: children are spawned from the runtime's
    // long-lived threads (the main thread or a worker), never from a short-lived blocking thread.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the prctl.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(std::io::Error::other("the devnet exited"));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut tokio::process::Command) {}

/// One running node: its engine, its node, and its line in the ready JSON.
#[derive(Debug)]
struct Running {
    el: Supervised,
    node: Supervised,
    entry: Value,
    el_ready: Value,
}

/// Starts node `index`'s engine and writes its configuration; returns the engine and the config path.
async fn start_el(shared: &Shared, layout: &Layout) -> eyre::Result<(Supervised, Value)> {
    std::fs::create_dir_all(&layout.dir).wrap_err_with(|| format!("creating {}", layout.dir.display()))?;
    Supervised::start(format!("engine {}", layout.index), &shared.el_args(layout), &layout.dir.join("el.log"))
        .await
}

/// Writes node `layout`'s configuration for the engine `el_ready`, checks it loads, and returns its path.
fn write_config(
    shared: &Shared,
    layout: &Layout,
    el_ready: &Value,
    bootnodes: &[String],
) -> eyre::Result<PathBuf> {
    let key_file = if layout.authority {
        Some(install_devnet_key(&authority_key_file(&shared.etc, layout.index), &layout.dir)?)
    } else {
        None
    };
    let toml = shared.node_toml(layout, el_ready, key_file.as_deref(), bootnodes)?;
    let path = layout.dir.join("alys.toml");
    std::fs::write(&path, toml).wrap_err_with(|| format!("writing {}", path.display()))?;
    NodeConfig::load(&path).wrap_err_with(|| format!("the configuration written to {}", path.display()))?;
    Ok(path)
}

async fn start_node(layout: &Layout, config: &Path) -> eyre::Result<(Supervised, Value)> {
    let args = vec!["node".to_owned(), "--config".to_owned(), config.display().to_string()];
    Supervised::start(format!("node {}", layout.index), &args, &layout.dir.join("node.log")).await
}

fn entry(
    shared: &Shared,
    layout: &Layout,
    config: &Path,
    el: (&Supervised, &Value),
    node: (&Supervised, &Value),
) -> Value {
    json!({
        "index": layout.index,
        "role": if layout.authority { "authority" } else { "full" },
        "rpc": get(node.1, "rpc"),
        "dashboard": get(node.1, "dashboard"),
        "http": get(el.1, "http"),
        "ws": get(el.1, "ws"),
        "authrpc": get(el.1, "authrpc"),
        "burnFeed": get(el.1, "burnFeed"),
        "metrics": format!("http://{}/metrics", layout.metrics),
        "p2p": get(node.1, "p2p"),
        "p2pListen": multiaddr(layout.p2p),
        "pids": { "node": node.0.pid, "el": el.0.pid },
        "datadir": layout.dir,
        "config": config,
        "elArgs": shared.el_args(layout),
    })
}

/// The multi-process devnet.
pub(crate) async fn run(args: UpArgs) -> eyre::Result<()> {
    let args = args.with_port_offset()?;
    if args.fresh && args.datadir.exists() {
        std::fs::remove_dir_all(&args.datadir)
            .wrap_err_with(|| format!("removing {}", args.datadir.display()))?;
    }
    let full_nodes = args.full_nodes.unwrap_or(1);
    let count = args.authorities.checked_add(full_nodes).ok_or_else(|| eyre::eyre!("too many nodes"))?;
    for (flag, addr) in [
        ("--http.addr", args.http_addr),
        ("--ws.addr", args.ws_addr),
        ("--authrpc.addr", args.authrpc_addr),
        ("--feed.addr", args.feed_addr),
        ("--rpc.addr", args.rpc_addr),
        ("--metrics.addr", args.metrics_addr),
        ("--p2p.addr", args.p2p_addr),
    ] {
        if addr.port() == 0 {
            bail!(
                "{flag} needs a port in multi-node mode (node i uses it plus i): use --ports.offset instead of 0"
            );
        }
    }
    let etc = std::path::absolute(&args.etc)?;
    let available = (0..).take_while(|&i| authority_key_file(&etc, i).exists()).count();
    if args.authorities as usize > available {
        bail!(
            "at most {available} authorities in the devnet (keys {} …)",
            authority_key_file(&etc, 0).display()
        );
    }
    std::fs::create_dir_all(&args.datadir)
        .wrap_err_with(|| format!("creating {}", args.datadir.display()))?;
    let datadir = std::path::absolute(&args.datadir)?;
    let mut authorities = Vec::new();
    for index in 0..args.authorities {
        let key =
            install_devnet_key(&authority_key_file(&etc, index), &datadir.join(format!("node{index}")))?;
        authorities.push(AuthorityKey::from_file(&key)?.public().to_string());
    }

    // The stand-ins every node shares, as the single-node devnet runs them.
    let governance =
        crate::governance::Embedded::start(args.governance_addr, args.governance_admin_addr).await?;
    let governance_addr = governance.addr;
    let (bitcoin, bitcoin_miner) = crate::bitcoin::start(
        &datadir.join("bitcoin"),
        args.bitcoin_addr,
        Duration::from_secs(args.bitcoin_block_secs),
    )
    .await?;
    let bitcoin_cookie = bitcoin.cookie_path().map(|p| p.display().to_string()).unwrap_or_default();

    let shared = Shared {
        etc,
        datadir: datadir.clone(),
        slot_ms: args.slot_ms,
        authorities,
        nodes: count,
        governance: format!("http://{governance_addr}"),
        governance_key: governance.key_hex.clone(),
        bitcoin_rpc: bitcoin.url(),
        bitcoin_cookie: bitcoin_cookie.clone(),
        pegin_confirmations: args.pegin_confirmations,
        pegout_confirmations: args.pegout_confirmations,
        pegout_fee_rate: args.pegout_fee_rate,
        bases: Bases {
            http: args.http_addr,
            ws: args.ws_addr,
            authrpc: args.authrpc_addr,
            feed: args.feed_addr,
            rpc: args.rpc_addr,
            metrics: args.metrics_addr,
            p2p: args.p2p_addr,
        },
    };
    let manifest = datadir.join(MANIFEST);
    std::fs::write(&manifest, serde_json::to_string_pretty(&shared)?)
        .wrap_err_with(|| format!("writing {}", manifest.display()))?;
    let layouts = (0..count).map(|i| shared.layout(i)).collect::<eyre::Result<Vec<_>>>()?;

    // Every engine, then every node (each waits for its engine's ready line to know its URLs).
    let mut els = Vec::new();
    for layout in &layouts {
        els.push(start_el(&shared, layout).await?);
    }
    let mut running = Vec::new();
    let mut pending = Vec::new();
    for (layout, (el, el_ready)) in layouts.iter().zip(els) {
        let config = write_config(&shared, layout, &el_ready, &shared.bootnodes(layout.index, count)?)?;
        let node = start_node(layout, &config).await?;
        pending.push((layout, config, el, el_ready, node));
    }
    for (layout, config, el, el_ready, (node, node_ready)) in pending {
        let entry = entry(&shared, layout, &config, (&el, &el_ready), (&node, &node_ready));
        running.push(Running { el, node, entry, el_ready });
    }
    let Some(first) = running.first() else { bail!("no nodes") };
    let rpc0 = get(&first.entry, "rpc").as_str().unwrap_or_default().to_owned();

    let ready = json!({
        "event": "ready",
        "chainId": get(&first.el_ready, "chainId"),
        "genesisHash": get(&first.el_ready, "genesisHash"),
        "http": get(&first.entry, "http"),
        "ws": get(&first.entry, "ws"),
        "authrpc": get(&first.entry, "authrpc"),
        "rpc": rpc0,
        "dashboard": get(&first.entry, "dashboard"),
        "metrics": get(&first.entry, "metrics"),
        "burnFeed": get(&first.entry, "burnFeed"),
        "minerPayout": DEV_ACCOUNTS[1],
        "federationFees": alys_chainspec::dev::DEVNET_FEDERATION_FEES,
        "governance": format!("http://{governance_addr}"),
        "governanceAdmin": format!("http://{}", governance.admin.addr),
        "bitcoinRpc": bitcoin.url(),
        "bitcoinCookie": bitcoin_cookie,
        "nodes": running.iter().map(|r| r.entry.clone()).collect::<Vec<_>>(),
    });
    println!("{ready}");
    let mut summary = format!(
        "\nAlys devnet is up: {} authorities and {full_nodes} full node(s), one process each (chain id {}).\n",
        args.authorities,
        get(&first.el_ready, "chainId")
    );
    for r in &running {
        let e = &r.entry;
        let s = |name: &str| get(e, name).as_str().unwrap_or_default().to_owned();
        summary.push_str(&format!(
            "  node {} ({:9})  Alys RPC {}  dashboard {}  eth {}  Engine API {}  p2p {}  pids node {} / engine {}\n",
            get(e, "index"),
            s("role"),
            s("rpc"),
            s("dashboard"),
            s("http"),
            s("authrpc"),
            s("p2pListen"),
            r.node.pid,
            r.el.pid,
        ));
    }
    summary.push_str(&format!(
        "  governance        http://{governance_addr} (admin JSON-RPC http://{})\n\
         \x20 Bitcoin regtest   {} (cookie {})\n\
         \x20 miner             {} (pays {})\n\
         \x20 logs              {}/node<i>/node.log and el.log; configs {}/node<i>/alys.toml\n\
         \x20 the JSON line above has every endpoint; add a full node with `alys-devnet join --datadir {} --index {count}`\n",
        governance.admin.addr,
        bitcoin.url(),
        bitcoin_cookie,
        if args.no_miner { "off".to_owned() } else { format!("mining on node 0, {rpc0}") },
        DEV_ACCOUNTS[1],
        datadir.display(),
        datadir.display(),
        datadir.display(),
    ));
    eprintln!("{summary}");

    let miner = (!args.no_miner)
        .then(|| tokio::spawn(alys_miner::run(rpc0, DEV_ACCOUNTS[1], alys_miner::DEFAULT_POLL)));
    alys_node::shutdown_signal().await;
    eprintln!("alys-devnet: shutting down: nodes, then engines, then the stand-ins");
    if let Some(miner) = miner {
        miner.abort();
    }
    let (els, nodes): (Vec<_>, Vec<_>) = running.into_iter().map(|r| (r.el, r.node)).unzip();
    Supervised::stop_all(nodes).await;
    Supervised::stop_all(els).await;
    if let Some(miner) = bitcoin_miner {
        miner.abort();
    }
    bitcoin.stop().await;
    governance.stop();
    Ok(())
}

/// `alys-devnet join`: starts full node `index` of the devnet running in `datadir`, prints its entry as
/// a ready line (`{"event":"ready","node":{…}}`), and stops it on Ctrl-C or SIGTERM.
pub(crate) async fn join(args: JoinArgs) -> eyre::Result<()> {
    let manifest = args.datadir.join(MANIFEST);
    let text = std::fs::read_to_string(&manifest).wrap_err_with(|| {
        format!("reading {} (is a multi-node devnet running there?)", manifest.display())
    })?;
    let shared: Shared =
        serde_json::from_str(&text).wrap_err_with(|| format!("parsing {}", manifest.display()))?;
    if (args.index as usize) < shared.authorities.len() {
        bail!(
            "index {} is an authority's; a joining node is a full node (index {} or more)",
            args.index,
            shared.authorities.len()
        );
    }
    let layout = shared.layout(args.index)?;
    let peers = shared.nodes.max(args.index + 1);
    let (el, el_ready) = start_el(&shared, &layout).await?;
    let config = write_config(&shared, &layout, &el_ready, &shared.bootnodes(args.index, peers)?)?;
    let (node, node_ready) = start_node(&layout, &config).await?;
    let entry = entry(&shared, &layout, &config, (&el, &el_ready), (&node, &node_ready));
    println!("{}", json!({ "event": "ready", "node": entry }));
    eprintln!(
        "full node {} joined: Alys RPC {}, eth {}, logs in {}",
        args.index,
        get(&entry, "rpc"),
        get(&entry, "http"),
        layout.dir.display()
    );
    alys_node::shutdown_signal().await;
    Supervised::stop_all(vec![node]).await;
    Supervised::stop_all(vec![el]).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]

    use super::*;

    fn shared(etc: &Path, datadir: &Path) -> Shared {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        Shared {
            etc: etc.to_owned(),
            datadir: datadir.to_owned(),
            slot_ms: 1_000,
            authorities: vec!["0xaa".into(), "0xbb".into(), "0xcc".into()],
            nodes: 4,
            governance: "http://127.0.0.1:50061".into(),
            governance_key: "03ab".into(),
            bitcoin_rpc: "http://127.0.0.1:18443".into(),
            bitcoin_cookie: "/tmp/x \"y\"/.cookie".into(),
            pegin_confirmations: 1,
            pegout_confirmations: 2,
            pegout_fee_rate: 0,
            bases: Bases {
                http: addr("127.0.0.1:8545"),
                ws: addr("127.0.0.1:8546"),
                authrpc: addr("127.0.0.1:8551"),
                feed: addr("127.0.0.1:50551"),
                rpc: addr("127.0.0.1:3000"),
                metrics: addr("127.0.0.1:9101"),
                p2p: addr("127.0.0.1:30333"),
            },
        }
    }

    #[test]
    fn node_configs_round_trip_through_the_node_loader() {
        let shared = shared(Path::new("/etc/alys"), Path::new("/data/devnet"));
        let el = json!({
            "authrpc": "http://127.0.0.1:8571", "http": "http://127.0.0.1:8565", "burnFeed": "http://127.0.0.1:50553"
        });
        let layout = shared.layout(2).unwrap();
        assert!(layout.authority);
        assert_eq!((layout.http.port(), layout.authrpc.port(), layout.rpc.port()), (8565, 8571, 3002));
        let bootnodes = shared.bootnodes(2, 4).unwrap();
        assert_eq!(
            bootnodes,
            ["/ip4/127.0.0.1/tcp/30333", "/ip4/127.0.0.1/tcp/30334", "/ip4/127.0.0.1/tcp/30336"]
        );
        let key = Path::new("/data/devnet/node2/authority.key");
        let toml = shared.node_toml(&layout, &el, Some(key), &bootnodes).unwrap();
        let config = NodeConfig::from_toml(&toml).unwrap();
        assert_eq!(config.chain.authorities, ["0xaa", "0xbb", "0xcc"]);
        assert_eq!(config.chain.slot_duration, Duration::from_secs(1));
        assert_eq!(config.authority.unwrap().key_file, key);
        assert_eq!(config.storage.data_dir, Path::new("/data/devnet/node2/sidecar"));
        assert_eq!(config.engine.url, "http://127.0.0.1:8571");
        assert_eq!(config.engine.eth_rpc_url.as_deref(), Some("http://127.0.0.1:8565"));
        assert_eq!(config.rpc.listen.port(), 3002);
        assert_eq!(config.metrics.listen.unwrap().port(), 9103);
        assert_eq!(config.auxpow.target_spacing, Duration::from_secs(10));
        assert_eq!(config.auxpow.federation_fee_address, alys_chainspec::dev::DEVNET_FEDERATION_FEES);
        assert_eq!(config.governance.unwrap().node_id, "devnet-node-2");
        let bitcoin = config.bitcoin.unwrap();
        assert_eq!(bitcoin.cookie_file.unwrap(), Path::new("/tmp/x \"y\"/.cookie"));
        assert_eq!((bitcoin.pegin_confirmations, bitcoin.pegout_confirmations), (1, 2));
        assert_eq!(bitcoin.pegout_fee_rate_sat_vb, 1);
        let network = config.network.unwrap();
        assert_eq!(network.listen.port(), 30335);
        assert_eq!(network.bootnodes, bootnodes);
        assert!(
            matches!(config.pegout, Some(alys_node::config::PegoutSection::Exex { ref feed_url, .. }) if feed_url == "http://127.0.0.1:50553")
        );

        let full = shared.layout(3).unwrap();
        assert!(!full.authority);
        let config = NodeConfig::from_toml(&shared.node_toml(&full, &el, None, &[]).unwrap()).unwrap();
        assert!(config.authority.is_none());
        assert!(config.network.unwrap().bootnodes.is_empty());
    }

    #[test]
    fn ports_past_65535_are_refused() {
        let base: SocketAddr = "127.0.0.1:65530".parse().unwrap();
        assert_eq!(nth(base, 1, 5).unwrap().port(), 65535);
        assert!(nth(base, 1, 6).is_err());
        assert!(nth(base, 10, 1).is_err());
        assert!(crate::up::offset_addr(base, 6).is_err());
        assert_eq!(crate::up::offset_addr("127.0.0.1:0".parse().unwrap(), 6).unwrap().port(), 0);
    }

    #[test]
    fn every_devnet_authority_key_exists_and_differs() {
        let etc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../etc");
        let keys: Vec<String> = (0..7)
            .map(|i| {
                let text = std::fs::read_to_string(authority_key_file(&etc, i)).unwrap();
                AuthorityKey::from_hex(text.trim()).unwrap().public().to_string()
            })
            .collect();
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len());
    }
}
