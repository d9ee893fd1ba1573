#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]
//! The generated burn-feed code: message encoding and a real server/client pair on loopback.

use alys_proto::burnfeed::v1::{
    Burn, FeedEvent, HeadRequest, HeadResponse, SubscribeRequest,
    burn_feed_client::BurnFeedClient,
    burn_feed_server::{BurnFeed, BurnFeedServer},
    feed_event::Event,
};
use prost::Message;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status};

fn burn(n: u64) -> Burn {
    Burn {
        block_number: n,
        block_hash: vec![1; 32],
        log_index: n * 2,
        tx_hash: vec![2; 32],
        tx_index: 0,
        sender: vec![3; 20],
        bitcoin_address: b"bcrt1qexample".to_vec(),
        value: vec![0; 32],
    }
}

#[test]
fn messages_roundtrip_and_garbage_is_an_error() {
    let event = FeedEvent { cursor: 7, event: Some(Event::Retract(burn(3))) };
    let bytes = event.encode_to_vec();
    assert_eq!(FeedEvent::decode(bytes.as_slice()).unwrap(), event);
    assert!(FeedEvent::decode(&[0xff, 0xff, 0xff][..]).is_err());
    // Unknown oneof is absent, not a panic.
    assert_eq!(FeedEvent::decode(&[0x08, 0x05][..]).unwrap(), FeedEvent { cursor: 5, event: None });
}

/// Streams cursors after `from_cursor` up to 5.
struct Fixed;

#[tonic::async_trait]
impl BurnFeed for Fixed {
    type SubscribeStream = ReceiverStream<Result<FeedEvent, Status>>;

    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let from = request.into_inner().from_cursor;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            for cursor in from + 1..=5 {
                tx.send(Ok(FeedEvent { cursor, event: Some(Event::Burn(burn(cursor))) })).await.unwrap();
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn head(&self, _: Request<HeadRequest>) -> Result<Response<HeadResponse>, Status> {
        Ok(Response::new(HeadResponse { last_cursor: 5, ..Default::default() }))
    }
}

#[tokio::test]
async fn generated_server_and_client_talk_over_loopback() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(BurnFeedServer::new(Fixed))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let mut client = BurnFeedClient::connect(format!("http://{addr}")).await.unwrap();
    assert_eq!(client.head(HeadRequest {}).await.unwrap().into_inner().last_cursor, 5);
    let mut stream = client.subscribe(SubscribeRequest { from_cursor: 2 }).await.unwrap().into_inner();
    let mut cursors = Vec::new();
    while let Some(event) = stream.message().await.unwrap() {
        cursors.push(event.cursor);
    }
    assert_eq!(cursors, vec![3, 4, 5]);
}

#[test]
fn governance_messages_keep_alys_field_numbers() {
    use alys_proto::governance::v1::{
        FederationMember, FederationUpdate, RequestMetadata, SignatureRequest, StreamRequest, StreamResponse,
        TransactionType, stream_request, stream_response,
    };

    let request = StreamRequest {
        metadata: Some(RequestMetadata { request_id: "req-1".into(), ..Default::default() }),
        payload: Some(stream_request::Payload::SignatureRequest(SignatureRequest {
            tx_hex: "0200".into(),
            input_indices: vec![0, 1],
            amounts: vec![50_000, 70_000],
            tx_type: TransactionType::Pegout as i32,
            required_signatures: 2,
            timeout_seconds: Some(30),
        })),
    };
    let bytes = request.encode_to_vec();
    // metadata is field 1 (tag 0x0a); signature_request is field 20 (tag 20<<3|2 = 0xa2 0x01).
    assert_eq!(bytes[0], 0x0a);
    assert!(bytes.windows(2).any(|w| w == [0xa2, 0x01]));
    assert_eq!(StreamRequest::decode(bytes.as_slice()).unwrap(), request);

    let update = StreamResponse {
        metadata: None,
        payload: Some(stream_response::Payload::FederationUpdate(FederationUpdate {
            members: vec![FederationMember {
                member_id: "m1".into(),
                public_key: vec![2; 33],
                weight: 1,
                active: true,
            }],
            effective_height: 100,
            update_signature: vec![9; 64],
            ..Default::default()
        })),
    };
    let bytes = update.encode_to_vec();
    // federation_update is field 30: tag 30<<3|2 = 0xf2 0x01.
    assert_eq!(&bytes[..2], &[0xf2, 0x01]);
    assert_eq!(StreamResponse::decode(bytes.as_slice()).unwrap(), update);
    assert!(StreamResponse::decode(&[0xf2, 0x01, 0xff][..]).is_err(), "truncated input is an error");
}
