//! The one list of the replicated-log algorithms a ballot node runs.
//!
//! Servers, the wire status, the CLI, the local cluster tool and the simulator all name
//! an algorithm with [`Consensus`]; its text form (`raft`, `multipaxos`) exists only at
//! the edges (flags, files, JSON). Adding an algorithm is a crate with a factory from
//! [`ConsensusSettings`] and one variant here.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A replicated-log consensus algorithm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consensus {
    /// Raft (ballot-raft).
    #[default]
    Raft,
    /// Multi-Paxos (ballot-paxos).
    #[serde(rename = "multipaxos")]
    MultiPaxos,
}

impl Consensus {
    /// Every algorithm, in the order help texts list them.
    pub const ALL: [Consensus; 2] = [Consensus::Raft, Consensus::MultiPaxos];

    /// The name on the command line, in files and in status pages.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Consensus::Raft => "raft",
            Consensus::MultiPaxos => "multipaxos",
        }
    }

    /// The names of [`ALL`](Self::ALL), comma-separated (for help and error texts).
    #[must_use]
    pub fn names() -> String {
        Self::ALL.map(Consensus::name).join(", ")
    }
}

impl fmt::Display for Consensus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of [`Consensus::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown consensus {0:?}: use one of {names}", names = Consensus::names())]
pub struct UnknownConsensus(pub String);

impl FromStr for Consensus {
    type Err = UnknownConsensus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|c| c.name() == s).ok_or_else(|| UnknownConsensus(s.to_owned()))
    }
}

/// What every algorithm's factory takes from a server's settings; each algorithm maps
/// it onto its own configuration (its other settings keep their defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsensusSettings {
    /// The shortest election (or leader-failure) timeout; the longest is twice this.
    pub election_timeout: Duration,
    /// How often a leader tells followers it is alive.
    pub heartbeat: Duration,
    /// The largest command a proposal may carry, in bytes.
    pub max_command_size: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for c in Consensus::ALL {
            assert_eq!(c.name().parse::<Consensus>(), Ok(c));
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{}\"", c.name()));
            assert_eq!(serde_json::from_str::<Consensus>(&format!("\"{c}\"")).unwrap(), c);
        }
        let err = "pbft".parse::<Consensus>().unwrap_err();
        assert_eq!(err.to_string(), "unknown consensus \"pbft\": use one of raft, multipaxos");
        assert!("Raft".parse::<Consensus>().is_err(), "names are exact");
    }
}
