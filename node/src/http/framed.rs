//! The framed body of `GET /api/fetch` (asked for with [`FRAMED_HEADER`]):
//! the content in frames, then a last frame that says how the fetch ended.
//!
//! A plain HTTP body that stops part way tells the reader only that the
//! connection closed ("peer disconnected"); HTTP/1.1 trailers would say why,
//! but few clients read them. So `warren fetch` asks for this instead:
//!
//! ```text
//! frame = type: u8 ‖ length: u32 big-endian ‖ payload (length bytes)
//! type 0  content bytes (length 1..=MAX_DATA_FRAME)
//! type 1  end: the content is complete (length 0)
//! type 2  error: why the fetch failed, one line of UTF-8 (length ..=MAX_ERROR_FRAME)
//! ```
//!
//! The content length is in [`LENGTH_HEADER`]. A body that ends without a
//! type 1 or 2 frame was cut (the node stopped, or the connection broke).

use std::io::{self, Read};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt as _};

/// Request header asking for a framed body (value `1`), echoed in the answer.
pub const FRAMED_HEADER: &str = "x-warren-framed";
/// Answer header of a framed body: the content's length in bytes.
pub const LENGTH_HEADER: &str = "x-warren-length";
/// Largest content frame a reader accepts.
pub const MAX_DATA_FRAME: u32 = 4 << 20;
/// Largest error frame a reader accepts (and the node sends).
pub const MAX_ERROR_FRAME: u32 = 4096;

const DATA: u8 = 0;
const END: u8 = 1;
const ERROR: u8 = 2;
const FRAME_HEADER_LEN: usize = 5;

fn frame(kind: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(FRAME_HEADER_LEN + payload.len());
    out.put_u8(kind);
    out.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    out.put_slice(payload);
    out.freeze()
}

/// The error frame's text: one line, at most [`MAX_ERROR_FRAME`] bytes.
fn one_line(message: &str) -> String {
    let mut line: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.len() > MAX_ERROR_FRAME as usize {
        let mut end = MAX_ERROR_FRAME as usize;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
    }
    line
}

/// Frames `content`: its chunks as data frames, then an end frame, or an
/// error frame (and nothing more) at the first error.
pub fn encode<S>(content: S) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, io::Error>> + Send + 'static,
{
    let content = Box::pin(content);
    futures_util::stream::unfold(Some(content), |state| async move {
        let mut content = state?;
        loop {
            match content.next().await {
                // Empty chunks would be zero-length data frames: skip them.
                Some(Ok(chunk)) if chunk.is_empty() => {}
                Some(Ok(chunk)) => {
                    // Chunks are a segment at most (4 MiB): within MAX_DATA_FRAME.
                    return Some((Ok(frame(DATA, &chunk)), Some(content)));
                }
                Some(Err(err)) => {
                    let text = one_line(&err.to_string());
                    return Some((Ok(frame(ERROR, text.as_bytes())), None));
                }
                None => return Some((Ok(frame(END, &[])), None)),
            }
        }
    })
}

/// Reads a framed body as the content it carries. A read fails with the
/// node's own words when the fetch failed, and says the body was cut when it
/// ended without a last frame.
#[derive(Debug)]
pub struct FramedReader<R> {
    inner: R,
    /// Bytes of the current data frame not yet read.
    remaining: u32,
    done: bool,
}

impl<R: Read> FramedReader<R> {
    pub fn new(inner: R) -> Self {
        FramedReader {
            inner,
            remaining: 0,
            done: false,
        }
    }

    fn read_header(&mut self) -> io::Result<(u8, u32)> {
        let mut header = [0u8; FRAME_HEADER_LEN];
        self.inner.read_exact(&mut header).map_err(|err| {
            if err.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the node's answer was cut off before it said how the fetch ended (the node stopped, or the connection broke)",
                )
            } else {
                err
            }
        })?;
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        Ok((header[0], len))
    }
}

impl<R: Read> Read for FramedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.remaining == 0 {
            if self.done {
                return Ok(0);
            }
            match self.read_header()? {
                (DATA, len) if (1..=MAX_DATA_FRAME).contains(&len) => self.remaining = len,
                (END, 0) => self.done = true,
                (ERROR, len) if len <= MAX_ERROR_FRAME => {
                    let mut text = vec![0u8; len as usize];
                    self.inner.read_exact(&mut text)?;
                    self.done = true;
                    return Err(io::Error::other(
                        String::from_utf8_lossy(&text).into_owned(),
                    ));
                }
                (kind, len) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("the node's answer is malformed (frame type {kind}, {len} bytes)"),
                    ))
                }
            }
        }
        let want = buf.len().min(self.remaining as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the node's answer was cut off part way through a frame (the node stopped, or the connection broke)",
            ));
        }
        self.remaining -= n as u32;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn framed(items: Vec<Result<&'static [u8], &'static str>>) -> Vec<u8> {
        let content = futures_util::stream::iter(
            items
                .into_iter()
                .map(|item| item.map(Bytes::from_static).map_err(io::Error::other)),
        );
        let mut out = Vec::new();
        let mut stream = std::pin::pin!(encode(content));
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn complete_content_reads_back_whole() {
        let body = framed(vec![Ok(b"hello "), Ok(b""), Ok(b"world")]).await;
        let mut out = String::new();
        FramedReader::new(&body[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "hello world");
    }

    #[tokio::test]
    async fn a_failed_fetch_reads_as_its_reason() {
        let body = framed(vec![
            Ok(b"part"),
            Err("segment 2 is gone\nreally"),
            Ok(b"x"),
        ])
        .await;
        let mut reader = FramedReader::new(&body[..]);
        let mut out = Vec::new();
        let err = reader.read_to_end(&mut out).unwrap_err();
        assert_eq!(out, b"part");
        assert_eq!(err.to_string(), "segment 2 is gone really");
    }

    #[tokio::test]
    async fn a_cut_body_says_it_was_cut() {
        let body = framed(vec![Ok(b"complete content")]).await;
        for cut in [0, 3, 5, 9, body.len() - 1] {
            let mut out = Vec::new();
            let err = FramedReader::new(&body[..cut])
                .read_to_end(&mut out)
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}");
            assert!(err.to_string().contains("cut off"), "{err}");
        }
    }

    #[test]
    fn garbage_is_refused() {
        let body = [9u8, 0, 0, 0, 1, 0];
        let err = FramedReader::new(&body[..])
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
