//! A small HTTPS/1.1 client with a client certificate, for the CLI, the dev
//! network's demo load and the tests. One keep-alive connection; bounded
//! responses.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Largest response body read.
const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Longest header section read.
const HEADER_LINES_MAX: usize = 100;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {detail}")]
    Connect { addr: String, detail: String },
    #[error("bad server name {0:?}")]
    ServerName(String),
    #[error("connection to {addr} failed: {detail}")]
    Io { addr: String, detail: String },
    #[error("malformed HTTP response from {addr}: {detail}")]
    Protocol { addr: String, detail: String },
}

/// An HTTPS connection to one orderer.
pub struct HttpsClient {
    addr: String,
    host: String,
    stream: BufReader<TlsStream<TcpStream>>,
}

/// A response: status code and body.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl HttpsClient {
    pub async fn connect(
        addr: &str,
        server_name: &str,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<Self, ClientError> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| ClientError::Connect { addr: addr.into(), detail: e.to_string() })?;
        let _ = tcp.set_nodelay(true);
        let name =
            ServerName::try_from(server_name.to_owned()).map_err(|_| ClientError::ServerName(server_name.into()))?;
        let tls = TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| ClientError::Connect { addr: addr.into(), detail: e.to_string() })?;
        Ok(Self { addr: addr.into(), host: server_name.into(), stream: BufReader::new(tls) })
    }

    fn io(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::Io { addr: self.addr.clone(), detail: e.to_string() }
    }

    fn protocol(&self, detail: impl Into<String>) -> ClientError {
        ClientError::Protocol { addr: self.addr.clone(), detail: detail.into() }
    }

    /// Sends one request and reads the whole response.
    pub async fn request(&mut self, method: &str, path: &str, body: &[u8]) -> Result<HttpResponse, ClientError> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            self.host,
            body.len()
        );
        let sent = self.send(&[head.as_bytes(), body]).await;
        // A server may answer before it has read the whole body (413 for an
        // oversize one) and close: the answer is still there to read.
        let status = match (sent, self.read_head().await) {
            (_, Ok(status)) => status,
            (Err(e), Err(_)) | (Ok(()), Err(e)) => return Err(e),
        };
        let body = match status.1 {
            Framing::Length(n) => {
                if n > RESPONSE_BYTES_MAX {
                    return Err(self.protocol(format!("response of {n} bytes is too large")));
                }
                let mut buf = vec![0; n];
                self.stream.read_exact(&mut buf).await.map_err(|e| self.io(e))?;
                buf
            }
            Framing::Chunked => self.read_chunked(None).await?,
        };
        Ok(HttpResponse { status: status.0, body })
    }

    /// Sends a GET whose response is a chunked stream, and hands each chunk
    /// of body bytes to `on_bytes` until it returns false or the stream ends.
    pub async fn stream(&mut self, path: &str, on_bytes: ChunkSink<'_>) -> Result<u16, ClientError> {
        let head = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        self.send(&[head.as_bytes()]).await?;
        let (status, framing) = self.read_head().await?;
        match framing {
            Framing::Chunked if status == 200 => {
                self.read_chunked(Some(on_bytes)).await?;
            }
            Framing::Chunked => {
                let body = self.read_chunked(None).await?;
                on_bytes(&body);
            }
            Framing::Length(n) => {
                let mut buf = vec![0; n.min(RESPONSE_BYTES_MAX)];
                self.stream.read_exact(&mut buf).await.map_err(|e| self.io(e))?;
                on_bytes(&buf);
            }
        }
        Ok(status)
    }

    async fn send(&mut self, parts: &[&[u8]]) -> Result<(), ClientError> {
        let addr = self.addr.clone();
        let io = |e: std::io::Error| ClientError::Io { addr: addr.clone(), detail: e.to_string() };
        let w = self.stream.get_mut();
        for p in parts {
            w.write_all(p).await.map_err(io)?;
        }
        w.flush().await.map_err(io)
    }

    async fn read_line(&mut self) -> Result<String, ClientError> {
        let mut line = String::new();
        let n = (&mut self.stream).take(8192).read_line(&mut line).await.map_err(|e| self.io(e))?;
        if n == 0 {
            return Err(self.protocol("connection closed"));
        }
        Ok(line.trim_end().to_owned())
    }

    async fn read_head(&mut self) -> Result<(u16, Framing), ClientError> {
        let status_line = self.read_line().await?;
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| self.protocol(format!("status line {status_line:?}")))?;
        let mut framing = Framing::Length(0);
        for _ in 0..HEADER_LINES_MAX {
            let line = self.read_line().await?;
            if line.is_empty() {
                return Ok((status, framing));
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                let n = v.trim().parse::<usize>().map_err(|_| self.protocol("bad content-length"))?;
                framing = Framing::Length(n);
            } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                framing = Framing::Chunked;
            }
        }
        Err(self.protocol("too many header lines"))
    }

    async fn read_chunked(&mut self, mut sink: Option<ChunkSink<'_>>) -> Result<Vec<u8>, ClientError> {
        let mut body = Vec::new();
        loop {
            let size_line = self.read_line().await?;
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| self.protocol(format!("chunk size {size_line:?}")))?;
            if size == 0 {
                let _ = self.read_line().await;
                return Ok(body);
            }
            if size > RESPONSE_BYTES_MAX || body.len() + size > RESPONSE_BYTES_MAX {
                return Err(self.protocol("chunked response too large"));
            }
            let mut chunk = vec![0; size];
            self.stream.read_exact(&mut chunk).await.map_err(|e| self.io(e))?;
            let _ = self.read_line().await?;
            match sink.as_mut() {
                Some(f) => {
                    if !f(&chunk) {
                        return Ok(body);
                    }
                }
                None => body.extend_from_slice(&chunk),
            }
        }
    }
}

/// Splits a deliver stream (4-byte big-endian length + block) into frames:
/// appends `bytes` to `buf` and returns every complete frame, leaving the
/// incomplete tail in `buf`.
pub fn deliver_frames(buf: &mut Vec<u8>, bytes: &[u8]) -> Vec<Vec<u8>> {
    buf.extend_from_slice(bytes);
    let mut frames = Vec::new();
    while buf.len() >= 4 {
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if buf.len() < 4 + len {
            break;
        }
        frames.push(buf.drain(..4 + len).skip(4).collect());
    }
    frames
}

/// Receives streamed body bytes; returns false to stop reading.
type ChunkSink<'a> = &'a mut (dyn FnMut(&[u8]) -> bool + Send);

enum Framing {
    Length(usize),
    Chunked,
}

#[cfg(test)]
mod tests {
    use super::deliver_frames;

    #[test]
    fn deliver_frames_split_across_chunks_come_out_whole() {
        let mut stream = Vec::new();
        for body in [&b"abc"[..], b"", b"hello"] {
            stream.extend_from_slice(&(body.len() as u32).to_be_bytes());
            stream.extend_from_slice(body);
        }
        let mut buf = Vec::new();
        let mut frames = Vec::new();
        for chunk in stream.chunks(2) {
            frames.extend(deliver_frames(&mut buf, chunk));
        }
        assert_eq!(frames, vec![b"abc".to_vec(), vec![], b"hello".to_vec()]);
        assert!(buf.is_empty());
    }
}
