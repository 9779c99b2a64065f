//! The configuration service's client, with watches that survive failover.

use ballot_config::{ConfigEntry, ConfigEvent, ConfigRequest, ConfigResponse, ConfigService, WatchCursor};
use ballot_core::service::{Consistency, Header};
use bytes::Bytes;

use crate::kv::unexpected;
use crate::{Client, ClientConfig, Error, WatchStream};

/// A client of the configuration service (`ballot-configd`).
#[derive(Clone)]
pub struct ConfigClient {
    client: Client<ConfigService>,
}

impl ConfigClient {
    /// A client for the cluster (connections are made on first use).
    ///
    /// # Errors
    /// As [`Client::new`].
    pub async fn connect(config: ClientConfig) -> Result<Self, Error> {
        Ok(ConfigClient { client: Client::new(config)? })
    }

    /// The generic client underneath.
    #[must_use]
    pub fn client(&self) -> &Client<ConfigService> {
        &self.client
    }

    /// Runs any configuration request; a `Rejected` reply becomes an error.
    ///
    /// # Errors
    /// The server's error or [`Error::Unreachable`].
    pub async fn request(&self, request: ConfigRequest) -> Result<ConfigResponse, Error> {
        match self.client.call(request).await? {
            ConfigResponse::Rejected(r) => Err(Error::Server(r.into())),
            other => Ok(other),
        }
    }

    /// Sets `namespace/key`; returns the revision of the change.
    ///
    /// # Errors
    /// As [`request`](Self::request).
    pub async fn set(&self, namespace: &str, key: &str, value: impl Into<Bytes>) -> Result<Header, Error> {
        let request = ConfigRequest::Set { namespace: namespace.into(), key: key.into(), value: value.into() };
        match self.request(request).await? {
            ConfigResponse::Set { header, .. } => Ok(header),
            other => Err(unexpected(&other)),
        }
    }

    /// Reads `namespace/key` linearizably.
    ///
    /// # Errors
    /// As [`request`](Self::request).
    pub async fn get(&self, namespace: &str, key: &str) -> Result<(Header, Option<ConfigEntry>), Error> {
        let request =
            ConfigRequest::Get { namespace: namespace.into(), key: key.into(), consistency: Consistency::Linearizable };
        match self.request(request).await? {
            ConfigResponse::Get { header, entry } => Ok((header, entry)),
            other => Err(unexpected(&other)),
        }
    }

    /// Removes `namespace/key`; returns whether it existed.
    ///
    /// # Errors
    /// As [`request`](Self::request).
    pub async fn delete(&self, namespace: &str, key: &str) -> Result<bool, Error> {
        match self.request(ConfigRequest::Delete { namespace: namespace.into(), key: key.into() }).await? {
            ConfigResponse::Delete { deleted, .. } => Ok(deleted),
            other => Err(unexpected(&other)),
        }
    }

    /// Lists the entries of `namespace` whose keys start with `prefix` (up to `limit`, 0
    /// for the maximum), linearizably.
    ///
    /// # Errors
    /// As [`request`](Self::request).
    pub async fn list(
        &self,
        namespace: &str,
        prefix: &str,
        limit: u32,
    ) -> Result<(Header, Vec<ConfigEntry>, bool), Error> {
        let request = ConfigRequest::List {
            namespace: namespace.into(),
            prefix: prefix.into(),
            after: None,
            limit,
            consistency: Consistency::Linearizable,
        };
        match self.request(request).await? {
            ConfigResponse::List { header, entries, more, .. } => Ok((header, entries, more)),
            other => Err(unexpected(&other)),
        }
    }

    /// Watches a key (or, with `prefix`, every key starting with `key_or_prefix`) from
    /// `start_revision`, or from now if `None`. The watch reconnects by itself — to any
    /// node, across leader changes — resuming after the last revision it delivered, so
    /// it misses no change and repeats none.
    ///
    /// # Errors
    /// As [`request`](Self::request).
    pub async fn watch(
        &self,
        namespace: &str,
        key_or_prefix: &str,
        prefix: bool,
        start_revision: Option<u64>,
    ) -> Result<ConfigWatch, Error> {
        let start = match start_revision {
            Some(r) => r.max(1),
            // Any linearizable read gives the current revision; a one-entry list works
            // for every key and prefix, the empty prefix (the whole namespace) included.
            None => self.list(namespace, key_or_prefix, 1).await?.0.revision + 1,
        };
        let mut watch = ConfigWatch {
            client: self.client.clone(),
            cursor: WatchCursor::new(namespace, key_or_prefix, prefix, start),
            stream: None,
            reconnects: 0,
        };
        watch.reconnect().await?;
        Ok(watch)
    }
}

/// A resumable watch of the configuration service; see [`ConfigClient::watch`].
pub struct ConfigWatch {
    client: Client<ConfigService>,
    cursor: WatchCursor,
    stream: Option<WatchStream<ConfigService>>,
    reconnects: u64,
}

impl ConfigWatch {
    async fn reconnect(&mut self) -> Result<(), Error> {
        self.stream = Some(self.client.watch(self.cursor.request()).await?);
        Ok(())
    }

    /// The revision the next event will have at least.
    #[must_use]
    pub fn next_revision(&self) -> u64 {
        self.cursor.next_revision()
    }

    /// The node the watch is connected to, if it is.
    #[must_use]
    pub fn node(&self) -> Option<std::net::SocketAddr> {
        self.stream.as_ref().map(WatchStream::node)
    }

    /// How many times the watch has reconnected.
    #[must_use]
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// The next change. Reconnects (with backoff inside the client) when a node goes
    /// away.
    ///
    /// # Errors
    /// Errors that reconnecting cannot fix: the history was compacted past the resume
    /// point, the request is invalid, or no node is reachable.
    pub async fn next(&mut self) -> Result<ConfigEvent, Error> {
        loop {
            if self.stream.is_none() {
                self.reconnects += 1;
                self.reconnect().await?;
            }
            let stream = self.stream.as_mut().expect("connected above");
            match stream.next().await {
                Ok(Some(event)) => {
                    // A replay after a reconnect may repeat what was delivered.
                    if self.cursor.accept(&event) {
                        return Ok(event);
                    }
                }
                Ok(None) => self.stream = None,
                Err(Error::Server(e)) if !e.is_retryable() => return Err(Error::Server(e)),
                Err(Error::Decode(e)) => return Err(Error::Decode(e)),
                Err(e) => {
                    tracing::debug!(error = %e, "watch interrupted; resuming");
                    self.stream = None;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }
}
