//! The dashboard in a real browser: the devnet runs, Debian's Chromium (headless, driven over WebDriver
//! by chromedriver) opens the page its ready line names, and the test checks that what the page shows is
//! what the node's RPC says, that it changes without a reload, and saves screenshots.
//!
//! Chromium and chromedriver come from Debian's `chromium` and `chromium-driver` packages (`.ci/run`
//! installs them); `ALYS_CHROMIUM` and `ALYS_CHROMEDRIVER` point elsewhere.

use std::{
    collections::HashMap,
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use alys_rpc::{ChainApiClient, GovernanceApiClient};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{DevnetProcess, free_addr, tempdir, wait_for_height};

/// A headless Chromium under chromedriver, gone on drop.
struct Browser {
    driver: Child,
    client: Option<fantoccini::Client>,
    _profile: tempfile::TempDir,
}

fn program(env: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.exists(),
        "{} is missing: install Debian's chromium and chromium-driver packages (`.ci/run` does), or set {env}",
        path.display()
    );
    path
}

impl Browser {
    async fn start() -> Self {
        let chromium = program("ALYS_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = program("ALYS_CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = free_addr().port();
        // Its own process group: Chromium runs in it, so dropping the browser (even when an assertion
        // failed before the session was closed) kills both, not chromedriver alone.
        let driver = Command::new(chromedriver)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut capabilities = serde_json::Map::new();
        // Headless, no sandbox (CI runs as root), and nothing that reaches for the internet: this machine
        // has no network beyond loopback and Chromium's background fetches would only fail.
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-quic", "--no-first-run", "--disable-breakpad", "--window-size=1400,2100",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match fantoccini::ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(error) => {
                    assert!(tokio::time::Instant::now() < deadline, "no WebDriver session at {url}: {error}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        Self { driver, client: Some(client), _profile: profile }
    }

    fn client(&self) -> &fantoccini::Client {
        self.client.as_ref().expect("an open session")
    }

    async fn eval(&self, script: &str) -> Value {
        self.client().execute(script, vec![]).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Every `data-field` as (text, `data-value`), and the snapshot they were drawn from, read in one
    /// script so no render falls between them.
    async fn read(&self) -> (HashMap<String, (String, Option<String>)>, Value) {
        let read = self
            .eval(
                "return { fields: Array.from(document.querySelectorAll('[data-field]'))
                   .map(e => [e.dataset.field, e.textContent.trim(), e.dataset.value ?? null]),
                   last: window.alysLast };",
            )
            .await;
        let fields = read["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .map(|f| {
                (
                    f[0].as_str().unwrap().to_owned(),
                    (f[1].as_str().unwrap().to_owned(), f[2].as_str().map(str::to_owned)),
                )
            })
            .collect();
        (fields, read["last"].clone())
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client().screenshot().await.expect("a screenshot");
        assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "a real picture, not {} bytes", png.len());
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        eprintln!("dashboard screenshot: {}", path.display());
        path
    }

    async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn text<'a>(fields: &'a HashMap<String, (String, Option<String>)>, name: &str) -> &'a str {
    &fields.get(name).unwrap_or_else(|| panic!("no data-field {name} on the page")).0
}

fn value<'a>(fields: &'a HashMap<String, (String, Option<String>)>, name: &str) -> &'a str {
    fields.get(name).and_then(|f| f.1.as_deref()).unwrap_or_else(|| panic!("no data-value on {name}"))
}

fn number(fields: &HashMap<String, (String, Option<String>)>, name: &str) -> u64 {
    text(fields, name).parse().unwrap_or_else(|_| panic!("{name} is not a number: {:?}", text(fields, name)))
}

/// `GET url` over a plain TCP connection: status line and headers, lowercased, and the body.
async fn http_get(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) =
        rest.split_once('/').map_or_else(|| (rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.to_lowercase(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_what_the_rpc_says_and_updates_live_in_chromium() {
    let dir = tempdir();
    let node = DevnetProcess::start(dir.path());
    let alys = node.client();
    wait_for_height(&alys, 2, Duration::from_secs(30)).await;

    // The page: HTML from the RPC listener, with a policy that lets it load nothing from elsewhere.
    let (head, body) = http_get(&node.dashboard).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(head.contains("content-security-policy: default-src 'self'"), "{head}");
    assert!(body.contains("<title>Alys node dashboard</title>"), "the page itself");

    let browser = Browser::start().await;
    browser.client().goto(&node.dashboard).await.expect("the page opens");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while browser.eval("return document.documentElement.dataset.status;").await != json!("live") {
        assert!(tokio::time::Instant::now() < deadline, "the page never went live over WebSocket");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    browser.eval("window.notReloaded = true; return null;").await;

    // The RPC's answers around the moment the page is read: it polls alys_syncStatus every 100 ms from
    // two seconds before (a snapshot is at most a second old) until just after. Head, slot and bits move
    // every second on this devnet, so the page's values must be among what the RPC said in that window.
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let poller = {
        let alys = node.client();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                seen.push(alys.sync_status().await.unwrap());
                tokio::select! {
                    _ = &mut stopped => return seen,
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let (fields, last) = browser.read().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).unwrap();
    let seen = poller.await.unwrap();
    let after = seen.last().cloned().unwrap();

    // What the page shows is the snapshot it received...
    assert_eq!(number(&fields, "head-height"), last["chain"]["head"]["height"].as_u64().unwrap());
    assert_eq!(number(&fields, "sequence"), last["sequence"].as_u64().unwrap());
    // ...and the snapshot is what the RPC said, with the canonical blocks' hashes.
    let head_height = number(&fields, "head-height");
    assert!(seen.iter().any(|s| s.head.height == head_height), "page head {head_height} never the RPC's");
    let canonical = alys.block_by_height(head_height).await.unwrap().expect("the page's head is canonical");
    assert_eq!(value(&fields, "head-hash"), canonical.hash.to_string(), "head hash");
    let finalized_height = number(&fields, "finalized-height");
    assert!(seen.iter().any(|s| s.finalized.is_some_and(|f| f.height == finalized_height)), "finalized");
    let finalized =
        alys.block_by_height(finalized_height).await.unwrap().expect("a canonical finalized block");
    assert_eq!(value(&fields, "finalized-hash"), finalized.hash.to_string(), "finalized hash");
    assert_eq!(number(&fields, "safe-height"), finalized_height, "Alys's safe block is its finalized block");
    assert_eq!(number(&fields, "finality-lag"), head_height - finalized_height);
    let slot = number(&fields, "slot");
    assert!(seen.iter().any(|s| s.slot == slot), "slot {slot}");
    assert_eq!(number(&fields, "slot-author"), 0, "one authority authors every slot");
    let bits = text(&fields, "auxpow-bits");
    assert!(seen.iter().any(|s| format!("{:08x}", s.pow_bits) == bits), "bits {bits} never the RPC's");
    assert_eq!(text(&fields, "execution-online"), "online");
    assert!(
        text(&fields, "execution-version").starts_with("alys-devnet-el/"),
        "the engine's engine_getClientVersionV1: {}",
        text(&fields, "execution-version")
    );
    assert!(after.engine_online);
    let latency: f64 = text(&fields, "engine-latency").parse().expect("an Engine API latency in ms");
    assert!(latency > 0.0 && latency < 5_000.0, "engine latency {latency} ms");
    assert_eq!(number(&fields, "equivocations"), after.equivocations);
    let bitcoin_height = number(&fields, "bitcoin-height");
    assert!(
        seen.iter().any(|s| s.bitcoin.as_ref().is_some_and(|b| b.height == bitcoin_height)),
        "Bitcoin height {bitcoin_height} never the RPC's"
    );
    let governance = alys.governance_status().await.unwrap();
    assert_eq!(
        text(&fields, "governance-connected"),
        if governance.connected { "connected" } else { "disconnected" }
    );
    let federation = governance.federations.last().expect("a federation");
    assert_eq!(number(&fields, "federation-threshold"), u64::from(federation.threshold));
    assert_eq!(text(&fields, "federation-address"), federation.address);
    let authority_rows =
        browser.eval("return document.querySelectorAll('[data-table=authorities] tr').length;").await;
    assert_eq!(authority_rows, json!(after.authorities.len()), "one row per authority");
    assert_eq!(text(&fields, "peer-count"), "—", "no [network] on the single-node devnet");
    assert_eq!(text(&fields, "bitcoin-network"), "regtest");
    assert_eq!(value(&fields, "node-version"), env!("CARGO_PKG_VERSION"));
    let chain_id = crate::support::raw_call(&node.http, "eth_chainId", json!([])).await.unwrap();
    assert_eq!(number(&fields, "chain-id"), crate::support::quantity(&chain_id), "chain id");

    // It updates without a reload: new snapshots over the WebSocket, a higher head, plots drawn.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (now, _) = browser.read().await;
        if number(&now, "head-height") >= head_height + 2
            && number(&now, "sequence") >= number(&fields, "sequence") + 2
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the page did not update: head {}",
            text(&now, "head-height")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(browser.eval("return window.notReloaded === true;").await, json!(true), "no reload");
    for plot in ["block-time", "finality-lag", "queues"] {
        let drawn = browser
            .eval(&format!(
                "return Array.from(document.querySelectorAll('[data-plot=\"{plot}\"] path, [data-plot=\"{plot}\"] polyline'))
                   .filter(e => (e.getAttribute('d') || e.getAttribute('points') || '').length > 0).length;"
            ))
            .await;
        assert!(drawn.as_u64().is_some_and(|n| n >= 1), "plot {plot} draws a series: {drawn}");
    }
    assert_eq!(browser.eval("return window.alysRenderErrors;").await, json!(0), "every panel rendered");
    browser.screenshot("devnet.png").await;
    // The devnet's URL has no ?btc=: the page links Bitcoin ids to the explorer of the node's network,
    // and regtest has none.
    assert!(!node.dashboard.contains('?'), "{}", node.dashboard);
    let note = browser.eval("return document.getElementById('links-note').textContent;").await;
    assert!(note.as_str().is_some_and(|n| n.starts_with("Bitcoin off")), "regtest has no explorer: {note}");
    assert_eq!(
        browser.eval("return document.querySelectorAll('a[href*=\"mempool\"]').length;").await,
        json!(0)
    );
    browser.close().await;

    // Every metric the node exports has its help text.
    let metrics = node.metrics_text().await;
    let helped: Vec<&str> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .filter_map(|l| l.split_once(' '))
        .map(|p| p.0)
        .collect();
    let typed: Vec<&str> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert!(typed.len() > 20, "metrics exported: {}", typed.len());
    let missing: Vec<&&str> = typed.iter().filter(|name| !helped.contains(name)).collect();
    assert!(missing.is_empty(), "metrics without help text: {missing:?}");
}
