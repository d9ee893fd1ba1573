//! The devnet governance service over real gRPC on loopback: it announces a verifiable federation and
//! returns witnesses Bitcoin's script interpreter accepts, and its faults are visible to the node.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]

use std::time::Duration;

use alys_devnet_governance::{DevGovernance, Faults};
use alys_governance::{Federation, witness};
use alys_proto::governance::v1::{
    Heartbeat, RequestMetadata, SignatureRequest, SignatureStatus, StreamRequest, StreamResponse,
    governance_stream_client::GovernanceStreamClient, governance_stream_server::GovernanceStreamServer,
    stream_request, stream_response,
};
use bitcoin::{Network, PublicKey, Transaction, TxOut, Witness, consensus::serialize, ecdsa};
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
    alys_devnet_governance::example_spend(federation)
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

    use alys_devnet_governance::{DevGovernance, Faults, GovernanceService};
    use alys_governance::{
        Federation, SignError, sign_transaction,
        stream::{self, GovernanceEvent, StreamConfig, StreamError},
        witness,
    };
    use alys_proto::governance::v1::{
        EmergencyScope, HealthRequest, SignatureRequest, SignatureStatus, TransactionType,
        governance_stream_client::GovernanceStreamClient, governance_stream_server::GovernanceStreamServer,
        stream_response,
    };
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
        config.backoff = stream::reconnect_backoff(Duration::from_millis(400));
        config.signature_timeout = timeout;
        config
    }

    fn storage(path: &std::path::Path) -> std::sync::Arc<alys_storage::Storage> {
        std::sync::Arc::new(alys_storage::Storage::open(path).unwrap())
    }

    fn request(federation: &alys_governance::Federation) -> SignatureRequest {
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
        let (handle, _task) = stream::spawn(
            config(port, &service, Duration::from_secs(10)),
            storage(&dir.join("governance.redb")),
        )
        .unwrap();
        let mut events = handle.subscribe();
        let GovernanceEvent::Federation(learned) =
            tokio::time::timeout(Duration::from_secs(10), events.recv()).await.unwrap().unwrap()
        else {
            panic!("expected a federation")
        };
        assert_eq!(learned.address, federation.address);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !handle.status().connected {
            assert!(tokio::time::Instant::now() < deadline, "not connected");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
            stream::spawn(config(port, &service, Duration::from_millis(300)), storage(&store)).unwrap();
        let Err(StreamError::Timeout { request_id, .. }) =
            handle.request_signatures(request(&federation)).await
        else {
            panic!("expected a timeout")
        };
        let pending = handle.pending().await.unwrap();
        assert_eq!(pending, std::slice::from_ref(&request_id));
        assert!(!handle.status().connected);
        task.abort();
        let _ = task.await;
        drop(handle);

        // The node restarts and governance comes up: the stored request is re-sent with its id and answered.
        serve_at(service.clone(), port).await;
        let (handle, _task) =
            stream::spawn(config(port, &service, Duration::from_secs(10)), storage(&store)).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !handle.pending().await.unwrap().is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "pending request was not re-sent and answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(handle.status().connected);
        // No caller waits any more: the answer is kept under the request id until it is taken, once.
        assert_eq!(handle.answered().await.unwrap(), std::slice::from_ref(&request_id));
        let answer = handle.signature_response(request_id.clone()).await.unwrap().expect("kept");
        assert_eq!(answer.status, SignatureStatus::Complete as i32);
        assert_eq!(handle.take_signature_response(request_id.clone()).await.unwrap(), Some(answer));
        assert_eq!(handle.take_signature_response(request_id).await.unwrap(), None, "taken once");
        assert!(handle.answered().await.unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    async fn serve_service(service: &GovernanceService, port: u16, tls: Option<(Vec<u8>, Vec<u8>)>) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        tokio::spawn(alys_devnet_governance::serve(service.clone(), listener, tls));
    }

    fn tempdir(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("alys-gov-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Serves a devnet service with `faults` and starts a node's StreamActor against it.
    async fn faulty(
        faults: Faults,
        tag: &str,
    ) -> (GovernanceService, stream::StreamHandle, std::path::PathBuf) {
        let service = DevGovernance::devnet(3, 2).unwrap().with_faults(faults).into_service();
        let port = free_port();
        serve_service(&service, port, None).await;
        let dir = tempdir(tag);
        let (handle, _task) = stream::spawn(
            config(port, &service.state(), Duration::from_secs(10)),
            storage(&dir.join("governance.redb")),
        )
        .unwrap();
        (service, handle, dir)
    }

    async fn connected(handle: &stream::StreamHandle, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !handle.status().connected {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    async fn federation_of(handle: &stream::StreamHandle) -> Federation {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(f) = handle.federations().await.unwrap().pop() {
                return f;
            }
            assert!(tokio::time::Instant::now() < deadline, "no federation learned");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_node_gets_a_spend_signed_and_the_interpreter_accepts_it_before_and_after_rotation() {
        let service = DevGovernance::devnet(3, 2).unwrap().with_bearer_token("s3cret").into_service();
        let port = free_port();
        serve_service(&service, port, None).await;
        let dir = tempdir("roundtrip");
        let mut config = config(port, &service.state(), Duration::from_secs(10));
        config.bearer_token = Some("s3cret".into());
        let (handle, _task) = stream::spawn(config, storage(&dir.join("governance.redb"))).unwrap();
        let old = federation_of(&handle).await;
        let (tx, spent) = super::spend(&old);
        let signed =
            sign_transaction(&handle, &old, &tx, std::slice::from_ref(&spent), TransactionType::Pegout, None)
                .await
                .unwrap();
        witness::verify_transaction(&signed, std::slice::from_ref(&spent)).unwrap();
        assert_eq!(signed.input[0].witness.len(), 4, "empty, two signatures, the witness script");

        // Rotation: the node learns the new federation; coins at the old address can still be spent.
        let new = service.update(|s| s.rotate(4, 3, 5)).unwrap();
        service.push(stream_response::Payload::FederationUpdate(service.state().federation_update()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while handle.federations().await.unwrap().len() < 2 {
            assert!(tokio::time::Instant::now() < deadline, "rotation not learned");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(handle.federations().await.unwrap()[1].address, new.address);
        let again =
            sign_transaction(&handle, &old, &tx, std::slice::from_ref(&spent), TransactionType::Pegout, None)
                .await
                .unwrap();
        witness::verify_transaction(&again, std::slice::from_ref(&spent)).unwrap();
        let (tx_new, spent_new) = super::spend(&new);
        let signed_new = sign_transaction(
            &handle,
            &new,
            &tx_new,
            std::slice::from_ref(&spent_new),
            TransactionType::Pegout,
            None,
        )
        .await
        .unwrap();
        witness::verify_transaction(&signed_new, std::slice::from_ref(&spent_new)).unwrap();
        assert_eq!(signed_new.input[0].witness.len(), 5, "3-of-4: empty, three signatures, the script");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_late_answer_is_kept_across_a_restart_and_taken_exactly_once() {
        // Governance answers after the caller's timeout, and answers twice.
        let faults = Faults { delay_ms: Some(600), duplicate: true, ..Default::default() };
        let service = DevGovernance::devnet(3, 2).unwrap().with_faults(faults).into_service();
        let port = free_port();
        serve_service(&service, port, None).await;
        let dir = tempdir("late");
        let store = dir.join("governance.redb");
        let (handle, task) =
            stream::spawn(config(port, &service.state(), Duration::from_millis(200)), storage(&store))
                .unwrap();
        assert!(connected(&handle, Duration::from_secs(10)).await);
        let federation = federation_of(&handle).await;
        let signing = request(&federation);
        let late = handle.request_signatures_with_id("late-1".into(), signing.clone()).await;
        assert!(
            matches!(&late, Err(StreamError::Timeout { request_id, .. }) if request_id == "late-1"),
            "{late:?}"
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while handle.answered().await.unwrap().is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "no answer came");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await; // and its duplicate
        assert!(handle.pending().await.unwrap().is_empty());
        task.abort();
        let _ = task.await;
        drop(handle);

        // The node restarts with governance unreachable: asking again with the id gets the kept answer
        // at once, as often as asked, until it is taken; then it is gone.
        let mut offline = config(port, &service.state(), Duration::from_secs(1));
        offline.url = "http://127.0.0.1:1".into();
        let (handle, _task) = stream::spawn(offline, storage(&store)).unwrap();
        let answer = handle.request_signatures_with_id("late-1".into(), signing.clone()).await.unwrap();
        assert_eq!(answer.status, SignatureStatus::Complete as i32);
        assert_eq!(answer.signatures.len(), 2);
        assert_eq!(handle.request_signatures_with_id("late-1".into(), signing).await.unwrap(), answer);
        assert!(handle.pending().await.unwrap().is_empty(), "answered from the store, not asked again");
        assert_eq!(service.signed(), 1);
        assert_eq!(handle.answered().await.unwrap(), ["late-1"], "the duplicate was not stored");
        assert_eq!(handle.take_signature_response("late-1".into()).await.unwrap(), Some(answer));
        assert_eq!(handle.take_signature_response("late-1".into()).await.unwrap(), None);
        assert!(handle.answered().await.unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_dropped_mid_request_completes_after_reconnect_exactly_once() {
        let (service, handle, dir) =
            faulty(Faults { drop_on_next_signature: true, ..Default::default() }, "midrequest").await;
        let mut events = handle.subscribe();
        let federation = federation_of(&handle).await;
        let response = handle.request_signatures(request(&federation)).await.unwrap();
        assert_eq!(response.status, SignatureStatus::Complete as i32);
        assert!(handle.status().reconnects >= 1, "the stream was dropped and re-established");
        assert_eq!(service.signed(), 1, "signed once: the re-sent request id got the stored answer");
        assert!(handle.pending().await.unwrap().is_empty());
        // Nothing answers the same request a second time.
        tokio::time::sleep(Duration::from_millis(300)).await;
        while let Ok(event) = events.try_recv() {
            assert!(!matches!(event, GovernanceEvent::Signature(..)), "delivered twice: {event:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn duplicated_and_reordered_responses_are_delivered_once_each() {
        let (service, handle, dir) =
            faulty(Faults { duplicate: true, reorder: true, ..Default::default() }, "reorder").await;
        let federation = federation_of(&handle).await;
        let (tx, spent) = super::spend(&federation);
        let spent = [spent];
        let (a, b) = tokio::join!(
            sign_transaction(&handle, &federation, &tx, &spent, TransactionType::Pegout, Some("a".into())),
            sign_transaction(&handle, &federation, &tx, &spent, TransactionType::Pegout, Some("b".into())),
        );
        a.unwrap();
        b.unwrap();
        assert!(handle.pending().await.unwrap().is_empty());
        assert_eq!(service.signed(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bad_witness_is_detected_and_never_used() {
        let (_service, handle, dir) =
            faulty(Faults { bad_signature: true, ..Default::default() }, "badwitness").await;
        let federation = federation_of(&handle).await;
        let (tx, spent) = super::spend(&federation);
        let result = sign_transaction(
            &handle,
            &federation,
            &tx,
            std::slice::from_ref(&spent),
            TransactionType::Pegout,
            None,
        )
        .await;
        assert!(
            matches!(result, Err(SignError::InsufficientSignatures { good: 0, threshold: 2, .. })),
            "{result:?}"
        );

        // Signatures that verify one by one but do not make a valid spend (only one distinct signer
        // twice) fail too, and a witness assembled from them would fail the interpreter.
        let honest = DevGovernance::devnet(3, 2).unwrap();
        let request = alys_governance::signature_request(
            &tx,
            std::slice::from_ref(&spent),
            &federation,
            TransactionType::Pegout,
        )
        .unwrap();
        let mut response = honest.sign(&request);
        let first = response.signatures[0].clone();
        response.signatures = vec![first.clone(), first];
        let refused =
            alys_governance::apply_response(&tx, std::slice::from_ref(&spent), &federation, &response);
        assert!(matches!(refused, Err(SignError::InsufficientSignatures { good: 1, .. })), "{refused:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unauthenticated_clients_are_refused() {
        let service = DevGovernance::devnet(3, 2).unwrap().with_bearer_token("s3cret").into_service();
        let port = free_port();
        serve_service(&service, port, None).await;
        let url = format!("http://127.0.0.1:{port}");

        // A raw client without a token, and one with the wrong token: UNAUTHENTICATED.
        let mut client = GovernanceStreamClient::connect(url.clone()).await.unwrap();
        let (_tx, rx) = tokio::sync::mpsc::channel(1);
        let status = client.stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        let mut request = tonic::Request::new(HealthRequest::default());
        request.metadata_mut().insert("authorization", "Bearer wrong".parse().unwrap());
        assert_eq!(client.health(request).await.unwrap_err().code(), tonic::Code::Unauthenticated);

        // A node with the wrong token never gets a session.
        let dir = tempdir("unauth");
        let mut config = config(port, &service.state(), Duration::from_secs(1));
        config.bearer_token = Some("guess".into());
        let (handle, _task) = stream::spawn(config, storage(&dir.join("governance.redb"))).unwrap();
        assert!(!connected(&handle, Duration::from_secs(2)).await);
        assert!(handle.federations().await.unwrap().is_empty());
        assert_eq!(service.sessions(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_node_refuses_updates_and_proposals_not_signed_by_its_governance_key() {
        // The service signs with its key; the node is configured with another one.
        let service = DevGovernance::devnet(3, 2).unwrap().into_service();
        let port = free_port();
        serve_service(&service, port, None).await;
        let dir = tempdir("foreign");
        let other = bitcoin::secp256k1::PublicKey::from_secret_key(
            &bitcoin::secp256k1::Secp256k1::new(),
            &bitcoin::secp256k1::SecretKey::from_slice(&[9; 32]).unwrap(),
        );
        let mut config = config(port, &service.state(), Duration::from_secs(1));
        config.governance_key = other;
        let (handle, _task) = stream::spawn(config, storage(&dir.join("governance.redb"))).unwrap();
        assert!(connected(&handle, Duration::from_secs(10)).await);
        let proposal = service
            .update(|s| s.propose_emergency(EmergencyScope::BlockProduction, true, 1, "forged"))
            .unwrap();
        service.push(stream_response::Payload::ProposalNotification(proposal));
        // An unsigned update, pushed as a man in the middle would.
        let mut unsigned = service.state().federation_update();
        unsigned.update_signature.clear();
        service.push(stream_response::Payload::FederationUpdate(unsigned));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(handle.federations().await.unwrap().is_empty(), "no federation from a foreign key");
        assert_eq!(handle.runtime().book().proposals().count(), 0, "no proposal from a foreign key");
        assert!(!handle.runtime().state_at(10).production_paused);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Held by the tests that save proposals while one of them arms the proposal save's fail point
    /// (fail points are process-wide).
    static PROPOSAL_SAVES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_proposal_that_cannot_be_saved_is_not_applied_until_governance_sends_it_again() {
        use alys_governance::store::Commit;
        let _saves = PROPOSAL_SAVES.lock().await;
        let service = DevGovernance::devnet(3, 2).unwrap().into_service();
        let port = free_port();
        serve_service(&service, port, None).await;
        let dir = tempdir("unsaved");
        let (handle, _task) = stream::spawn(
            config(port, &service.state(), Duration::from_secs(1)),
            storage(&dir.join("governance.redb")),
        )
        .unwrap();
        assert!(connected(&handle, Duration::from_secs(10)).await);
        let mut events = handle.subscribe();

        // The first save fails: nothing applied, the session restarts, and governance's announcement to
        // the new session is saved and applied.
        fail::cfg(Commit::Proposal.error(), "1*return").unwrap();
        let pause =
            service.update(|s| s.propose_emergency(EmergencyScope::Pegins, true, 4, "drill")).unwrap();
        service.push(stream_response::Payload::ProposalNotification(pause));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let applied = loop {
            let event = tokio::time::timeout_at(deadline, events.recv()).await.unwrap().unwrap();
            if let GovernanceEvent::Proposal(proposal) = event {
                break proposal;
            }
        };
        fail::remove(Commit::Proposal.error());
        assert_eq!(applied.id, "proposal-000001");
        assert!(handle.status().reconnects >= 1, "the failed save restarted the session");
        assert!(handle.runtime().state_at(4).pegins_paused);
        assert_eq!(handle.runtime().book().proposals().count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn proposals_are_stored_and_survive_a_restart() {
        let _saves = PROPOSAL_SAVES.lock().await;
        let service = DevGovernance::devnet(3, 2).unwrap().into_service();
        let port = free_port();
        serve_service(&service, port, None).await;
        let dir = tempdir("proposals");
        let store = dir.join("governance.redb");
        let (handle, task) =
            stream::spawn(config(port, &service.state(), Duration::from_secs(1)), storage(&store)).unwrap();
        assert!(connected(&handle, Duration::from_secs(10)).await);
        let pause =
            service.update(|s| s.propose_emergency(EmergencyScope::Pegouts, true, 7, "drill")).unwrap();
        service.push(stream_response::Payload::ProposalNotification(pause));
        let param = service.update(|s| s.propose_parameter("max_blocks_without_pow", "25", 9)).unwrap();
        service.push(stream_response::Payload::ProposalNotification(param));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while handle.runtime().book().proposals().count() < 2 {
            assert!(tokio::time::Instant::now() < deadline, "proposals not received");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let view = handle.runtime();
        assert!(!view.state_at(6).pegouts_paused && view.state_at(7).pegouts_paused);
        assert_eq!(view.state_at(9).parameters.max_blocks_without_pow, 25);
        task.abort();
        let _ = task.await;
        drop(handle);

        // Restarted with governance unreachable: the stored proposals are in force at once.
        let mut offline = config(free_port(), &service.state(), Duration::from_secs(1));
        offline.url = "http://127.0.0.1:1".into();
        let (handle, _task) = stream::spawn(offline, storage(&store)).unwrap();
        assert!(handle.runtime().state_at(7).pegouts_paused);
        assert_eq!(handle.runtime().state_at(9).parameters.max_blocks_without_pow, 25);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tls_with_a_bearer_token() {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert_pem = certified.cert.pem();
        let key_pem = certified.signing_key.serialize_pem();
        let service = DevGovernance::devnet(3, 2).unwrap().with_bearer_token("s3cret").into_service();
        let port = free_port();
        serve_service(&service, port, Some((cert_pem.clone().into_bytes(), key_pem.into_bytes()))).await;
        let dir = tempdir("tls");

        let mut config = config(port, &service.state(), Duration::from_secs(10));
        config.url = format!("https://localhost:{port}");
        config.bearer_token = Some("s3cret".into());
        config.tls.ca_pem = Some(cert_pem.into_bytes());
        let (handle, _task) = stream::spawn(config.clone(), storage(&dir.join("a.redb"))).unwrap();
        assert!(connected(&handle, Duration::from_secs(10)).await, "TLS session");
        let federation = federation_of(&handle).await;
        let response = handle.request_signatures(request(&federation)).await.unwrap();
        assert_eq!(response.status, SignatureStatus::Complete as i32);

        // Without the CA (web PKI roots only) the self-signed service is not trusted.
        let mut untrusted = config.clone();
        untrusted.tls.ca_pem = None;
        let (handle, _task) = stream::spawn(untrusted, storage(&dir.join("b.redb"))).unwrap();
        assert!(!connected(&handle, Duration::from_secs(2)).await);
        // Plaintext to a TLS port fails too.
        let mut plain = config;
        plain.url = format!("http://127.0.0.1:{port}");
        let (handle, _task) = stream::spawn(plain, storage(&dir.join("c.redb"))).unwrap();
        assert!(!connected(&handle, Duration::from_secs(2)).await);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn notifications_sent_while_offline_are_buffered_and_delivered() {
        use alys_proto::governance::v1::{PeginNotification, stream_request::Payload};
        let service = DevGovernance::devnet(3, 2).unwrap().into_service();
        let port = free_port();
        let dir = tempdir("buffer");
        let (handle, _task) = stream::spawn(
            config(port, &service.state(), Duration::from_secs(1)),
            storage(&dir.join("governance.redb")),
        )
        .unwrap();
        for vout in 0..3 {
            let pegin =
                PeginNotification { btc_txid: "00".repeat(32), vout, amount: 100_000, ..Default::default() };
            handle.send(Payload::PeginNotification(pegin)).await.unwrap();
        }
        assert!(!handle.status().connected);
        serve_service(&service, port, None).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while service.notifications() < 3 {
            assert!(tokio::time::Instant::now() < deadline, "buffered notifications not delivered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
