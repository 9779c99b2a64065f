//! The database (`ballot-kv`) under gets, puts, compare-and-swaps and deletes, its
//! histories checked for linearizability.

use ballot_core::service::Consistency;
use ballot_core::{Instant, SeededRng};
use ballot_kv::{Compare, KvRequest, KvResponse, KvStore};
use bytes::Bytes;

use super::{PlannedOp, Workload};
use crate::kv::{Key, KvInput, KvOutput, Value};
use crate::sim::ClientConfig;

/// Clients of the key-value database on a few integer keys (`k0`, `k1`, …) with unique
/// integer values, so that every read identifies the write it saw.
#[derive(Clone, Debug, Default)]
pub struct KvWorkload {
    next_value: Value,
}

/// The database key of model key `k`.
#[must_use]
pub fn key_bytes(k: Key) -> Bytes {
    Bytes::from(format!("k{k}"))
}

/// The database value of model value `v`.
#[must_use]
pub fn value_bytes(v: Value) -> Bytes {
    Bytes::from(v.to_string())
}

/// The model value a database value stands for.
fn model_value(b: &Bytes) -> Option<Value> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// The database request of a model operation.
#[must_use]
pub fn kv_request(key: Key, input: KvInput) -> KvRequest {
    let key = key_bytes(key);
    match input {
        KvInput::Get => KvRequest::Get { key, consistency: Consistency::Linearizable },
        KvInput::Put(v) => KvRequest::Put { key, value: value_bytes(v), prev_kv: false },
        KvInput::Cas { expected, new } => KvRequest::CompareAndSwap {
            key,
            compare: expected.map_or(Compare::Absent, |v| Compare::Value(value_bytes(v))),
            value: value_bytes(new),
        },
        KvInput::Delete => KvRequest::Delete { key, prev_kv: false },
    }
}

impl KvWorkload {
    /// A fresh unique value.
    pub fn fresh_value(&mut self) -> Value {
        self.next_value += 1;
        self.next_value
    }
}

impl Workload for KvWorkload {
    type Service = KvStore;

    fn name(&self) -> &'static str {
        "kv"
    }

    fn service(&self) -> KvStore {
        KvStore::new()
    }

    fn next_op(
        &mut self,
        rng: &mut SeededRng,
        _client: usize,
        _now: Instant,
        cfg: &ClientConfig,
    ) -> Option<PlannedOp<KvRequest>> {
        let key = rng.gen_range(0..cfg.keys);
        let input = if rng.gen_bool(cfg.read_ratio) {
            KvInput::Get
        } else {
            let value = self.fresh_value();
            match rng.gen_range(0..10) {
                0..=4 => KvInput::Put(value),
                5..=8 => {
                    // Expect a recent value (or absence) so that some CAS succeed.
                    let back = rng.gen_range(1..6);
                    let expected = value.checked_sub(back).filter(|&v| v > 0);
                    KvInput::Cas { expected, new: value }
                }
                _ => KvInput::Delete,
            }
        };
        Some(PlannedOp { request: kv_request(key, input), model: Some((key, input)) })
    }

    fn model_output(&self, response: &KvResponse) -> Option<KvOutput> {
        match response {
            KvResponse::Get { kv, .. } => Some(KvOutput::Value(kv.as_ref().and_then(|kv| model_value(&kv.value)))),
            KvResponse::Put { .. } | KvResponse::Delete { .. } => Some(KvOutput::Done),
            KvResponse::CompareAndSwap { succeeded, .. } => Some(KvOutput::Swapped(*succeeded)),
            _ => None,
        }
    }

    fn effect_key(&self, request: &KvRequest) -> Option<Vec<u8>> {
        match request {
            KvRequest::Put { value, .. } | KvRequest::CompareAndSwap { value, .. } => Some(value.to_vec()),
            _ => None,
        }
    }
}
