//! The peer protocol: messages exchanged over one QUIC stream per peer, each a
//! ballot-wire frame holding one postcard-encoded [`Message`].
//!
//! Both ends send [`Message::Version`] first; a peer of another chain (different
//! parameter digest or genesis) is disconnected. Then, as in Bitcoin: blocks and
//! transactions are announced by hash ([`Message::Inv`]) and fetched on demand
//! ([`Message::GetData`]); a node that learns of blocks it cannot connect asks for
//! headers from the fork point ([`Message::GetHeaders`] with a block locator) and then
//! downloads the blocks, from several peers at once; addresses are gossiped with
//! [`Message::GetAddr`] / [`Message::Addr`].

use std::net::SocketAddr;

use ballot_ledger::{Hash, SignedTransfer, TxId};
use ballot_pow::{Block, BlockHash, BlockHeader};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::Error;

/// The ALPN protocol of chain peers.
pub const ALPN: &[u8] = b"ballot-chain/1";
/// The version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest message (a frame's payload): a full block plus room.
pub const MAX_MESSAGE: usize = 2 << 20;
/// Most headers in one [`Message::Headers`] (Bitcoin's 2,000).
pub const MAX_HEADERS: usize = 2_000;
/// Most items in one [`Message::Inv`], [`Message::GetData`] or [`Message::NotFound`].
pub const MAX_INV: usize = 5_000;
/// Most addresses in one [`Message::Addr`].
pub const MAX_ADDR: usize = 1_000;
/// Most hashes in a block locator.
pub const MAX_LOCATOR: usize = 101;
/// Longest user agent string.
pub const MAX_AGENT: usize = 256;

/// The handshake message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub protocol: u32,
    /// Digest of the sender's chain parameters.
    pub chain: Hash,
    /// The sender's genesis block.
    pub genesis: BlockHash,
    /// The UDP port the sender listens on (its address is the connection's IP).
    pub listen_port: u16,
    /// The sender's active height.
    pub height: u64,
    /// Software name and version.
    pub agent: String,
}

/// Something announced or requested.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Inventory {
    /// A block, by hash.
    Block(BlockHash),
    /// A transaction, by id.
    Tx(TxId),
}

/// One peer message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// The first message of each side.
    Version(Version),
    /// Liveness probe; answered with [`Message::Pong`].
    Ping(u64),
    /// Answer to [`Message::Ping`].
    Pong(u64),
    /// Asks for known peer addresses.
    GetAddr,
    /// Peer addresses.
    Addr(Vec<SocketAddr>),
    /// Announces blocks or transactions the sender has.
    Inv(Vec<Inventory>),
    /// Asks for announced blocks or transactions.
    GetData(Vec<Inventory>),
    /// Requested items the sender does not have.
    NotFound(Vec<Inventory>),
    /// Asks for the headers after the first locator hash on the receiver's active
    /// chain, up to `stop` (zero: as many as allowed).
    GetHeaders {
        /// The requester's block locator.
        locator: Vec<BlockHash>,
        /// Last header wanted.
        stop: BlockHash,
    },
    /// Consecutive headers, each the child of the previous.
    Headers(Vec<BlockHeader>),
    /// A block.
    Block(Box<Block>),
    /// A transaction.
    Tx(Box<SignedTransfer>),
}

fn limit(what: &'static str, count: usize, max: usize) -> Result<(), Error> {
    if count > max { Err(Error::TooMany { what, count, max }) } else { Ok(()) }
}

impl Message {
    /// Encodes the message as a frame payload.
    ///
    /// # Errors
    /// [`Error::Decode`] if it exceeds [`MAX_MESSAGE`].
    pub fn encode(&self) -> Result<Bytes, Error> {
        Ok(ballot_wire::Codec::new(MAX_MESSAGE).encode(self)?)
    }

    /// Decodes a frame payload and checks the protocol's list limits.
    ///
    /// # Errors
    /// [`Error::Decode`] for bytes that are not a message (garbage, trailing bytes, an
    /// unknown message type); [`Error::TooMany`] for a list over its limit.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let msg: Message = ballot_wire::Codec::new(MAX_MESSAGE).decode(bytes)?;
        match &msg {
            Message::Version(v) => limit("user agent bytes", v.agent.len(), MAX_AGENT)?,
            Message::Addr(a) => limit("addr", a.len(), MAX_ADDR)?,
            Message::Inv(i) | Message::GetData(i) | Message::NotFound(i) => limit("inventory", i.len(), MAX_INV)?,
            Message::GetHeaders { locator, .. } => limit("locator", locator.len(), MAX_LOCATOR)?,
            Message::Headers(h) => limit("headers", h.len(), MAX_HEADERS)?,
            _ => {}
        }
        Ok(msg)
    }

    /// The message's name, for logs and errors.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Message::Version(_) => "version",
            Message::Ping(_) => "ping",
            Message::Pong(_) => "pong",
            Message::GetAddr => "getaddr",
            Message::Addr(_) => "addr",
            Message::Inv(_) => "inv",
            Message::GetData(_) => "getdata",
            Message::NotFound(_) => "notfound",
            Message::GetHeaders { .. } => "getheaders",
            Message::Headers(_) => "headers",
            Message::Block(_) => "block",
            Message::Tx(_) => "tx",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_bad_bytes_are_refused() {
        let msgs = [
            Message::Ping(7),
            Message::Inv(vec![Inventory::Block(Hash([1; 32])), Inventory::Tx(Hash([2; 32]))]),
            Message::GetHeaders { locator: vec![Hash([3; 32])], stop: Hash::ZERO },
            Message::Addr(vec!["127.0.0.1:8301".parse().unwrap()]),
        ];
        for m in msgs {
            assert_eq!(Message::decode(&m.encode().unwrap()).unwrap(), m);
        }
        // An unknown message type (variant 200), garbage and trailing bytes.
        assert!(matches!(Message::decode(&[200, 1]), Err(Error::Decode(_))));
        assert!(matches!(Message::decode(&[0xff; 9]), Err(Error::Decode(_))));
        let mut ping = Message::Ping(1).encode().unwrap().to_vec();
        ping.push(0);
        assert!(matches!(Message::decode(&ping), Err(Error::Decode(_))));
        // Over a list limit.
        let many = Message::Inv(vec![Inventory::Tx(Hash::ZERO); MAX_INV + 1]).encode().unwrap();
        assert!(matches!(Message::decode(&many), Err(Error::TooMany { what: "inventory", .. })));
    }
}
