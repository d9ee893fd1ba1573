//! The sync protocol: requests answered by the application, timeouts, size limits, and garbage on
//! the wire.

use std::time::Duration;

use alloy_primitives::{B256, Bytes};
use alys_network::{
    MAX_BLOCKS_PER_REQUEST, NetworkEvent, PeerStatus, Request, RequestError, Response, Verdict,
};
use alys_primitives::BlockRef;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::{
    StreamProtocol, noise,
    request_response::{self, ProtocolSupport},
    swarm::SwarmEvent,
    tcp, yamux,
};
use tokio::sync::mpsc;

use crate::{Node, config, connected, eventually, node};

fn status() -> PeerStatus {
    PeerStatus {
        network_id: "a1b2c3d4".into(),
        head: BlockRef::new(42, B256::repeat_byte(0x42)),
        finalized: Some(BlockRef::new(40, B256::repeat_byte(0x40))),
    }
}

/// An application that answers Status, BlocksByRange (one block per height, `block_size` bytes
/// each) and accepts all gossip; with `silent` it holds every reply and never answers.
fn serve(
    mut events: mpsc::Receiver<NetworkEvent>,
    handle: alys_network::NetworkHandle,
    block_size: usize,
    silent: bool,
) {
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(event) = events.recv().await {
            match event {
                NetworkEvent::Request { reply, .. } if silent => held.push(reply),
                NetworkEvent::Request { request: Request::Status, reply, .. } => {
                    let _ = reply.send(Response::Status(status()));
                }
                NetworkEvent::Request { request: Request::BlocksByRange { start, count }, reply, .. } => {
                    let blocks = (start..start + count)
                        .map(|h| Bytes::from(vec![(h % 256) as u8; block_size]))
                        .collect();
                    let _ = reply.send(Response::Blocks(blocks));
                }
                NetworkEvent::Request { reply, .. } => drop(reply),
                NetworkEvent::Gossip { id, from, .. } => handle.report(id, from, Verdict::Accept),
                _ => {}
            }
        }
    });
}

async fn pair(
    dir: &tempfile::TempDir,
    tweak_client: impl Fn(&mut alys_network::NetworkConfig),
    block_size: usize,
    silent: bool,
) -> (Node, alys_network::NetworkHandle) {
    let mut ca = config(dir, "server");
    ca.request_timeout = Duration::from_secs(1);
    let server = node(ca).await;
    let mut cb = config(dir, "client");
    tweak_client(&mut cb);
    cb.bootnodes = vec![server.handle.enode().unwrap()];
    let client = node(cb).await;
    let id = server.handle.local_peer_id();
    assert!(eventually(Duration::from_secs(10), || connected(&client.handle, id)).await);
    serve(server.events, server.handle.clone(), block_size, silent);
    (client, server.handle)
}

/// Status and BlocksByRange come back as the application answered; Peers is answered by the
/// network; over-long ranges are refused before sending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_answered_by_the_application() {
    let dir = tempfile::tempdir().unwrap();
    let (client, server) = pair(&dir, |_| {}, 100, false).await;
    let peer = server.local_peer_id();

    assert_eq!(client.handle.request(peer, Request::Status).await.unwrap(), Response::Status(status()));
    let Response::Blocks(blocks) =
        client.handle.request(peer, Request::BlocksByRange { start: 10, count: 3 }).await.unwrap()
    else {
        panic!("expected blocks");
    };
    assert_eq!(blocks.len(), 3);
    assert_eq!(blocks[2], Bytes::from(vec![12u8; 100]));
    // Dropping the reply answers an error.
    assert!(matches!(
        client.handle.request(peer, Request::BlocksByHash(vec![B256::ZERO])).await,
        Ok(Response::Error(_))
    ));
    assert!(matches!(client.handle.request(peer, Request::Peers).await, Ok(Response::Peers(_))));
    assert!(matches!(
        client
            .handle
            .request(peer, Request::BlocksByRange { start: 0, count: MAX_BLOCKS_PER_REQUEST + 1 })
            .await,
        Err(RequestError::Invalid(_))
    ));
}

/// An application that never answers: the requester gets a typed timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_request_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let (client, server) = pair(&dir, |c| c.request_timeout = Duration::from_secs(1), 0, true).await;
    let started = std::time::Instant::now();
    assert_eq!(
        client.handle.request(server.local_peer_id(), Request::Status).await,
        Err(RequestError::Timeout)
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}

/// A response over the requester's `max_response_bytes` is refused with a typed error; a small
/// one on the same connection still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_response_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (client, server) = pair(&dir, |c| c.max_response_bytes = 2048, 1000, false).await;
    let peer = server.local_peer_id();
    let result = client.handle.request(peer, Request::BlocksByRange { start: 0, count: 4 }).await;
    assert!(matches!(result, Err(RequestError::TooLarge { max: 2048, .. })), "{result:?}");
    let result = client.handle.request(peer, Request::BlocksByRange { start: 0, count: 1 }).await;
    assert!(matches!(result, Ok(Response::Blocks(ref b)) if b.len() == 1), "{result:?}");
}

/// Raw frames on the sync protocol: requests are written verbatim, responses read verbatim.
#[derive(Clone, Default)]
struct JunkCodec;

#[async_trait::async_trait]
impl request_response::Codec for JunkCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        io.take(1 << 16).read_to_end(&mut buf).await?;
        Ok(buf)
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        io.take(1 << 16).read_to_end(&mut buf).await?;
        Ok(buf)
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> std::io::Result<()> {
        io.write_all(&req).await?;
        io.close().await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> std::io::Result<()> {
        io.write_all(&res).await?;
        io.close().await
    }
}

/// A peer speaking garbage on the sync protocol: its junk requests fail on the node's side without
/// harm, the node's request to it fails with a typed decode error, and the node keeps serving
/// others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_wire_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let (client, server) = pair(&dir, |_| {}, 10, false).await;
    let server_id = server.local_peer_id();

    let protocol = StreamProtocol::new("/alys/a1b2c3d4/sync/1");
    let mut junk = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .unwrap()
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                JunkCodec,
                [(protocol, ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(3)),
            )
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let junk_id = *junk.local_peer_id();
    junk.dial(server.enode().unwrap()).unwrap();

    // Garbage payload in a valid frame, then a frame announcing 4 GiB, then no frame at all.
    let mut failures = 0;
    let mut sent = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while failures < 3 {
        let event =
            tokio::time::timeout_at(deadline, junk.select_next_some()).await.expect("junk swarm events");
        match event {
            SwarmEvent::ConnectionEstablished { .. } if !sent => {
                sent = true;
                let b = junk.behaviour_mut();
                b.send_request(&server_id, vec![0, 0, 0, 5, 0xde, 0xad, 0xbe, 0xef, 0x99]);
                b.send_request(&server_id, vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
                b.send_request(&server_id, vec![1]);
            }
            // The node drops the stream of a malformed request: an error or not a byte in return.
            SwarmEvent::Behaviour(request_response::Event::OutboundFailure { .. }) => failures += 1,
            SwarmEvent::Behaviour(request_response::Event::Message {
                message: request_response::Message::Response { response, .. },
                ..
            }) => {
                assert!(response.is_empty(), "the node answered garbage with {response:?}");
                failures += 1;
            }
            _ => {}
        }
    }

    // The node asks the junk peer for its status; the junk answer is a typed decode error.
    let junk_task = tokio::spawn(async move {
        loop {
            if let SwarmEvent::Behaviour(request_response::Event::Message {
                message: request_response::Message::Request { channel, .. },
                ..
            }) = junk.select_next_some().await
            {
                let _ = junk.behaviour_mut().send_response(channel, vec![0, 0, 0, 3, 0x09, 0x09, 0x09]);
            }
        }
    });
    let result = server.request(junk_id, Request::Status).await;
    assert!(matches!(result, Err(RequestError::Decode(_))), "{result:?}");
    junk_task.abort();

    // The node still serves well-behaved peers.
    assert_eq!(client.handle.request(server_id, Request::Status).await.unwrap(), Response::Status(status()));
}
