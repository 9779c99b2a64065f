//! The configuration service (`ballot-config`): sets, gets and deletes (checked for
//! linearizability like the database), and watchers that must see every change of
//! their prefix exactly once and in order across failovers and reconnects.

use std::collections::BTreeMap;

use ballot_config::{ConfigEvent, ConfigRequest, ConfigResponse, ConfigService, HistoryLimit, WatchCursor};
use ballot_core::service::{Consistency, Rejection, StateMachine};
use ballot_core::{Instant, SeededRng};
use ballot_wire::ClientError;
use bytes::Bytes;

use super::{PlannedOp, ServiceView, ServiceViolation, Workload};
use crate::kv::{KvInput, KvOutput};
use crate::sim::ClientConfig;

/// The namespace the clients use.
const NAMESPACE: &str = "app";

/// What one watcher watches and what it has seen.
#[derive(Clone, Debug)]
struct Watcher {
    /// Where it stands (the same resume rule as `ballot-client`'s `ConfigWatch`).
    cursor: WatchCursor,
    /// The key (or prefix) it watches.
    key_or_prefix: String,
    prefix: bool,
    /// The revision it started from.
    start: u64,
    /// Every event it delivered, in order.
    delivered: Vec<ConfigEvent>,
    /// Ranges of revisions it was told were compacted away: `(from, to)`, `to` exclusive.
    compacted: Vec<(u64, u64)>,
    /// The revision of the last event of the current stream (a stream must be in order).
    stream_last: Option<u64>,
}

/// Clients of the configuration service on a few keys of one namespace, and watchers on
/// the whole namespace and on single keys.
#[derive(Clone, Debug)]
pub struct ConfigWorkload {
    next_value: u64,
    watchers: Vec<Watcher>,
    /// The first stream seen out of order, if any.
    disorder: Option<String>,
}

impl Default for ConfigWorkload {
    fn default() -> Self {
        let watcher = |key: &str, prefix: bool| Watcher {
            cursor: WatchCursor::new(NAMESPACE, key, prefix, 1),
            key_or_prefix: key.to_owned(),
            prefix,
            start: 1,
            delivered: Vec::new(),
            compacted: Vec::new(),
            stream_last: None,
        };
        ConfigWorkload {
            next_value: 0,
            watchers: vec![watcher("", true), watcher("k", true), watcher("k0", false)],
            disorder: None,
        }
    }
}

fn key(k: u64) -> String {
    format!("k{k}")
}

impl Workload for ConfigWorkload {
    type Service = ConfigService;

    fn name(&self) -> &'static str {
        "config"
    }

    /// A short history (200 changes): the simulator snapshots and digests the whole
    /// state often, and a watcher that falls behind then meets compaction.
    fn service(&self) -> ConfigService {
        ConfigService::with_history_limit(HistoryLimit { max_events: 200, max_bytes: 1 << 20 })
    }

    fn next_op(
        &mut self,
        rng: &mut SeededRng,
        _client: usize,
        _now: Instant,
        cfg: &ClientConfig,
    ) -> Option<PlannedOp<ConfigRequest>> {
        let k = rng.gen_range(0..cfg.keys);
        let (request, input) = if rng.gen_bool(cfg.read_ratio) {
            let request =
                ConfigRequest::Get { namespace: NAMESPACE.into(), key: key(k), consistency: Consistency::Linearizable };
            (request, KvInput::Get)
        } else if rng.gen_range(0..8) == 0 {
            (ConfigRequest::Delete { namespace: NAMESPACE.into(), key: key(k) }, KvInput::Delete)
        } else {
            self.next_value += 1;
            let value = Bytes::from(self.next_value.to_string());
            (ConfigRequest::Set { namespace: NAMESPACE.into(), key: key(k), value }, KvInput::Put(self.next_value))
        };
        Some(PlannedOp { request, model: Some((k, input)) })
    }

    fn model_output(&self, response: &ConfigResponse) -> Option<KvOutput> {
        match response {
            ConfigResponse::Get { entry, .. } => {
                Some(KvOutput::Value(entry.as_ref().and_then(|e| std::str::from_utf8(&e.value).ok()?.parse().ok())))
            }
            ConfigResponse::Set { .. } | ConfigResponse::Delete { .. } => Some(KvOutput::Done),
            _ => None,
        }
    }

    fn effect_key(&self, request: &ConfigRequest) -> Option<Vec<u8>> {
        match request {
            ConfigRequest::Set { value, .. } => Some(value.to_vec()),
            _ => None,
        }
    }

    fn watchers(&self) -> usize {
        self.watchers.len()
    }

    fn watch_request(&self, w: usize) -> Option<ConfigRequest> {
        Some(self.watchers.get(w)?.cursor.request())
    }

    fn watch_event(&mut self, w: usize, event: ConfigEvent, _now: Instant) {
        let Some(watcher) = self.watchers.get_mut(w) else { return };
        // One stream delivers its revisions in increasing order (the cursor then drops what
        // an earlier stream already delivered).
        if let Some(last) = watcher.stream_last
            && event.revision <= last
            && self.disorder.is_none()
        {
            self.disorder = Some(format!(
                "watcher {w} ({}{}): a stream sent revision {} after revision {last}",
                watcher.key_or_prefix,
                if watcher.prefix { "*" } else { "" },
                event.revision
            ));
        }
        watcher.stream_last = Some(event.revision);
        if watcher.cursor.accept(&event) {
            watcher.delivered.push(event);
        }
    }

    fn watch_ended(&mut self, w: usize, error: Option<&ClientError>, _now: Instant) {
        let Some(watcher) = self.watchers.get_mut(w) else { return };
        watcher.stream_last = None;
        if let Some(ClientError::Compacted { compact_revision }) = error {
            let from = watcher.cursor.next_revision();
            let rejection = Rejection::Compacted { compact_revision: *compact_revision };
            if let Some(to) = watcher.cursor.skip_compacted(&rejection) {
                watcher.compacted.push((from, to));
            }
        }
    }

    fn check(&mut self, view: &ServiceView<'_, ConfigService>) -> Result<(), ServiceViolation> {
        if let Some(why) = &self.disorder {
            return Err(("WatchOrder", why.clone()));
        }
        if view.final_check {
            self.check_complete(view)?;
        }
        Ok(())
    }
}

impl ConfigWorkload {
    /// **Watch completeness**: every change of a watcher's keys from its start up to the
    /// last revision it saw was delivered, unless it was told that part of the history
    /// was compacted. The changes are the service's own history, read from the replica
    /// that has applied the most.
    fn check_complete(&self, view: &ServiceView<'_, ConfigService>) -> Result<(), ServiceViolation> {
        let Some(service) = view.services.iter().filter_map(|(_, s)| *s).max_by_key(|s| s.revision()) else {
            return Ok(());
        };
        for (w, watcher) in self.watchers.iter().enumerate() {
            let Some(last) = watcher.delivered.last().map(|e| e.revision) else { continue };
            let request = ConfigRequest::Watch {
                namespace: NAMESPACE.into(),
                key_or_prefix: watcher.key_or_prefix.clone(),
                prefix: watcher.prefix,
                start_revision: watcher.start,
            };
            // History the service no longer keeps cannot be compared.
            let Ok(history) = service.watch_start(&request) else { continue };
            let expected: BTreeMap<u64, &ConfigEvent> = history
                .iter()
                .filter(|e| e.revision <= last)
                .filter(|e| !watcher.compacted.iter().any(|&(from, to)| e.revision >= from && e.revision < to))
                .map(|e| (e.revision, e))
                .collect();
            let got: BTreeMap<u64, &ConfigEvent> = watcher.delivered.iter().map(|e| (e.revision, e)).collect();
            if let Some((rev, missing)) = expected.iter().find(|(rev, _)| !got.contains_key(rev)) {
                return Err((
                    "WatchCompleteness",
                    format!(
                        "watcher {w} ({}{}) never got revision {rev} ({:?} {}), though it got revision {last}",
                        watcher.key_or_prefix,
                        if watcher.prefix { "*" } else { "" },
                        missing.kind,
                        missing.key
                    ),
                ));
            }
            if let Some((rev, e)) = got.iter().find(|(rev, e)| expected.get(rev).is_some_and(|x| x != *e)) {
                return Err((
                    "WatchCompleteness",
                    format!("watcher {w} got revision {rev} as {e:?}, but the service's history has it otherwise"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use ballot_config::EventKind;

    use super::*;
    use crate::history::History;

    fn event(revision: u64, key: &str) -> ConfigEvent {
        ConfigEvent {
            revision,
            kind: EventKind::Put,
            namespace: NAMESPACE.into(),
            key: key.into(),
            value: Bytes::from("v"),
        }
    }

    fn service_with(n: u64) -> ConfigService {
        let mut s = ConfigService::new();
        for i in 1..=n {
            let set = ConfigRequest::Set { namespace: NAMESPACE.into(), key: key(i % 2), value: Bytes::from("v") };
            s.apply(i, set);
        }
        s
    }

    fn check(w: &mut ConfigWorkload, service: &ConfigService) -> Result<(), ServiceViolation> {
        let history = History::new();
        let view = ServiceView {
            now: Instant::ZERO,
            services: vec![(ballot_core::NodeId(1), Some(service))],
            history: &history,
            final_check: true,
        };
        w.check(&view)
    }

    #[test]
    fn a_watcher_that_misses_a_revision_or_gets_one_twice_is_caught() {
        let service = service_with(4);
        let mut w = ConfigWorkload::default();
        // The whole-namespace watcher gets revisions 1, 2 and 4: 3 is missing.
        for rev in [1, 2, 4] {
            w.watch_event(0, event(rev, &key(rev % 2)), Instant::ZERO);
        }
        let (name, why) = check(&mut w, &service).expect_err("a gap");
        assert_eq!(name, "WatchCompleteness");
        assert!(why.contains("never got revision 3"), "{why}");
        // Told it was compacted, the gap is legitimate.
        let mut w = ConfigWorkload::default();
        w.watch_event(0, event(1, "k1"), Instant::ZERO);
        w.watch_ended(0, Some(&ClientError::Compacted { compact_revision: 4 }), Instant::ZERO);
        w.watch_event(0, event(4, "k0"), Instant::ZERO);
        check(&mut w, &service).expect("compaction reported");
        // A stream that goes backwards is caught.
        let mut w = ConfigWorkload::default();
        w.watch_event(0, event(2, "k0"), Instant::ZERO);
        w.watch_event(0, event(2, "k0"), Instant::ZERO);
        let (name, why) = check(&mut w, &service).expect_err("a repeat within one stream");
        assert_eq!(name, "WatchOrder");
        assert!(why.contains("revision 2 after revision 2"), "{why}");
        // A new stream may replay what an earlier one delivered.
        let mut w = ConfigWorkload::default();
        w.watch_event(0, event(1, "k1"), Instant::ZERO);
        w.watch_ended(0, None, Instant::ZERO);
        w.watch_event(0, event(1, "k1"), Instant::ZERO);
        w.watch_event(0, event(2, "k0"), Instant::ZERO);
        w.watch_event(0, event(3, "k1"), Instant::ZERO);
        w.watch_event(0, event(4, "k0"), Instant::ZERO);
        check(&mut w, &service).expect("a replay after a reconnect is not a repeat");
    }
}
