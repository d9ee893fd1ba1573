//! The sync protocol's wire format: one length-prefixed frame per request and per response.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of payload. The length is
//! checked against a hard cap *before* anything is allocated ([`MAX_REQUEST_BYTES`] for requests,
//! the configured `max_response_bytes` for responses), so a peer cannot make this node buffer more
//! than the cap. The payload is a small hand-written binary format, tag byte first:
//!
//! | message | tag | body |
//! |---|---|---|
//! | `Request::Status` | 0 | — |
//! | `Request::BlocksByRange` | 1 | start u64 ‖ count u64 |
//! | `Request::BlocksByHash` | 2 | n u32 ‖ n × 32-byte hash |
//! | `Request::Peers` | 3 | — |
//! | `Response::Status` | 0 | network id (u16 len ‖ UTF-8) ‖ head ‖ 0 or 1 ‖ finalized (height u64 ‖ hash) |
//! | `Response::Blocks` | 1 | n u32 ‖ n × (u32 len ‖ bytes) |
//! | `Response::Peers` | 2 | n u32 ‖ n × (u16 len ‖ multiaddr bytes) |
//! | `Response::Error` | 3 | u16 len ‖ UTF-8 |
//!
//! Integers are big-endian. Decoding checks every length against the bytes that remain and rejects
//! trailing bytes, so garbage gives a [`CodecError`], never a panic or a large allocation.

use std::io;

use alloy_primitives::{B256, Bytes};
use alys_primitives::BlockRef;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::{Multiaddr, StreamProtocol};

use crate::{PeerStatus, Request, Response};

/// The largest request frame this node reads (64 KiB): enough for [`crate::MAX_BLOCKS_PER_REQUEST`]
/// hashes many times over.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The longest string (network id, error message) the codec writes; longer ones are truncated.
const MAX_STRING_BYTES: usize = 1024;

/// Why a frame could not be read or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The frame's length prefix is above the cap.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The payload is not a valid message.
    #[error("malformed message: {0}")]
    Decode(&'static str),
}

impl From<CodecError> for io::Error {
    fn from(e: CodecError) -> Self {
        Self::new(io::ErrorKind::InvalidData, e)
    }
}

/// The [`CodecError`] inside an I/O error the codec returned, if it is one.
pub(crate) fn codec_error(e: &io::Error) -> Option<&CodecError> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<CodecError>())
}

/// The libp2p request/response codec of `/alys/<network_id>/sync/1`.
#[derive(Debug, Clone)]
pub(crate) struct SyncCodec {
    /// The largest response frame read.
    pub(crate) max_response_bytes: usize,
}

/// Reads one length-prefixed frame of at most `max` bytes.
async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(CodecError::TooLarge { len, max }.into());
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Writes one length-prefixed frame and closes the writing side.
async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .map_err(|_| io::Error::from(CodecError::TooLarge { len: payload.len(), max: u32::MAX as usize }))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(payload).await?;
    io.close().await
}

#[async_trait::async_trait]
impl libp2p::request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        let frame = read_frame(io, MAX_REQUEST_BYTES).await?;
        Ok(decode_request(&frame)?)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        let frame = read_frame(io, self.max_response_bytes).await?;
        Ok(decode_response(&frame)?)
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: Request) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &encode_request(&req)).await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, res: Response) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &encode_response(&res)).await
    }
}

/// Encodes a request's payload (without the length prefix).
pub fn encode_request(req: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    match req {
        Request::Status => out.push(0),
        Request::BlocksByRange { start, count } => {
            out.push(1);
            out.extend_from_slice(&start.to_be_bytes());
            out.extend_from_slice(&count.to_be_bytes());
        }
        Request::BlocksByHash(hashes) => {
            out.push(2);
            put_u32(&mut out, hashes.len());
            for h in hashes {
                out.extend_from_slice(h.as_slice());
            }
        }
        Request::Peers => out.push(3),
    }
    out
}

/// Decodes a request's payload.
pub fn decode_request(bytes: &[u8]) -> Result<Request, CodecError> {
    let mut r = Reader(bytes);
    let req = match r.u8()? {
        0 => Request::Status,
        1 => Request::BlocksByRange { start: r.u64()?, count: r.u64()? },
        2 => {
            let n = r.count(32)?;
            let mut hashes = Vec::with_capacity(n);
            for _ in 0..n {
                hashes.push(r.b256()?);
            }
            Request::BlocksByHash(hashes)
        }
        3 => Request::Peers,
        _ => return Err(CodecError::Decode("unknown request tag")),
    };
    r.finish()?;
    Ok(req)
}

/// Encodes a response's payload (without the length prefix).
pub fn encode_response(res: &Response) -> Vec<u8> {
    let mut out = Vec::new();
    match res {
        Response::Status(status) => {
            out.push(0);
            put_str(&mut out, &status.network_id);
            put_block_ref(&mut out, &status.head);
            match &status.finalized {
                Some(f) => {
                    out.push(1);
                    put_block_ref(&mut out, f);
                }
                None => out.push(0),
            }
        }
        Response::Blocks(blocks) => {
            out.push(1);
            put_u32(&mut out, blocks.len());
            for b in blocks {
                put_u32(&mut out, b.len());
                out.extend_from_slice(b);
            }
        }
        Response::Peers(addrs) => {
            out.push(2);
            put_u32(&mut out, addrs.len());
            for a in addrs {
                let bytes = a.to_vec();
                // A multiaddr is a few dozen bytes; one longer than u16 cannot be a real address.
                let len = u16::try_from(bytes.len()).unwrap_or(0);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(bytes.get(..usize::from(len)).unwrap_or_default());
            }
        }
        Response::Error(msg) => {
            out.push(3);
            put_str(&mut out, msg);
        }
    }
    out
}

/// Decodes a response's payload.
pub fn decode_response(bytes: &[u8]) -> Result<Response, CodecError> {
    let mut r = Reader(bytes);
    let res = match r.u8()? {
        0 => {
            let network_id = r.string()?;
            let head = r.block_ref()?;
            let finalized = match r.u8()? {
                0 => None,
                1 => Some(r.block_ref()?),
                _ => return Err(CodecError::Decode("bad option tag")),
            };
            Response::Status(PeerStatus { network_id, head, finalized })
        }
        1 => {
            let n = r.count(4)?;
            let mut blocks = Vec::with_capacity(n);
            for _ in 0..n {
                let len = r.u32()? as usize;
                blocks.push(Bytes::copy_from_slice(r.take(len)?));
            }
            Response::Blocks(blocks)
        }
        2 => {
            let n = r.count(2)?;
            let mut addrs = Vec::with_capacity(n);
            for _ in 0..n {
                let len = usize::from(r.u16()?);
                let addr = Multiaddr::try_from(r.take(len)?.to_vec())
                    .map_err(|_| CodecError::Decode("bad multiaddr"))?;
                addrs.push(addr);
            }
            Response::Peers(addrs)
        }
        3 => Response::Error(r.string()?),
        _ => return Err(CodecError::Decode("unknown response tag")),
    };
    r.finish()?;
    Ok(res)
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    // Frames are capped far below 4 GiB, so a count or length never exceeds u32 in practice; a
    // saturated value makes the frame undecodable rather than silently wrong.
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let mut end = s.len().min(MAX_STRING_BYTES);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let s = s.get(..end).unwrap_or_default();
    out.extend_from_slice(&u16::try_from(s.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_block_ref(out: &mut Vec<u8>, r: &BlockRef) {
    out.extend_from_slice(&r.height.to_be_bytes());
    out.extend_from_slice(r.hash.as_slice());
}

/// A cursor over a payload that never reads past its end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if n > self.0.len() {
            return Err(CodecError::Decode("truncated"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        self.take(N)?.try_into().map_err(|_| CodecError::Decode("truncated"))
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    fn u16(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn b256(&mut self) -> Result<B256, CodecError> {
        Ok(B256::from(self.array::<32>()?))
    }

    fn block_ref(&mut self) -> Result<BlockRef, CodecError> {
        Ok(BlockRef { height: self.u64()?, hash: self.b256()? })
    }

    fn string(&mut self) -> Result<String, CodecError> {
        let len = usize::from(self.u16()?);
        // Longer strings are never encoded (`put_str` cuts them): refusing them keeps the codec
        // canonical, one encoding per message.
        if len > MAX_STRING_BYTES {
            return Err(CodecError::Decode("string too long"));
        }
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| CodecError::Decode("invalid UTF-8"))
    }

    /// A u32 element count, checked against the bytes left (each element takes at least `min`).
    fn count(&mut self, min: usize) -> Result<usize, CodecError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min) > self.0.len() {
            return Err(CodecError::Decode("count exceeds payload"));
        }
        Ok(n)
    }

    fn finish(&self) -> Result<(), CodecError> {
        if self.0.is_empty() { Ok(()) } else { Err(CodecError::Decode("trailing bytes")) }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]
    use super::*;

    #[test]
    fn round_trips() {
        let reqs = vec![
            Request::Status,
            Request::BlocksByRange { start: 5, count: 128 },
            Request::BlocksByHash(vec![B256::repeat_byte(1), B256::repeat_byte(2)]),
            Request::Peers,
        ];
        for req in reqs {
            assert_eq!(decode_request(&encode_request(&req)).unwrap(), req);
        }
        let resps = vec![
            Response::Status(PeerStatus {
                network_id: "abcd".into(),
                head: BlockRef::new(7, B256::repeat_byte(3)),
                finalized: Some(BlockRef::new(5, B256::repeat_byte(4))),
            }),
            Response::Status(PeerStatus {
                network_id: String::new(),
                head: BlockRef::new(0, B256::ZERO),
                finalized: None,
            }),
            Response::Blocks(vec![Bytes::from_static(b"one"), Bytes::new()]),
            Response::Peers(vec!["/ip4/127.0.0.1/tcp/30303".parse().unwrap()]),
            Response::Error("busy".into()),
        ];
        for res in resps {
            assert_eq!(decode_response(&encode_response(&res)).unwrap(), res);
        }
    }

    #[test]
    fn garbage_is_a_typed_error() {
        assert!(decode_request(&[]).is_err());
        assert!(decode_request(&[9]).is_err());
        assert!(decode_request(&[0, 0]).is_err());
        assert!(decode_request(&[2, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode_response(&[1, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode_response(&[1, 0, 0, 0, 1, 0, 0, 0, 9, 1]).is_err());
        assert!(decode_response(&[2, 0, 0, 0, 1, 0, 2, 0xff, 0xff]).is_err());
        assert!(decode_response(&[3, 0, 2, 0xff, 0xfe]).is_err());
        // Every prefix of a valid message, and every single-byte corruption, decodes or errors.
        let full = encode_response(&Response::Blocks(vec![Bytes::from_static(b"abc")]));
        for i in 0..full.len() {
            assert!(decode_response(&full[..i]).is_err());
            let mut bad = full.clone();
            bad[i] ^= 0xff;
            let _ = decode_response(&bad);
        }
    }
}
