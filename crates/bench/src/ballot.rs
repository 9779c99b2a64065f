//! The ballot-kvd backend, through ballot-client.

use ballot_client::{ClientConfig, KvClient};
use ballot_core::service::Consistency;
use bytes::Bytes;

use crate::{Error, ReadConsistency, Target};

/// A ballot-kvd cluster: one [`KvClient`] (one QUIC connection to the leader, found
/// and followed by the client) per benchmark connection, shared by the clients on it.
pub struct BallotTarget {
    conns: Vec<KvClient>,
}

fn failed(e: &ballot_client::Error) -> Error {
    Error::Request(e.to_string())
}

impl BallotTarget {
    /// Opens `conns` connections to the cluster's leader (each with a linearizable read,
    /// so that connecting and leader discovery happen before the run).
    ///
    /// # Errors
    /// [`Error::Connect`] when the cluster cannot be reached.
    pub async fn connect(config: ClientConfig, conns: usize) -> Result<Self, Error> {
        let connect_error = |e: ballot_client::Error| Error::Connect { target: "ballot".into(), detail: e.to_string() };
        let mut clients = Vec::with_capacity(conns);
        for _ in 0..conns.max(1) {
            let kv = KvClient::connect(config.clone()).await.map_err(connect_error)?;
            kv.get_with(Bytes::from_static(b"bench-warm-up"), Consistency::Linearizable)
                .await
                .map_err(connect_error)?;
            clients.push(kv);
        }
        Ok(BallotTarget { conns: clients })
    }

    fn conn(&self, i: usize) -> &KvClient {
        &self.conns[i % self.conns.len()]
    }
}

impl Target for BallotTarget {
    fn name(&self) -> String {
        "ballot".into()
    }

    async fn put(&self, conn: usize, key: Bytes, value: Bytes) -> Result<(), Error> {
        self.conn(conn).put(key, value).await.map(drop).map_err(|e| failed(&e))
    }

    async fn get(&self, conn: usize, key: Bytes, consistency: ReadConsistency) -> Result<(), Error> {
        let consistency = match consistency {
            ReadConsistency::Linearizable => Consistency::Linearizable,
            ReadConsistency::Serializable => Consistency::Serializable,
        };
        self.conn(conn).get_with(key, consistency).await.map(drop).map_err(|e| failed(&e))
    }
}
