//! A small blocking client of the node's HTTP API, for `ballot chain` and tests.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::time::Duration;

use ballot_ledger::SignedTransfer;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{
    AccountInfo, ApiError, BanInfo, BanRequest, BlockInfo, PeerInfo, SubmitTx, Submitted, TipInfo, TxInfo, TxSummary,
    VerifyReport,
};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node could not be reached, or did not answer in time.
    #[error("cannot reach the node at {addr}: {source}")]
    Unavailable {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The node answered with an error.
    #[error("{message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// `invalid`, `not_found` or `unavailable`.
        kind: String,
        /// The node's message.
        message: String,
    },
    /// The answer was not what this client understands.
    #[error("unexpected answer from the node: {0}")]
    BadAnswer(String),
}

/// A client of one node.
#[derive(Clone, Debug)]
pub struct ChainClient {
    addr: String,
    timeout: Duration,
}

impl ChainClient {
    /// A client of the node whose HTTP port is `addr` (`host:port`).
    #[must_use]
    pub fn new(addr: impl Into<String>, timeout: Duration) -> Self {
        ChainClient { addr: addr.into(), timeout }
    }

    /// The node's address.
    #[must_use]
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn unavailable(&self, source: std::io::Error) -> ClientError {
        ClientError::Unavailable { addr: self.addr.clone(), source }
    }

    fn resolve(&self) -> Result<SocketAddr, ClientError> {
        self.addr
            .to_socket_addrs()
            .map_err(|e| self.unavailable(e))?
            .next()
            .ok_or_else(|| self.unavailable(std::io::Error::other("the address resolves to nothing")))
    }

    fn call<T: DeserializeOwned>(&self, method: &str, path: &str, body: Option<String>) -> Result<T, ClientError> {
        let addr = self.resolve()?;
        let mut s = TcpStream::connect_timeout(&addr, self.timeout).map_err(|e| self.unavailable(e))?;
        s.set_read_timeout(Some(self.timeout)).map_err(|e| self.unavailable(e))?;
        s.set_write_timeout(Some(self.timeout)).map_err(|e| self.unavailable(e))?;
        let body = body.unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(request.as_bytes()).map_err(|e| self.unavailable(e))?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).map_err(|e| self.unavailable(e))?;
        let (status, body) =
            parse_response(&raw).ok_or_else(|| ClientError::BadAnswer("not an HTTP response".into()))?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&body).map_err(|e| ClientError::BadAnswer(e.to_string()));
        }
        match serde_json::from_slice::<ApiError>(&body) {
            Ok(e) => Err(ClientError::Api { status, kind: e.error.kind, message: e.error.message }),
            Err(_) => Err(ClientError::Api {
                status,
                kind: if status == 404 { "not_found".into() } else { "unavailable".into() },
                message: format!("HTTP {status}: {}", String::from_utf8_lossy(&body).trim()),
            }),
        }
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call("GET", path, None)
    }

    fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, ClientError> {
        let body = serde_json::to_string(body).map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        self.call("POST", path, Some(body))
    }

    /// The active tip and the node's state.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn tip(&self) -> Result<TipInfo, ClientError> {
        self.get("/v1/tip")
    }

    /// A block by hash or height.
    ///
    /// # Errors
    /// [`ClientError`] (`not_found` for an unknown block).
    pub fn block(&self, id: &str) -> Result<BlockInfo, ClientError> {
        self.get(&format!("/v1/block/{id}"))
    }

    /// A transaction by id.
    ///
    /// # Errors
    /// [`ClientError`] (`not_found` for an unknown transaction).
    pub fn tx(&self, id: &str) -> Result<TxInfo, ClientError> {
        self.get(&format!("/v1/tx/{id}"))
    }

    /// An account.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn account(&self, key: &str) -> Result<AccountInfo, ClientError> {
        self.get(&format!("/v1/account/{key}"))
    }

    /// Submits a signed transfer to the mempool (and the network).
    ///
    /// # Errors
    /// [`ClientError`] (`invalid` for a transfer the mempool refuses, with why).
    pub fn submit(&self, tx: &SignedTransfer) -> Result<Submitted, ClientError> {
        let bytes = ballot_wire::encode(tx).map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        self.post("/v1/tx", &SubmitTx { tx: bytes.iter().map(|b| format!("{b:02x}")).collect() })
    }

    /// The connected peers.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn peers(&self) -> Result<Vec<PeerInfo>, ClientError> {
        self.get("/v1/peers")
    }

    /// The mempool, best fee rate first.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn mempool(&self) -> Result<Vec<TxSummary>, ClientError> {
        self.get("/v1/mempool")
    }

    /// Re-validates the node's whole active chain.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn verify(&self) -> Result<VerifyReport, ClientError> {
        self.get("/v1/verify")
    }

    /// The bans in force.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn bans(&self) -> Result<Vec<BanInfo>, ClientError> {
        self.get("/v1/bans")
    }

    /// Bans a peer (key or listening address) for `seconds`, disconnecting it.
    ///
    /// # Errors
    /// [`ClientError`].
    pub fn ban(&self, target: &str, seconds: u64) -> Result<Vec<BanInfo>, ClientError> {
        self.post("/v1/ban", &BanRequest { target: target.to_owned(), seconds })
    }

    /// Lifts a ban.
    ///
    /// # Errors
    /// [`ClientError`] (`not_found` if no such ban).
    pub fn unban(&self, target: &str) -> Result<Vec<BanInfo>, ClientError> {
        self.call("DELETE", &format!("/v1/ban/{target}"), None)
    }
}

/// `(status, body)` of a raw HTTP/1.1 response (plain or chunked body).
fn parse_response(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = &raw[split + 4..];
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if !chunked {
        return Some((status, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some((status, out));
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_plain_and_chunked() {
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n{}"), Some((200, b"{}".to_vec())));
        let chunked = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked), Some((404, b"abcde".to_vec())));
        assert_eq!(parse_response(b"garbage"), None);
    }
}
