//! `alys status`: one screen about a running node, for a terminal, read over its Alys RPC with the
//! typed client (`alys_syncStatus`, `alys_peers`, `alys_governanceStatus`).

use std::fmt::Write as _;

use alys_rpc::{
    ChainApiClient, GovernanceApiClient,
    jsonrpsee::http_client::HttpClientBuilder,
    types::{GovernanceStatus, Peers, SyncStatus},
};

/// Why the summary could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The RPC URL is unusable.
    #[error("RPC endpoint {url}: {source}")]
    Endpoint {
        /// The URL.
        url: String,
        /// Why.
        source: alys_rpc::jsonrpsee::core::client::Error,
    },
    /// `alys_syncStatus` failed (the node is down or not an Alys node).
    #[error("alys_syncStatus at {url}: {source}")]
    Call {
        /// The URL.
        url: String,
        /// Why.
        source: alys_rpc::jsonrpsee::core::client::Error,
    },
}

/// Reads the node at `url` and renders its summary.
pub async fn read(url: &str) -> Result<String, StatusError> {
    let client = HttpClientBuilder::default()
        .request_timeout(std::time::Duration::from_secs(10))
        .build(url)
        .map_err(|source| StatusError::Endpoint { url: url.to_owned(), source })?;
    let sync =
        client.sync_status().await.map_err(|source| StatusError::Call { url: url.to_owned(), source })?;
    // Optional parts: a node without [network] or [governance] answers these with an error.
    let peers = client.peers().await.ok();
    let governance = client.governance_status().await.ok().filter(|g| g.configured);
    Ok(render(&sync, peers.as_ref(), governance.as_ref()))
}

/// The summary: chain, production, finality, network, execution client, Bitcoin, governance.
pub fn render(sync: &SyncStatus, peers: Option<&Peers>, governance: Option<&GovernanceStatus>) -> String {
    let mut out = String::new();
    let role = match sync.authority_index {
        Some(i) => format!("authority {i} of {}", sync.authorities.len()),
        None => format!("full node ({} authorities)", sync.authorities.len()),
    };
    let _ = writeln!(out, "Alys node, {role}");
    let _ = writeln!(
        out,
        "  head        {} {} (slot {}, local slot {})",
        sync.head.height, sync.head.hash, sync.head.slot, sync.slot
    );
    match &sync.finalized {
        Some(f) => {
            let _ = writeln!(
                out,
                "  finalized   {} {} ({} blocks behind the head)",
                f.height,
                f.hash,
                sync.head.height.saturating_sub(f.height)
            );
        }
        None => {
            let _ = writeln!(out, "  finalized   none yet (no merged-mining proof)");
        }
    }
    let production = if sync.paused {
        "paused by an operator".to_owned()
    } else if sync.governance.production_paused {
        "paused by governance".to_owned()
    } else if let Some(reason) = &sync.production_stopped {
        format!("stopped: {reason}")
    } else {
        "running".to_owned()
    };
    let _ = writeln!(out, "  production  {production}; pow bits {:08x}", sync.pow_bits);
    if sync.equivocations > 0 {
        let _ = writeln!(
            out,
            "  EQUIVOCATIONS {} recorded (see the log and alys_syncStatus)",
            sync.equivocations
        );
    }
    let _ = writeln!(
        out,
        "  execution   {}{}",
        if sync.engine_online { "online" } else { "OFFLINE" },
        if sync.engine_synced { ", has every canonical block" } else { ", catching up" }
    );
    match (&sync.sync, peers) {
        (Some(state), Some(peers)) => {
            let target = state.target.map(|t| format!(" to {t}")).unwrap_or_default();
            let _ = writeln!(
                out,
                "  network     {}{target}, {} peers, id {}",
                state.state, state.peers, peers.peer_id
            );
            for peer in &peers.peers {
                let head = peer.head.map(|h| h.height.to_string()).unwrap_or_else(|| "?".into());
                let _ = writeln!(
                    out,
                    "    {} {:<8} score {:>6.1} head {:>8} {}",
                    peer.peer_id,
                    peer.direction,
                    peer.score,
                    head,
                    peer.address.as_deref().unwrap_or("")
                );
            }
        }
        _ => {
            let _ = writeln!(out, "  network     none (runs alone)");
        }
    }
    match &sync.bitcoin {
        Some(b) => {
            let followed = b.followed_height.map(|h| h.to_string()).unwrap_or_else(|| "-".into());
            let _ = writeln!(
                out,
                "  bitcoin     {} height {} (followed {followed})",
                if b.connected { "connected," } else { "UNREACHABLE," },
                b.height
            );
        }
        None => {
            let _ = writeln!(out, "  bitcoin     not configured");
        }
    }
    match governance {
        Some(g) => {
            let federation = g
                .federations
                .last()
                .map(|f| format!("{}-of-{} {}", f.threshold, f.members.len(), f.address))
                .unwrap_or_else(|| "no federation yet".into());
            let _ = writeln!(
                out,
                "  governance  {}, {} reconnects, {} signature requests pending; federation {federation}",
                if g.connected { "connected" } else { "DISCONNECTED" },
                g.reconnects,
                g.pending_signature_requests
            );
        }
        None => {
            let _ = writeln!(out, "  governance  not configured");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use serde_json::json;

    use super::*;

    fn sync(network: bool) -> SyncStatus {
        let mut value = json!({
            "head": { "height": 42, "hash": format!("0x{}", "11".repeat(32)), "executionHash": format!("0x{}", "22".repeat(32)), "slot": 900 },
            "safe": { "height": 40, "hash": format!("0x{}", "33".repeat(32)) },
            "finalized": { "height": 40, "hash": format!("0x{}", "33".repeat(32)) },
            "slot": 901, "authorities": ["0xaa", "0xbb", "0xcc"], "authorityIndex": 1, "equivocations": 2,
            "paused": false, "engineOnline": true, "engineSynced": true, "productionStopped": null,
            "powBits": "207fffff",
            "governance": { "peginsPaused": false, "pegoutsPaused": false, "productionPaused": false,
                "parameters": { "maxBlocksWithoutPow": 1000, "pegoutFeeRateSatVb": 10, "peginConfirmations": 6,
                    "pegoutMinSats": 1000000, "peginMinSats": 10000, "peginGraceBlocks": 43200,
                    "pegoutFeeRateCapSatVb": 1000, "pegoutConfirmations": 6, "pegoutBumpAfterBlocks": 1800 } },
            "bitcoin": { "connected": false, "height": 117, "bestHash": null, "followedHeight": 110 },
        });
        if network {
            value["sync"] = json!({ "state": "syncing", "target": 50, "peers": 1 });
        }
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_summary_says_what_an_operator_looks_for() {
        let peers: Peers = serde_json::from_value(json!({
            "peerId": "12D3KooWself", "listen": [],
            "peers": [{ "peerId": "12D3KooWpeer", "address": "/ip4/10.0.0.2/tcp/30333", "direction": "outbound",
                "score": -12.5, "client": "alys/0.1.0", "connectedSecs": 5,
                "head": { "height": 50, "hash": format!("0x{}", "44".repeat(32)) }, "finalized": null }],
        }))
        .unwrap();
        let text = render(&sync(true), Some(&peers), None);
        for needle in [
            "authority 1 of 3",
            "head        42",
            "finalized   40",
            "2 blocks behind",
            "production  running",
            "EQUIVOCATIONS 2",
            "execution   online, has every canonical block",
            "network     syncing to 50, 1 peers",
            "12D3KooWpeer outbound score  -12.5 head       50",
            "bitcoin     UNREACHABLE, height 117 (followed 110)",
            "governance  not configured",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
        let alone = render(&sync(false), None, None);
        assert!(alone.contains("network     none (runs alone)"), "{alone}");
    }
}
