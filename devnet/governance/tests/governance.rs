//! The devnet governance service over real gRPC on loopback: it announces a verifiable federation and
//! returns witnesses Bitcoin's script interpreter accepts, and its faults are visible to the node.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]

use std::time::Duration;

use alys_devnet_governance::{DevGovernance, Faults};
use alys_proto::governance::v1::{
    Heartbeat, RequestMetadata, SignatureRequest, SignatureStatus, StreamRequest, StreamResponse,
    governance_stream_client::GovernanceStreamClient, governance_stream_server::GovernanceStreamServer,
    stream_request, stream_response,
};
use alys_sidecar::governance::{Federation, witness};
use bitcoin::{
    Amount, Network, OutPoint, PublicKey, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness,
    absolute::LockTime, consensus::serialize, ecdsa, hashes::Hash, transaction,
};
use tokio::sync::mpsc;
use tokio_stream::{
    StreamExt,
    wrappers::{ReceiverStream, TcpListenerStream},
};

async fn serve(service: DevGovernance) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(GovernanceStreamServer::new(service.into_service()))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    format!("http://{addr}")
}

fn request(id: &str, payload: stream_request::Payload) -> StreamRequest {
    StreamRequest {
        metadata: Some(RequestMetadata { request_id: id.into(), ..Default::default() }),
        payload: Some(payload),
    }
}

pub(crate) fn spend(federation: &Federation) -> (Transaction, TxOut) {
    let spent =
        TxOut { value: Amount::from_sat(2_000_000), script_pubkey: federation.address.script_pubkey() };
    let tx = Transaction {
        version: transaction::Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint { txid: Txid::from_byte_array([3; 32]), vout: 1 },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value: Amount::from_sat(1_990_000),
            script_pubkey: ScriptBuf::new_op_return([7]),
        }],
    };
    (tx, spent)
}

/// A 2-of-n peg-out signature request for input 0 of `tx`, which spends `spent`.
pub(crate) fn signature_request(tx: &Transaction, spent: &TxOut) -> SignatureRequest {
    SignatureRequest {
        tx_hex: bitcoin::hex::DisplayHex::to_lower_hex_string(&serialize(tx)),
        input_indices: vec![0],
        amounts: vec![spent.value.to_sat()],
        tx_type: 2,
        required_signatures: 2,
        timeout_seconds: None,
    }
}

async fn open(url: String) -> (mpsc::Sender<StreamRequest>, tonic::Streaming<StreamResponse>) {
    let mut client = GovernanceStreamClient::connect(url).await.unwrap();
    let (tx, rx) = mpsc::channel(16);
    let responses = client.stream(ReceiverStream::new(rx)).await.unwrap().into_inner();
    (tx, responses)
}

fn witness_from(response: &StreamResponse, federation: &Federation) -> Witness {
    let Some(stream_response::Payload::SignatureResponse(sigs)) = &response.payload else {
        panic!("{response:?}")
    };
    assert_eq!(sigs.status, SignatureStatus::Complete as i32);
    let pairs: Vec<(PublicKey, ecdsa::Signature)> = sigs
        .signatures
        .iter()
        .map(|w| {
            (
                PublicKey::from_slice(&w.public_key).unwrap(),
                ecdsa::Signature::from_slice(&w.signature).unwrap(),
            )
        })
        .collect();
    witness::multisig_witness(&federation.witness_script, &pairs).unwrap()
}

#[tokio::test]
async fn announces_a_verifiable_federation_and_signs_spends_the_interpreter_accepts() {
    let service = DevGovernance::devnet(3, 2).unwrap();
    let governance_key = service.governance_key();
    let (tx, mut responses) = open(serve(service).await).await;

    let first = responses.next().await.unwrap().unwrap();
    let Some(stream_response::Payload::FederationUpdate(update)) = first.payload else { panic!("{first:?}") };
    let federation = Federation::from_update(&update, &governance_key, Network::Regtest).unwrap();
    assert_eq!((federation.threshold, federation.members.len()), (2, 3));

    let (mut spend_tx, spent) = spend(&federation);
    tx.send(request(
        "sig-1",
        stream_request::Payload::SignatureRequest(signature_request(&spend_tx, &spent)),
    ))
    .await
    .unwrap();
    let response = responses.next().await.unwrap().unwrap();
    assert_eq!(response.metadata.as_ref().unwrap().request_id, "sig-1", "responses echo the request id");
    spend_tx.input[0].witness = witness_from(&response, &federation);
    witness::verify_input(&spend_tx, 0, &spent).unwrap();

    tx.send(request(
        "hb-1",
        stream_request::Payload::Heartbeat(Heartbeat { timestamp: 5, sequence: 9, health: 1 }),
    ))
    .await
    .unwrap();
    let ack = responses.next().await.unwrap().unwrap();
    let Some(stream_response::Payload::HeartbeatAck(ack)) = ack.payload else { panic!("{ack:?}") };
    assert_eq!(ack.sequence, 9);
}

#[tokio::test]
async fn injected_faults_reach_the_node() {
    // A bad signature: the node's interpreter check refuses the witness.
    let service = DevGovernance::devnet(3, 2).unwrap().with_faults(Faults {
        bad_signature: true,
        duplicate: true,
        ..Default::default()
    });
    let federation = service.federation().unwrap();
    let (tx, mut responses) = open(serve(service).await).await;
    let _update = responses.next().await.unwrap().unwrap();
    let (mut spend_tx, spent) = spend(&federation);
    tx.send(request(
        "sig-bad",
        stream_request::Payload::SignatureRequest(signature_request(&spend_tx, &spent)),
    ))
    .await
    .unwrap();
    let first = responses.next().await.unwrap().unwrap();
    let duplicate = responses.next().await.unwrap().unwrap();
    assert_eq!(first, duplicate, "duplicated responses carry the same request id");
    spend_tx.input[0].witness = witness_from(&first, &federation);
    assert!(witness::verify_input(&spend_tx, 0, &spent).is_err());

    // Garbage requests get a FAILED response, not a dead stream.
    tx.send(request(
        "sig-garbage",
        stream_request::Payload::SignatureRequest(SignatureRequest {
            tx_hex: "zz".into(),
            ..Default::default()
        }),
    ))
    .await
    .unwrap();
    let failed = responses.next().await.unwrap().unwrap();
    let Some(stream_response::Payload::SignatureResponse(failed)) = failed.payload else { panic!() };
    assert_eq!(failed.status, SignatureStatus::Failed as i32);
    assert!(failed.failure_reason.is_some());

    // Dropping the stream after one response ends it.
    let dropper = DevGovernance::devnet(2, 1)
        .unwrap()
        .with_faults(Faults { drop_after: Some(1), ..Default::default() });
    let (tx, mut responses) = open(serve(dropper).await).await;
    let _update = responses.next().await.unwrap().unwrap();
    tx.send(request("hb", stream_request::Payload::Heartbeat(Heartbeat::default()))).await.unwrap();
    let _ack = responses.next().await.unwrap().unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), responses.next()).await.unwrap();
    assert!(end.is_none() || end.unwrap().is_err(), "the stream was dropped");
}

mod stream_actor {
    use std::time::Duration;

    use alys_devnet_governance::DevGovernance;
    use alys_proto::governance::v1::{
        SignatureRequest, SignatureStatus, governance_stream_server::GovernanceStreamServer,
    };
    use alys_sidecar::governance::stream::{self, GovernanceEvent, StreamConfig, StreamError};
    use tokio_stream::wrappers::TcpListenerStream;

    async fn serve_at(service: DevGovernance, port: u16) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(GovernanceStreamServer::new(service.into_service()))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    fn config(port: u16, service: &DevGovernance, timeout: Duration) -> StreamConfig {
        let mut config = StreamConfig::new(format!("http://127.0.0.1:{port}"), service.governance_key());
        config.min_backoff = Duration::from_millis(50);
        config.max_backoff = Duration::from_millis(200);
        config.signature_timeout = timeout;
        config
    }

    fn request(federation: &alys_sidecar::governance::Federation) -> SignatureRequest {
        let (tx, spent) = super::spend(federation);
        super::signature_request(&tx, &spent)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connects_learns_the_federation_and_gets_signatures() {
        let service = DevGovernance::devnet(3, 2).unwrap();
        let federation = service.federation().unwrap();
        let port = free_port();
        serve_at(service.clone(), port).await;
        let dir = std::env::temp_dir().join(format!("alys-gov-{}-a", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (handle, _task) =
            stream::spawn(config(port, &service, Duration::from_secs(10)), &dir.join("governance.redb"))
                .unwrap();
        let mut events = handle.subscribe();
        let GovernanceEvent::Federation(learned) =
            tokio::time::timeout(Duration::from_secs(10), events.recv()).await.unwrap().unwrap()
        else {
            panic!("expected a federation")
        };
        assert_eq!(learned.address, federation.address);
        assert!(handle.status().connected);
        let response = handle.request_signatures(request(&federation)).await.unwrap();
        assert_eq!(response.status, SignatureStatus::Complete as i32);
        assert_eq!(response.signatures.len(), 2);
        assert!(handle.pending().await.unwrap().is_empty(), "answered requests leave the store");
        assert_eq!(handle.federations().await.unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn signature_requests_survive_an_outage_and_a_restart() {
        let service = DevGovernance::devnet(3, 2).unwrap();
        let federation = service.federation().unwrap();
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("alys-gov-{}-b", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = dir.join("governance.redb");

        // Governance is down: the request times out for the caller but stays pending, durably.
        let (handle, task) =
            stream::spawn(config(port, &service, Duration::from_millis(300)), &store).unwrap();
        assert!(matches!(
            handle.request_signatures(request(&federation)).await,
            Err(StreamError::Timeout(_))
        ));
        let pending = handle.pending().await.unwrap();
        assert_eq!(pending.len(), 1);
        assert!(!handle.status().connected);
        task.abort();
        let _ = task.await;
        drop(handle);

        // The node restarts and governance comes up: the stored request is re-sent with its id and answered.
        serve_at(service.clone(), port).await;
        let (handle, _task) = stream::spawn(config(port, &service, Duration::from_secs(10)), &store).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !handle.pending().await.unwrap().is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "pending request was not re-sent and answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(handle.status().connected);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
