//! The etcd v3 backend, through the `etcd-client` crate (feature `etcd`).

use bytes::Bytes;
use etcd_client::{Client, GetOptions, KvClient};

use crate::{Error, ReadConsistency, Target};

/// An etcd cluster: one gRPC channel (one HTTP/2 connection) per benchmark connection,
/// shared by the clients on it.
pub struct EtcdTarget {
    conns: Vec<KvClient>,
}

fn failed(e: &etcd_client::Error) -> Error {
    Error::Request(e.to_string())
}

impl EtcdTarget {
    /// Opens `conns` connections to `endpoints` (`http://host:port` or `host:port`).
    /// With `leader_only`, finds the leader among them first and connects only to it
    /// (etcd's `benchmark --target-leader`).
    ///
    /// # Errors
    /// [`Error::Connect`] when etcd cannot be reached or has no leader.
    pub async fn connect(endpoints: &[String], conns: usize, leader_only: bool) -> Result<Self, Error> {
        let connect_error = |detail: String| Error::Connect { target: "etcd".into(), detail };
        let endpoints = if leader_only { vec![Self::leader(endpoints).await?] } else { endpoints.to_vec() };
        let mut clients = Vec::with_capacity(conns);
        for _ in 0..conns.max(1) {
            let client = Client::connect(&endpoints, None).await.map_err(|e| connect_error(e.to_string()))?;
            let mut kv = client.kv_client();
            kv.get("bench-warm-up", None).await.map_err(|e| connect_error(e.to_string()))?;
            clients.push(kv);
        }
        Ok(EtcdTarget { conns: clients })
    }

    /// The endpoint of the member that leads.
    ///
    /// # Errors
    /// [`Error::Connect`] when no endpoint answers or none is the leader.
    pub async fn leader(endpoints: &[String]) -> Result<String, Error> {
        let mut last = String::from("no endpoints");
        for endpoint in endpoints {
            let status = match Client::connect([endpoint], None).await {
                Ok(mut c) => c.status().await,
                Err(e) => Err(e),
            };
            match status {
                Ok(s) if s.header().is_some_and(|h| h.member_id() == s.leader()) => return Ok(endpoint.clone()),
                Ok(_) => last = format!("{endpoint} is a follower"),
                Err(e) => last = format!("{endpoint}: {e}"),
            }
        }
        Err(Error::Connect { target: "etcd".into(), detail: format!("no endpoint is the leader ({last})") })
    }

    fn conn(&self, i: usize) -> KvClient {
        self.conns[i % self.conns.len()].clone()
    }
}

impl Target for EtcdTarget {
    fn name(&self) -> String {
        "etcd".into()
    }

    async fn put(&self, conn: usize, key: Bytes, value: Bytes) -> Result<(), Error> {
        self.conn(conn).put(key.to_vec(), value.to_vec(), None).await.map(drop).map_err(|e| failed(&e))
    }

    async fn get(&self, conn: usize, key: Bytes, consistency: ReadConsistency) -> Result<(), Error> {
        let options = match consistency {
            ReadConsistency::Linearizable => None,
            ReadConsistency::Serializable => Some(GetOptions::new().with_serializable()),
        };
        self.conn(conn).get(key.to_vec(), options).await.map(drop).map_err(|e| failed(&e))
    }
}
