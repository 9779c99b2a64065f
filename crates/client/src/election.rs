//! The election service's client: leases, campaigns that wait until elected, observers.

use std::time::Duration;

use ballot_election::{ElectionRequest, ElectionResponse, ElectionService, LeaderEvent, Leadership, LeaseId};
use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::kv::unexpected;
use crate::{Client, ClientConfig, Error, WatchStream};

/// A client of the leader-election service (`ballot-electiond`).
#[derive(Clone)]
pub struct ElectionClient {
    client: Client<ElectionService>,
}

impl ElectionClient {
    /// A client for the cluster (connections are made on first use).
    ///
    /// # Errors
    /// As [`Client::new`].
    pub async fn connect(config: ClientConfig) -> Result<Self, Error> {
        Ok(ElectionClient { client: Client::new(config)? })
    }

    /// The generic client underneath.
    #[must_use]
    pub fn client(&self) -> &Client<ElectionService> {
        &self.client
    }

    /// Runs any election request; a `Rejected` reply becomes an error.
    ///
    /// # Errors
    /// The server's error or [`Error::Unreachable`].
    pub async fn request(&self, request: ElectionRequest) -> Result<ElectionResponse, Error> {
        match self.client.call(request).await? {
            ElectionResponse::Rejected(r) => Err(Error::Server(r.into())),
            other => Ok(other),
        }
    }

    /// Grants a lease that lives `ttl` unless kept alive.
    ///
    /// # Errors
    /// As [`request`](Self::request).
    pub async fn grant(&self, ttl: Duration) -> Result<LeaseId, Error> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        match self.request(ElectionRequest::Grant { ttl_ms }).await? {
            ElectionResponse::Granted { lease, .. } => Ok(lease),
            other => Err(unexpected(&other)),
        }
    }

    /// Renews `lease` for its full TTL; `Ok(None)` if the lease is gone (expired or revoked).
    ///
    /// # Errors
    /// As [`request`](Self::request).
    pub async fn keep_alive(&self, lease: LeaseId) -> Result<Option<Duration>, Error> {
        for _ in 0..50 {
            match self.request(ElectionRequest::KeepAlive { lease }).await? {
                ElectionResponse::KeptAlive { ttl_ms, .. } => return Ok(Some(Duration::from_millis(ttl_ms))),
                ElectionResponse::LeaseNotFound { .. } => return Ok(None),
                // A new leader that has not applied the grant yet: ask again shortly.
                ElectionResponse::LeaseNotYetApplied { .. } => tokio::time::sleep(Duration::from_millis(20)).await,
                other => return Err(unexpected(&other)),
            }
        }
        Err(Error::Unexpected(format!("lease {lease} still not applied at the leader")))
    }

    /// Revokes `lease`, ending every leadership and candidacy it holds.
    ///
    /// # Errors
    /// As [`request`](Self::request).
    pub async fn revoke(&self, lease: LeaseId) -> Result<(), Error> {
        match self.request(ElectionRequest::Revoke { lease }).await? {
            ElectionResponse::Revoked { .. } | ElectionResponse::LeaseNotFound { .. } => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// The current leader of `election`, read linearizably.
    ///
    /// # Errors
    /// As [`request`](Self::request).
    pub async fn leader(&self, election: &str) -> Result<Option<Leadership>, Error> {
        match self.request(ElectionRequest::Leader { election: election.into() }).await? {
            ElectionResponse::Leader { leader, .. } => Ok(leader),
            other => Err(unexpected(&other)),
        }
    }

    /// Gives up leadership of (or candidacy in) `election` held with `lease`; returns
    /// whether it was the leader.
    ///
    /// # Errors
    /// As [`request`](Self::request).
    pub async fn resign(&self, election: &str, lease: LeaseId) -> Result<bool, Error> {
        match self.request(ElectionRequest::Resign { election: election.into(), lease }).await? {
            ElectionResponse::Resigned { was_leader, .. } => Ok(was_leader),
            ElectionResponse::NotCandidate { .. } | ElectionResponse::LeaseNotFound { .. } => Ok(false),
            other => Err(unexpected(&other)),
        }
    }

    /// Streams the leadership changes of `election`, starting with the current leader.
    /// Reconnects by itself across node failures.
    ///
    /// # Errors
    /// As [`request`](Self::request).
    pub async fn observe(&self, election: &str) -> Result<LeaderObserver, Error> {
        let stream = self.client.watch(ElectionRequest::Observe { election: election.into() }).await?;
        Ok(LeaderObserver { client: self.client.clone(), election: election.into(), stream: Some(stream), last: None })
    }

    /// Campaigns for `election` with `value` under a new lease of `ttl`, kept alive in
    /// the background, and waits until elected.
    ///
    /// # Errors
    /// As [`request`](Self::request); [`Error::Unexpected`] if the lease is lost while
    /// waiting.
    pub async fn campaign(&self, election: &str, value: impl Into<Bytes>, ttl: Duration) -> Result<Campaign, Error> {
        let lease = self.grant(ttl).await?;
        let (lost_tx, lost) = watch::channel(false);
        let keeper = {
            let client = self.clone();
            tokio::spawn(async move {
                let period = (ttl / 3).max(Duration::from_millis(100));
                loop {
                    tokio::time::sleep(period).await;
                    match client.keep_alive(lease).await {
                        Ok(Some(_)) => {}
                        Ok(None) => {
                            let _ = lost_tx.send(true);
                            return;
                        }
                        Err(e) => tracing::warn!(%lease, error = %e, "lease keep-alive failed; retrying"),
                    }
                }
            })
        };
        let mut campaign =
            Campaign { client: self.clone(), election: election.into(), lease, leadership: None, keeper, lost };
        let request = ElectionRequest::Campaign { election: election.into(), lease, value: value.into() };
        match self.request(request).await? {
            ElectionResponse::Elected { leader, .. } => {
                campaign.leadership = Some(leader);
                return Ok(campaign);
            }
            ElectionResponse::Queued { .. } => {}
            other => return Err(unexpected(&other)),
        }
        let mut observer = self.observe(election).await?;
        loop {
            tokio::select! {
                event = observer.next() => {
                    let event = event?;
                    if let Some(leader) = event.leader.filter(|l| l.lease == lease) {
                        campaign.leadership = Some(leader);
                        return Ok(campaign);
                    }
                }
                _ = campaign.lost.changed() => {
                    return Err(Error::Unexpected(format!("lease {lease} expired while campaigning")));
                }
            }
        }
    }
}

/// A won campaign: holds the leadership while its lease is kept alive.
pub struct Campaign {
    client: ElectionClient,
    election: String,
    lease: LeaseId,
    leadership: Option<Leadership>,
    keeper: JoinHandle<()>,
    lost: watch::Receiver<bool>,
}

impl Campaign {
    /// The leadership won: value, lease and fencing token.
    #[must_use]
    pub fn leadership(&self) -> &Leadership {
        self.leadership.as_ref().expect("a campaign is returned only once elected")
    }

    /// The lease the campaign holds.
    #[must_use]
    pub fn lease(&self) -> LeaseId {
        self.lease
    }

    /// Resolves when the lease could not be renewed (it expired): leadership is lost.
    pub async fn lost(&mut self) {
        let _ = self.lost.wait_for(|lost| *lost).await;
    }

    /// Resigns the leadership and revokes the lease.
    ///
    /// # Errors
    /// As [`ElectionClient::request`].
    pub async fn resign(self) -> Result<(), Error> {
        self.keeper.abort();
        self.client.resign(&self.election, self.lease).await?;
        self.client.revoke(self.lease).await
    }
}

impl Drop for Campaign {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

/// Leadership changes of one election; see [`ElectionClient::observe`].
pub struct LeaderObserver {
    client: Client<ElectionService>,
    election: String,
    stream: Option<WatchStream<ElectionService>>,
    last: Option<u64>,
}

impl LeaderObserver {
    /// The next leadership change (the first call returns the current leader).
    ///
    /// # Errors
    /// Errors reconnecting cannot fix.
    pub async fn next(&mut self) -> Result<LeaderEvent, Error> {
        loop {
            if self.stream.is_none() {
                let request = ElectionRequest::Observe { election: self.election.clone() };
                self.stream = Some(self.client.watch(request).await?);
            }
            match self.stream.as_mut().expect("connected above").next().await {
                Ok(Some(event)) => {
                    // After a reconnect the stream restarts with the current leader; skip
                    // what was already delivered.
                    if self.last.is_some_and(|r| event.revision <= r) {
                        continue;
                    }
                    self.last = Some(event.revision);
                    return Ok(event);
                }
                Ok(None) => self.stream = None,
                Err(Error::Server(e)) if !e.is_retryable() => return Err(Error::Server(e)),
                Err(e) => {
                    tracing::debug!(error = %e, "observe interrupted; resuming");
                    self.stream = None;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}
