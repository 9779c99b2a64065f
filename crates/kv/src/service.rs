//! [`KvStore`] as a replicated service: routing, validation, apply and query.

use ballot_core::service::{Header, Rejection, RestoreError, Route, StateMachine};
use bytes::Bytes;

use crate::{Compare, KvEvent, KvRequest, KvResponse, KvStore, MAX_KEY_SIZE, MAX_RANGE_LIMIT, MAX_VALUE_SIZE};

fn check_key(key: &[u8]) -> Result<(), Rejection> {
    if key.is_empty() {
        return Err(Rejection::Invalid("the key is empty".into()));
    }
    Rejection::check_size("key", key.len(), MAX_KEY_SIZE)
}

fn check_compare(compare: &Compare) -> Result<(), Rejection> {
    match compare {
        Compare::Value(v) => Rejection::check_size("compared value", v.len(), MAX_VALUE_SIZE),
        Compare::ModRevision(_) | Compare::Version(_) | Compare::Absent => Ok(()),
    }
}

impl KvStore {
    fn header(&self) -> Header {
        Header { revision: self.revision() }
    }
}

impl StateMachine for KvStore {
    type Request = KvRequest;
    type Response = KvResponse;
    type Event = KvEvent;

    fn route(request: &KvRequest) -> Route {
        match request {
            KvRequest::Get { consistency, .. } | KvRequest::Range { consistency, .. } => Route::Read(*consistency),
            KvRequest::Put { .. }
            | KvRequest::Delete { .. }
            | KvRequest::CompareAndSwap { .. }
            | KvRequest::CompareAndDelete { .. }
            | KvRequest::DeletePrefix { .. } => Route::Write,
        }
    }

    fn operation(request: &KvRequest) -> &'static str {
        match request {
            KvRequest::Put { .. } => "put",
            KvRequest::Get { .. } => "get",
            KvRequest::Delete { .. } => "delete",
            KvRequest::CompareAndSwap { .. } => "compare_and_swap",
            KvRequest::CompareAndDelete { .. } => "compare_and_delete",
            KvRequest::Range { .. } => "range",
            KvRequest::DeletePrefix { .. } => "delete_prefix",
        }
    }

    fn validate(&self, request: &KvRequest) -> Result<(), Rejection> {
        match request {
            KvRequest::Put { key, value, .. } => {
                check_key(key)?;
                Rejection::check_size("value", value.len(), MAX_VALUE_SIZE)
            }
            KvRequest::CompareAndSwap { key, compare, value } => {
                check_key(key)?;
                check_compare(compare)?;
                Rejection::check_size("value", value.len(), MAX_VALUE_SIZE)
            }
            KvRequest::Get { key, .. } | KvRequest::Delete { key, .. } => check_key(key),
            KvRequest::CompareAndDelete { key, compare } => {
                check_key(key)?;
                check_compare(compare)
            }
            KvRequest::Range { prefix, after, limit, .. } => {
                Rejection::check_size("prefix", prefix.len(), MAX_KEY_SIZE)?;
                if let Some(after) = after {
                    Rejection::check_size("range cursor", after.len(), MAX_KEY_SIZE)?;
                }
                if *limit > MAX_RANGE_LIMIT {
                    return Err(Rejection::Invalid(format!(
                        "range limit {limit} exceeds the maximum of {MAX_RANGE_LIMIT}; page with `after` instead"
                    )));
                }
                Ok(())
            }
            KvRequest::DeletePrefix { prefix } => {
                if prefix.is_empty() {
                    return Err(Rejection::Invalid(
                        "an empty prefix would delete every key; delete with a non-empty prefix".into(),
                    ));
                }
                Rejection::check_size("prefix", prefix.len(), MAX_KEY_SIZE)
            }
        }
    }

    fn apply(&mut self, _index: u64, request: KvRequest) -> (KvResponse, Vec<KvEvent>) {
        if let Err(rejection) = self.validate(&request) {
            return (KvResponse::Rejected(rejection), Vec::new());
        }
        let response = match request {
            KvRequest::Put { key, value, prev_kv } => {
                let prev = self.put(key, value);
                KvResponse::Put { header: self.header(), prev_kv: prev.filter(|_| prev_kv) }
            }
            KvRequest::Delete { key, prev_kv } => {
                let prev = self.delete(&key);
                KvResponse::Delete { header: self.header(), deleted: prev.is_some(), prev_kv: prev.filter(|_| prev_kv) }
            }
            KvRequest::CompareAndSwap { key, compare, value } => {
                if self.compare(&key, &compare) {
                    self.put(key, value);
                    KvResponse::CompareAndSwap { header: self.header(), succeeded: true, kv: None }
                } else {
                    KvResponse::CompareAndSwap { header: self.header(), succeeded: false, kv: self.get(&key) }
                }
            }
            KvRequest::CompareAndDelete { key, compare } => {
                if self.compare(&key, &compare) {
                    self.delete(&key);
                    KvResponse::CompareAndDelete { header: self.header(), succeeded: true, kv: None }
                } else {
                    KvResponse::CompareAndDelete { header: self.header(), succeeded: false, kv: self.get(&key) }
                }
            }
            KvRequest::DeletePrefix { prefix } => {
                let deleted = self.delete_prefix(&prefix);
                KvResponse::DeletePrefix { header: self.header(), deleted }
            }
            read @ (KvRequest::Get { .. } | KvRequest::Range { .. }) => self.query(&read),
        };
        (response, Vec::new())
    }

    fn query(&self, request: &KvRequest) -> KvResponse {
        match request {
            KvRequest::Get { key, .. } => KvResponse::Get { header: self.header(), kv: self.get(key) },
            KvRequest::Range { prefix, after, limit, .. } => {
                let limit = if *limit == 0 { MAX_RANGE_LIMIT } else { (*limit).min(MAX_RANGE_LIMIT) };
                let page = self.range(prefix, after.as_ref().map(Bytes::as_ref), limit as usize);
                KvResponse::Range { header: self.header(), kvs: page.kvs, more: page.more, count: page.count }
            }
            _ => KvResponse::Rejected(Rejection::Invalid(format!(
                "`{}` is a write: it must be ordered through the log, not served as a read",
                Self::operation(request)
            ))),
        }
    }

    fn watch_start(&self, _request: &KvRequest) -> Result<Vec<KvEvent>, Rejection> {
        Err(Rejection::Invalid("the database has no watch streams; use the configuration service to watch keys".into()))
    }

    fn watch_matches(&self, _request: &KvRequest, event: &KvEvent) -> bool {
        match *event {}
    }

    fn snapshot(&self) -> Vec<u8> {
        self.to_snapshot()
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), RestoreError> {
        *self = KvStore::from_snapshot(data).map_err(|e| RestoreError(e.to_string()))?;
        Ok(())
    }
}
