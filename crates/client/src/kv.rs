//! The database's client.

use ballot_core::service::{Consistency, Header};
use ballot_kv::{Compare, KeyValue, KvRequest, KvResponse, KvStore};
use bytes::Bytes;

use crate::{Client, ClientConfig, Error};

/// A client of the replicated key-value database (`ballot-kvd`).
#[derive(Clone)]
pub struct KvClient {
    client: Client<KvStore>,
}

/// A page of a range read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeResult {
    /// The revision read at.
    pub header: Header,
    /// The keys, in byte order.
    pub kvs: Vec<KeyValue>,
    /// Whether more keys match than were returned.
    pub more: bool,
    /// How many keys match in all.
    pub count: u64,
}

impl KvClient {
    /// A client for the cluster (connections are made on first use).
    ///
    /// # Errors
    /// As [`Client::new`].
    pub async fn connect(config: ClientConfig) -> Result<Self, Error> {
        Ok(KvClient { client: Client::new(config)? })
    }

    /// The generic client underneath (status, raw requests).
    #[must_use]
    pub fn client(&self) -> &Client<KvStore> {
        &self.client
    }

    /// Runs any database request; a `Rejected` reply becomes an error.
    ///
    /// # Errors
    /// The server's error or [`Error::Unreachable`].
    pub async fn request(&self, request: KvRequest) -> Result<KvResponse, Error> {
        match self.client.call(request).await? {
            KvResponse::Rejected(r) => Err(Error::Server(r.into())),
            other => Ok(other),
        }
    }

    /// Sets `key` to `value`; returns the revision the write created.
    ///
    /// # Errors
    /// As [`request`](Self::request).
    pub async fn put(&self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<Header, Error> {
        match self.request(KvRequest::Put { key: key.into(), value: value.into(), prev_kv: false }).await? {
            KvResponse::Put { header, .. } => Ok(header),
            other => Err(unexpected(&other)),
        }
    }

    /// Reads `key` linearizably.
    ///
    /// # Errors
    /// As [`request`](Self::request).
    pub async fn get(&self, key: impl Into<Bytes>) -> Result<Option<KeyValue>, Error> {
        Ok(self.get_with(key, Consistency::Linearizable).await?.1)
    }

    /// Reads `key` with the given consistency; returns the revision read at too.
    ///
    /// # Errors
    /// As [`request`](Self::request).
    pub async fn get_with(
        &self,
        key: impl Into<Bytes>,
        consistency: Consistency,
    ) -> Result<(Header, Option<KeyValue>), Error> {
        match self.request(KvRequest::Get { key: key.into(), consistency }).await? {
            KvResponse::Get { header, kv } => Ok((header, kv)),
            other => Err(unexpected(&other)),
        }
    }

    /// Removes `key`; returns whether it existed.
    ///
    /// # Errors
    /// As [`request`](Self::request).
    pub async fn delete(&self, key: impl Into<Bytes>) -> Result<bool, Error> {
        match self.request(KvRequest::Delete { key: key.into(), prev_kv: false }).await? {
            KvResponse::Delete { deleted, .. } => Ok(deleted),
            other => Err(unexpected(&other)),
        }
    }

    /// Sets `key` to `value` if `compare` holds; returns whether it did and, if not, the
    /// key's current state.
    ///
    /// # Errors
    /// As [`request`](Self::request).
    pub async fn compare_and_swap(
        &self,
        key: impl Into<Bytes>,
        compare: Compare,
        value: impl Into<Bytes>,
    ) -> Result<(bool, Option<KeyValue>), Error> {
        match self.request(KvRequest::CompareAndSwap { key: key.into(), compare, value: value.into() }).await? {
            KvResponse::CompareAndSwap { succeeded, kv, .. } => Ok((succeeded, kv)),
            other => Err(unexpected(&other)),
        }
    }

    /// Lists up to `limit` keys starting with `prefix` (after `after`, for paging).
    ///
    /// # Errors
    /// As [`request`](Self::request).
    pub async fn range(
        &self,
        prefix: impl Into<Bytes>,
        after: Option<Bytes>,
        limit: u32,
        consistency: Consistency,
    ) -> Result<RangeResult, Error> {
        match self.request(KvRequest::Range { prefix: prefix.into(), after, limit, consistency }).await? {
            KvResponse::Range { header, kvs, more, count } => Ok(RangeResult { header, kvs, more, count }),
            other => Err(unexpected(&other)),
        }
    }
}

pub(crate) fn unexpected(reply: &impl std::fmt::Debug) -> Error {
    Error::Unexpected(format!("{reply:?}"))
}
