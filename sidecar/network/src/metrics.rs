//! The network's Prometheus metrics (through the `metrics` facade).

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

pub(crate) const PEERS: &str = "alys_network_peers";
pub(crate) const GOSSIP_MESSAGES: &str = "alys_network_gossip_messages_total";
pub(crate) const GOSSIP_PUBLISHED: &str = "alys_network_gossip_published_total";
pub(crate) const GOSSIP_BYTES: &str = "alys_network_gossip_bytes_total";
pub(crate) const REQUESTS: &str = "alys_network_requests_total";
pub(crate) const REQUEST_SECONDS: &str = "alys_network_request_seconds";
pub(crate) const PEERS_BANNED: &str = "alys_network_peers_banned_total";
pub(crate) const PENALTIES: &str = "alys_network_penalties_total";
pub(crate) const PEER_SCORE: &str = "alys_network_peer_score";
pub(crate) const DROPPED: &str = "alys_network_dropped_total";

/// Registers the help text of every network metric; call once, after installing the recorder.
pub fn describe_metrics() {
    describe_gauge!(PEERS, "Connected peers");
    describe_counter!(
        GOSSIP_MESSAGES,
        "Inbound gossip messages by topic and the application's verdict (accept, ignore, reject)"
    );
    describe_counter!(GOSSIP_PUBLISHED, "Gossip messages this node published, by topic");
    describe_counter!(
        GOSSIP_BYTES,
        Unit::Bytes,
        "Gossip payload bytes by topic and direction (inbound, outbound)"
    );
    describe_counter!(
        REQUESTS,
        "Sync requests by kind, direction (inbound, outbound) and outcome (ok, error, timeout, disconnected, too_large, decode, rate_limited, busy, ...)"
    );
    describe_histogram!(REQUEST_SECONDS, Unit::Seconds, "Round-trip time of outbound sync requests by kind");
    describe_counter!(PEERS_BANNED, "Peers banned (disconnected and refused for a while)");
    describe_counter!(PENALTIES, "Penalties given to peers, by reason");
    describe_gauge!(PEER_SCORE, "Gossipsub score of each connected peer (including the application score)");
    describe_counter!(
        DROPPED,
        "Inbound messages dropped before the application saw them, by reason (oversize, rate_limit, channel_full)"
    );
}
