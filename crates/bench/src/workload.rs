//! Workload parameters and key generation.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::Error;

/// The request a workload issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Writes of `val_size`-byte values (etcd's `benchmark put`).
    Put,
    /// Single-key reads (etcd's `benchmark range KEY`).
    Range,
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Op::Put => "put",
            Op::Range => "range",
        })
    }
}

/// How fresh a read must be (etcd's `--consistency l|s`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadConsistency {
    /// Linearizable (`l`): through the leader's read barrier.
    #[default]
    Linearizable,
    /// Serializable (`s`): the answering node's local state.
    Serializable,
}

impl ReadConsistency {
    /// Parses `l`/`linearizable` or `s`/`serializable`.
    ///
    /// # Errors
    /// [`Error::InvalidSpec`] for anything else.
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s {
            "l" | "linearizable" => Ok(ReadConsistency::Linearizable),
            "s" | "serializable" => Ok(ReadConsistency::Serializable),
            _ => {
                Err(Error::InvalidSpec(format!("unknown consistency {s:?}: use l (linearizable) or s (serializable)")))
            }
        }
    }

    /// `l` or `s`, as etcd's tool spells it.
    #[must_use]
    pub fn short(self) -> &'static str {
        match self {
            ReadConsistency::Linearizable => "l",
            ReadConsistency::Serializable => "s",
        }
    }
}

/// One benchmark run's parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// What each request does.
    pub op: Op,
    /// Concurrent closed-loop clients (each keeps one request outstanding).
    pub clients: usize,
    /// Connections the clients are spread over (client `i` uses connection `i % conns`).
    pub conns: usize,
    /// Requests in all.
    pub total: u64,
    /// Key size in bytes.
    pub key_size: usize,
    /// Value size in bytes (for `range`: the value written once before the reads).
    pub val_size: usize,
    /// Keys in order (`n % key_space_size`) instead of at random in the key space.
    pub sequential_keys: bool,
    /// How many distinct keys `put` writes.
    pub key_space_size: u64,
    /// Read consistency for `range`.
    pub consistency: ReadConsistency,
    /// Stop issuing requests after this long even if `total` was not reached.
    #[serde(with = "secs")]
    pub max_duration: Duration,
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

impl Default for Spec {
    /// etcd's defaults: 1 client, 1 connection, 10,000 requests, 8-byte keys and values,
    /// one key; at most 10 minutes.
    fn default() -> Self {
        Spec {
            op: Op::Put,
            clients: 1,
            conns: 1,
            total: 10_000,
            key_size: 8,
            val_size: 8,
            sequential_keys: false,
            key_space_size: 1,
            consistency: ReadConsistency::Linearizable,
            max_duration: Duration::from_secs(600),
        }
    }
}

impl Spec {
    /// Checks the parameters.
    ///
    /// # Errors
    /// [`Error::InvalidSpec`] saying which parameter is wrong and why.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::InvalidSpec(m));
        if self.clients == 0 {
            return bad("--clients must be at least 1".into());
        }
        if self.conns == 0 {
            return bad("--conns must be at least 1".into());
        }
        if self.conns > self.clients {
            return bad(format!(
                "--conns ({}) is more than --clients ({}): a connection without a client is never used",
                self.conns, self.clients
            ));
        }
        if self.total == 0 {
            return bad("--total must be at least 1".into());
        }
        if self.key_size == 0 {
            return bad("--key-size must be at least 1".into());
        }
        if self.key_space_size == 0 {
            return bad("--key-space-size must be at least 1".into());
        }
        let digits = Keys::digits(self.key_space_size - 1);
        if digits > self.key_size {
            return bad(format!(
                "--key-space-size {} needs keys of at least {digits} bytes; raise --key-size (now {})",
                self.key_space_size, self.key_size
            ));
        }
        if self.max_duration.is_zero() {
            return bad("the time limit must be positive".into());
        }
        Ok(())
    }

    /// The key generator of this workload.
    #[must_use]
    pub fn keys(&self) -> Keys {
        Keys { size: self.key_size, space: self.key_space_size, sequential: self.sequential_keys }
    }

    /// A value of `val_size` bytes.
    #[must_use]
    pub fn value(&self) -> Bytes {
        Bytes::from(vec![b'v'; self.val_size])
    }
}

/// Makes keys of a fixed size: the key number in decimal, zero-padded on the left to
/// the key size (so keys sort by number, and any tool can read them back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keys {
    /// Key size in bytes.
    pub size: usize,
    /// Distinct keys.
    pub space: u64,
    /// In order rather than random.
    pub sequential: bool,
}

impl Keys {
    fn digits(n: u64) -> usize {
        n.checked_ilog10().map_or(1, |d| d as usize + 1)
    }

    /// The key of number `n % space`.
    #[must_use]
    pub fn key(&self, n: u64) -> Bytes {
        let n = n % self.space.max(1);
        Bytes::from(format!("{n:0>width$}", width = self.size).into_bytes())
    }

    /// The key for the `i`-th request: `i % space` when sequential, else a key drawn
    /// from `rng`.
    pub fn next(&self, i: u64, rng: &mut SplitMix) -> Bytes {
        if self.sequential { self.key(i) } else { self.key(rng.next_u64()) }
    }
}

/// A small, fast, seeded random number generator (SplitMix64) for key choice.
#[derive(Clone, Debug)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator from `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_fixed_size_and_sort_by_number() {
        let keys = Keys { size: 8, space: 100_000, sequential: true };
        assert_eq!(&keys.key(42)[..], b"00000042");
        assert_eq!(&keys.key(100_042)[..], b"00000042", "wraps around the key space");
        let mut rng = SplitMix::new(1);
        assert_eq!(&keys.next(7, &mut rng)[..], b"00000007");
        assert!(keys.key(9) < keys.key(10));
    }

    #[test]
    fn random_keys_stay_in_the_key_space() {
        let keys = Keys { size: 4, space: 10, sequential: false };
        let mut rng = SplitMix::new(3);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..1000 {
            let k = keys.next(i, &mut rng);
            assert_eq!(k.len(), 4);
            let n: u64 = std::str::from_utf8(&k).unwrap().parse().unwrap();
            assert!(n < 10);
            seen.insert(n);
        }
        assert_eq!(seen.len(), 10, "every key of a small space is drawn");
    }

    #[test]
    fn bad_specs_are_refused_with_the_flag_named() {
        let ok = Spec { clients: 10, conns: 2, key_space_size: 1000, key_size: 3, ..Spec::default() };
        ok.validate().unwrap();
        for (spec, flag) in [
            (Spec { clients: 0, ..ok.clone() }, "--clients"),
            (Spec { conns: 0, ..ok.clone() }, "--conns"),
            (Spec { conns: 11, ..ok.clone() }, "--conns"),
            (Spec { total: 0, ..ok.clone() }, "--total"),
            (Spec { key_size: 0, ..ok.clone() }, "--key-size"),
            (Spec { key_space_size: 1001, ..ok.clone() }, "--key-size"),
            (Spec { key_space_size: 0, ..ok.clone() }, "--key-space-size"),
        ] {
            let err = spec.validate().unwrap_err().to_string();
            assert!(err.contains(flag), "{err:?} should name {flag}");
        }
    }

    #[test]
    fn consistency_parses_etcds_spelling() {
        assert_eq!(ReadConsistency::parse("l").unwrap(), ReadConsistency::Linearizable);
        assert_eq!(ReadConsistency::parse("s").unwrap(), ReadConsistency::Serializable);
        assert!(ReadConsistency::parse("x").is_err());
    }
}
