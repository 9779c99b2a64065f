//! A linearizability checker for KV histories, after Wing & Gong, Lowe, and Porcupine.
//!
//! Each key is checked on its own (linearizability is compositional, and every operation
//! touches one key). For one key the checker searches depth-first for an order of the
//! operations that respects real time (an operation that returned before another was
//! invoked comes first) and the register semantics, memoizing every (set of linearized
//! operations, value) pair it has explored so that no configuration is expanded twice.
//!
//! Indeterminate writes (the client timed out) get a return time of infinity and accept
//! any output: they may be placed anywhere after their invocation, and placing one after
//! every completed operation is the same as it never taking effect. Unanswered reads are
//! dropped: they change nothing. The search gives up after a step budget and reports
//! [`KeyVerdict::Unknown`] rather than running unboundedly.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ballot_core::{Instant, SeededRng};

use crate::fasthash::FastSet;
use crate::history::{History, Operation, Outcome};
use crate::kv::{Key, KvInput, KvOutput, Value};

/// The default number of search steps per key before giving up.
pub const DEFAULT_STEP_BUDGET: u64 = 1_000_000;

/// The verdict for one key's sub-history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyVerdict {
    /// A linearization exists.
    Linearizable,
    /// The search ran out of budget.
    Unknown,
    /// No linearization exists; the text explains where the search got stuck.
    Violation(String),
}

/// The verdict for a whole history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinReport {
    /// Keys checked.
    pub keys: u64,
    /// Operations fed to the checker (completed ones and indeterminate writes).
    pub ops: u64,
    /// Keys whose search ran out of budget.
    pub unknown: u64,
    /// The first key found not linearizable, with an explanation.
    pub violation: Option<String>,
}

/// Checks every key of `history`, stopping at the first violation.
#[must_use]
pub fn check_history(history: &History, budget: u64) -> LinReport {
    let mut by_key: BTreeMap<Key, Vec<&Operation>> = BTreeMap::new();
    for op in history.ops() {
        by_key.entry(op.key).or_default().push(op);
    }
    let mut report = LinReport::default();
    for (key, ops) in by_key {
        report.keys += 1;
        let prepared = prepare(&ops);
        report.ops += prepared.len() as u64;
        match check_ops(key, &prepared, budget) {
            KeyVerdict::Linearizable => {}
            KeyVerdict::Unknown => report.unknown += 1,
            KeyVerdict::Violation(why) => {
                report.violation = Some(why);
                break;
            }
        }
    }
    report
}

/// One operation as the search sees it.
#[derive(Clone, Debug)]
struct Op<'a> {
    source: &'a Operation,
    ret: Instant,
    output: Option<KvOutput>,
}

fn prepare<'a>(ops: &[&'a Operation]) -> Vec<Op<'a>> {
    ops.iter()
        .filter_map(|&source| match source.outcome {
            Outcome::Ok { at, output } => Some(Op { source, ret: at, output: Some(output) }),
            Outcome::Pending | Outcome::Indeterminate if !source.is_read() => {
                Some(Op { source, ret: Instant::MAX, output: None })
            }
            _ => None,
        })
        .collect()
}

/// The register model: the value after `input`, or `None` if `output` is impossible.
fn step(state: Option<Value>, input: KvInput, output: Option<KvOutput>) -> Option<Option<Value>> {
    match input {
        KvInput::Get => match output {
            None => Some(state),
            Some(KvOutput::Value(v)) if v == state => Some(state),
            Some(_) => None,
        },
        KvInput::Put(v) => matches!(output, None | Some(KvOutput::Done)).then_some(Some(v)),
        KvInput::Delete => matches!(output, None | Some(KvOutput::Done)).then_some(None),
        KvInput::Cas { expected, new } => {
            let hit = state == expected;
            match output {
                None => Some(if hit { Some(new) } else { state }),
                Some(KvOutput::Swapped(s)) if s == hit => Some(if hit { Some(new) } else { state }),
                Some(_) => None,
            }
        }
    }
}

/// A doubly linked list over event positions, with O(1) unlink and relink (dancing
/// links: relinking in reverse order of unlinking restores the list).
struct Links {
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl Links {
    /// `head -> 0 -> 1 -> ... -> m-1 -> tail`, with `head = m` and `tail = m + 1`.
    fn new(m: usize) -> Self {
        let (head, tail) = (m, m + 1);
        let mut next = vec![tail; m + 2];
        let mut prev = vec![head; m + 2];
        // Position i's neighbours are i - 1 and i + 1, with the sentinels at the ends.
        for i in 0..m {
            next[if i == 0 { head } else { i - 1 }] = i;
        }
        for (i, p) in prev.iter_mut().enumerate().take(m) {
            *p = if i == 0 { head } else { i - 1 };
        }
        next[if m == 0 { head } else { m - 1 }] = tail;
        prev[tail] = if m == 0 { head } else { m - 1 };
        Links { next, prev }
    }

    fn unlink(&mut self, x: usize) {
        let (p, q) = (self.prev[x], self.next[x]);
        self.next[p] = q;
        self.prev[q] = p;
    }

    fn relink(&mut self, x: usize) {
        let (p, q) = (self.prev[x], self.next[x]);
        self.next[p] = x;
        self.prev[q] = x;
    }
}

/// Checks the operations of one key (all starting from an absent key).
fn check_ops(key: Key, ops: &[Op<'_>], budget: u64) -> KeyVerdict {
    let completed = ops.iter().filter(|o| o.output.is_some()).count();
    if completed == 0 {
        return KeyVerdict::Linearizable;
    }
    // Events: a call and a return per operation. At equal times calls sort first, so
    // operations that touch at an instant count as concurrent (the lenient reading).
    let n = ops.len();
    let mut events: Vec<(Instant, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, o) in ops.iter().enumerate() {
        events.push((o.source.invoke, false, i));
        events.push((o.ret.max(o.source.invoke), true, i));
    }
    events.sort_unstable();
    let m = events.len();
    let (head, tail) = (m, m + 1);
    let mut links = Links::new(m);
    let mut ret_of = vec![0usize; n];
    for (pos, &(_, is_ret, op)) in events.iter().enumerate() {
        if is_ret {
            ret_of[op] = pos;
        }
    }

    // Zobrist hashing of the linearized set: two independent 64-bit keys per operation
    // make a 128-bit fingerprint, so the memo stores no bitsets.
    let mut rng = SeededRng::new(0x5EED_0F11_AEA1);
    let zob: Vec<(u64, u64)> = (0..n).map(|_| (rng.next_u64(), rng.next_u64())).collect();
    let mut hash = (0u64, 0u64);
    let mut memo: FastSet<(u64, u64, Option<Value>)> = FastSet::default();
    let mut done = 0usize;
    let mut state: Option<Value> = None;
    // (call event, state before it) for every linearized operation, in order.
    let mut stack: Vec<(usize, Option<Value>)> = Vec::new();
    // The deepest point reached: (answered ops placed, state, op that could not be placed).
    let mut best: (usize, Option<Value>, usize) = (0, None, 0);
    let mut entry = links.next[head];
    let mut steps = 0u64;

    loop {
        if done == completed {
            return KeyVerdict::Linearizable;
        }
        steps += 1;
        if steps > budget {
            return KeyVerdict::Unknown;
        }
        if entry != tail && !events[entry].1 {
            // A call: try to linearize its operation now.
            let op = events[entry].2;
            let o = &ops[op];
            if let Some(new_state) = step(state, o.source.input, o.output) {
                let h = (hash.0 ^ zob[op].0, hash.1 ^ zob[op].1);
                if memo.insert((h.0, h.1, new_state)) {
                    stack.push((entry, state));
                    state = new_state;
                    hash = h;
                    done += usize::from(o.output.is_some());
                    links.unlink(entry);
                    links.unlink(ret_of[op]);
                    entry = links.next[head];
                    continue;
                }
            }
            entry = links.next[entry];
            continue;
        }
        // A return of an operation not linearized yet (or the end): backtrack.
        if entry != tail && done >= best.0 {
            best = (done, state, events[entry].2);
        }
        let Some((call, old)) = stack.pop() else {
            return KeyVerdict::Violation(explain(key, ops, best, completed));
        };
        let op = events[call].2;
        hash = (hash.0 ^ zob[op].0, hash.1 ^ zob[op].1);
        done -= usize::from(ops[op].output.is_some());
        state = old;
        links.relink(ret_of[op]);
        links.relink(call);
        entry = links.next[call];
    }
}

fn describe(o: &Op<'_>) -> String {
    let ret = if o.ret == Instant::MAX { "never answered".to_owned() } else { format!("returned {:?}", o.ret) };
    let out = o.output.map_or_else(|| "?".to_owned(), |x| format!("{x:?}"));
    format!(
        "client {} {} -> {} (op {}, invoked {:?}, {})",
        o.source.client, o.source.input, out, o.source.id.0, o.source.invoke, ret
    )
}

fn explain(key: Key, ops: &[Op<'_>], best: (usize, Option<Value>, usize), completed: usize) -> String {
    let (placed, state, stuck) = best;
    let s = &ops[stuck];
    let mut text = format!(
        "key {key}: the {} operations on this key ({completed} answered) admit no linearizable order. \
         The longest consistent order places {placed} answered operations, leaving the key at {state:?}; \
         then {} cannot be placed.",
        ops.len(),
        describe(s),
    );
    let (from, to) = (s.source.invoke, s.ret);
    let mut overlapping: Vec<&Op<'_>> =
        ops.iter().filter(|o| o.source.invoke <= to && o.ret >= from && o.source.id != s.source.id).collect();
    overlapping.sort_by_key(|o| o.source.invoke);
    let shown = overlapping.len().min(12);
    let _ = write!(text, " Operations overlapping it ({} shown of {}):", shown, overlapping.len());
    for o in &overlapping[..shown] {
        let _ = write!(text, "\n    {}", describe(o));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpId;

    struct H(History);

    impl H {
        fn new() -> Self {
            H(History::new())
        }
        fn op(
            &mut self,
            client: usize,
            input: KvInput,
            invoke: u64,
            ret: Option<u64>,
            output: Option<KvOutput>,
        ) -> OpId {
            let id = self.0.invoke(client, 1, input, Instant::from_millis(invoke));
            let outcome = match (ret, output) {
                (Some(r), Some(o)) => Outcome::Ok { at: Instant::from_millis(r), output: o },
                _ => Outcome::Indeterminate,
            };
            self.0.resolve(id, outcome);
            id
        }
    }

    fn verdict(h: &H) -> LinReport {
        check_history(&h.0, DEFAULT_STEP_BUDGET)
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let mut h = H::new();
        h.op(0, KvInput::Put(1), 0, Some(1), Some(KvOutput::Done));
        h.op(0, KvInput::Get, 2, Some(3), Some(KvOutput::Value(Some(1))));
        h.op(0, KvInput::Cas { expected: Some(1), new: 2 }, 4, Some(5), Some(KvOutput::Swapped(true)));
        h.op(0, KvInput::Delete, 6, Some(7), Some(KvOutput::Done));
        h.op(0, KvInput::Get, 8, Some(9), Some(KvOutput::Value(None)));
        let r = verdict(&h);
        assert_eq!(r.violation, None);
        assert_eq!((r.keys, r.ops, r.unknown), (1, 5, 0));
    }

    #[test]
    fn stale_read_is_caught_with_the_key_and_operation() {
        let mut h = H::new();
        h.op(0, KvInput::Put(1), 0, Some(1), Some(KvOutput::Done));
        h.op(1, KvInput::Put(2), 2, Some(3), Some(KvOutput::Done));
        h.op(2, KvInput::Get, 4, Some(5), Some(KvOutput::Value(Some(1))));
        let r = verdict(&h);
        let why = r.violation.expect("a stale read must be reported");
        assert!(why.starts_with("key 1:"), "{why}");
        assert!(why.contains("client 2 get() -> Value(Some(1))"), "{why}");
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        let mut h = H::new();
        h.op(0, KvInput::Put(1), 0, Some(10), Some(KvOutput::Done));
        h.op(1, KvInput::Put(2), 1, Some(9), Some(KvOutput::Done));
        h.op(2, KvInput::Get, 2, Some(8), Some(KvOutput::Value(Some(1))));
        h.op(3, KvInput::Get, 11, Some(12), Some(KvOutput::Value(Some(2))));
        // Put(2) last, the first read in between: 2, 1, get, ..., fine? No: get(1) needs
        // Put(1) after Put(2) or before it with Put(2) later; the final read sees 2, so
        // Put(1), get -> 1, Put(2), get -> 2.
        assert_eq!(verdict(&h).violation, None);
    }

    #[test]
    fn indeterminate_write_may_or_may_not_take_effect() {
        let mut h = H::new();
        h.op(0, KvInput::Put(1), 0, Some(1), Some(KvOutput::Done));
        h.op(1, KvInput::Put(2), 2, None, None);
        h.op(2, KvInput::Get, 3, Some(4), Some(KvOutput::Value(Some(1))));
        h.op(2, KvInput::Get, 5, Some(6), Some(KvOutput::Value(Some(2))));
        h.op(2, KvInput::Get, 7, Some(8), Some(KvOutput::Value(Some(2))));
        assert_eq!(verdict(&h).violation, None);
        // ...but it cannot take effect before it was invoked,
        let mut h = H::new();
        h.op(2, KvInput::Get, 0, Some(1), Some(KvOutput::Value(Some(2))));
        h.op(1, KvInput::Put(2), 2, None, None);
        assert!(verdict(&h).violation.is_some());
        // ...nor be undone once observed.
        let mut h = H::new();
        h.op(0, KvInput::Put(1), 0, Some(1), Some(KvOutput::Done));
        h.op(1, KvInput::Put(2), 2, None, None);
        h.op(2, KvInput::Get, 3, Some(4), Some(KvOutput::Value(Some(2))));
        h.op(2, KvInput::Get, 5, Some(6), Some(KvOutput::Value(Some(1))));
        assert!(verdict(&h).violation.is_some());
    }

    #[test]
    fn cas_results_must_match_the_state() {
        let mut h = H::new();
        h.op(0, KvInput::Put(1), 0, Some(1), Some(KvOutput::Done));
        h.op(1, KvInput::Cas { expected: Some(1), new: 3 }, 2, Some(3), Some(KvOutput::Swapped(false)));
        assert!(verdict(&h).violation.is_some());
        // An indeterminate CAS whose effect is observed.
        let mut h = H::new();
        h.op(0, KvInput::Put(1), 0, Some(1), Some(KvOutput::Done));
        h.op(1, KvInput::Cas { expected: Some(1), new: 3 }, 2, None, None);
        h.op(2, KvInput::Get, 4, Some(5), Some(KvOutput::Value(Some(3))));
        assert_eq!(verdict(&h).violation, None);
    }

    #[test]
    fn unanswered_reads_and_failed_ops_are_ignored() {
        let mut h = H::new();
        h.op(0, KvInput::Put(1), 0, Some(1), Some(KvOutput::Done));
        h.op(1, KvInput::Get, 2, None, None);
        let id = h.0.invoke(3, 1, KvInput::Put(9), Instant::from_millis(2));
        h.0.resolve(id, Outcome::Failed);
        h.op(2, KvInput::Get, 3, Some(4), Some(KvOutput::Value(Some(1))));
        let r = verdict(&h);
        assert_eq!(r.violation, None);
        assert_eq!(r.ops, 2);
    }

    #[test]
    fn keys_are_checked_independently() {
        let mut hist = History::new();
        let a = hist.invoke(0, 1, KvInput::Put(1), Instant::from_millis(0));
        hist.resolve(a, Outcome::Ok { at: Instant::from_millis(1), output: KvOutput::Done });
        let b = hist.invoke(0, 2, KvInput::Get, Instant::from_millis(2));
        hist.resolve(b, Outcome::Ok { at: Instant::from_millis(3), output: KvOutput::Value(None) });
        let r = check_history(&hist, DEFAULT_STEP_BUDGET);
        assert_eq!((r.keys, r.violation), (2, None));
        let c = hist.invoke(0, 2, KvInput::Get, Instant::from_millis(4));
        hist.resolve(c, Outcome::Ok { at: Instant::from_millis(5), output: KvOutput::Value(Some(1)) });
        let why = check_history(&hist, DEFAULT_STEP_BUDGET).violation.expect("key 2 never held 1");
        assert!(why.starts_with("key 2:"), "{why}");
    }

    #[test]
    fn budget_exhaustion_reports_unknown() {
        // Concurrent indeterminate writes and a read of a value nobody wrote: proving the
        // violation means trying every subset of the writes.
        let history = |writers: usize| {
            let mut h = H::new();
            for c in 0..writers {
                h.op(c, KvInput::Put(c as u64 + 1), 0, None, None);
            }
            h.op(99, KvInput::Get, 1, Some(2), Some(KvOutput::Value(Some(1000))));
            h
        };
        let r = check_history(&history(40).0, 10_000);
        assert_eq!((r.unknown, r.violation), (1, None));
        // With few enough writers the memoized search proves the violation.
        let r = check_history(&history(10).0, DEFAULT_STEP_BUDGET);
        assert!(r.violation.is_some(), "{r:?}");
    }

    #[test]
    fn random_linearizable_histories_pass() {
        // Build histories from a real sequential execution: each operation takes effect
        // at a random point inside its random interval, outputs come from the model.
        let mut rng = SeededRng::new(3);
        for round in 0..20 {
            let mut h = H::new();
            let mut planned = Vec::new();
            for i in 0..120u64 {
                let invoke = rng.gen_range(0..2_000);
                let len = rng.gen_range(1..60);
                let point = invoke + rng.gen_range(0..len);
                let input = match rng.gen_range(0..4) {
                    0 => KvInput::Get,
                    1 => KvInput::Put(i + 1),
                    2 => KvInput::Cas { expected: Some(rng.gen_range(1..i + 2)), new: i + 1 },
                    _ => KvInput::Delete,
                };
                planned.push((point, invoke, invoke + len, input, i as usize));
            }
            planned.sort_unstable_by_key(|p| (p.0, p.4));
            let mut state = None;
            for (_, invoke, ret, input, client) in planned {
                let mut kv = crate::kv::KvStore::new();
                if let Some(v) = state {
                    kv.apply(1, &crate::kv::KvCommand { op: 0, key: 1, input: KvInput::Put(v) });
                }
                let out = kv.apply(2, &crate::kv::KvCommand { op: 0, key: 1, input });
                state = kv.get(1);
                let lost = !matches!(input, KvInput::Get) && rng.gen_bool(0.1);
                if lost {
                    h.op(client, input, invoke, None, None);
                } else {
                    h.op(client, input, invoke, Some(ret), Some(out));
                }
            }
            let r = verdict(&h);
            assert_eq!((r.unknown, r.violation), (0, None), "round {round}");
        }
    }
}
