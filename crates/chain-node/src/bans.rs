//! Peer conduct and bans: misbehaviour points and message-rate windows per peer, and
//! the ban list by key and listening address.
//!
//! Both take the time as an argument, so the rules are tested without waiting.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::api::BanInfo;

/// Misbehaviour points at which a peer is banned (Bitcoin's 100).
pub(crate) const BAN_SCORE: u32 = 100;
/// Messages a peer may send in one second before it counts as a flood.
pub(crate) const MAX_MESSAGES_PER_SEC: u32 = 2_000;

/// A ban target as stored: a key in lower-case hex, or an address as `ip:port`.
pub(crate) fn normalize_target(target: &str) -> String {
    let t = target.trim();
    match t.parse::<SocketAddr>() {
        Ok(addr) => addr.to_string(),
        Err(_) => t.to_ascii_lowercase(),
    }
}

/// One peer's conduct: its misbehaviour score and its message rate.
#[derive(Clone, Debug)]
pub(crate) struct Conduct {
    score: u32,
    window_start: Instant,
    window_count: u32,
}

impl Conduct {
    /// A peer that has done nothing yet.
    pub(crate) fn new(now: Instant) -> Self {
        Conduct { score: 0, window_start: now, window_count: 0 }
    }

    /// The points gathered so far.
    pub(crate) fn score(&self) -> u32 {
        self.score
    }

    /// Adds `points`; true when the peer has reached [`BAN_SCORE`] and must be banned.
    pub(crate) fn add(&mut self, points: u32) -> bool {
        self.score = self.score.saturating_add(points);
        self.score >= BAN_SCORE
    }

    /// Counts one message received at `now`; true when it exceeds
    /// [`MAX_MESSAGES_PER_SEC`] in the current one-second window (a flood).
    pub(crate) fn count_message(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.window_count = 0;
        }
        self.window_count += 1;
        self.window_count > MAX_MESSAGES_PER_SEC
    }
}

#[derive(Clone, Debug)]
struct Ban {
    until: Instant,
    reason: String,
}

/// Keys and addresses refused until a time.
#[derive(Clone, Debug, Default)]
pub(crate) struct Bans {
    map: HashMap<String, Ban>,
}

impl Bans {
    /// Bans `target` (a key in hex or an address) until `until`. A longer ban in force
    /// is kept.
    pub(crate) fn ban(&mut self, target: &str, until: Instant, reason: &str) {
        let target = normalize_target(target);
        let ban = Ban { until, reason: reason.to_owned() };
        match self.map.get_mut(&target) {
            Some(old) if old.until >= until => {}
            Some(old) => *old = ban,
            None => {
                self.map.insert(target, ban);
            }
        }
    }

    /// Lifts the ban on `target`; false if there was none.
    pub(crate) fn unban(&mut self, target: &str) -> bool {
        self.map.remove(&normalize_target(target)).is_some()
    }

    /// Why a peer with `key` (hex) reachable at `addrs` is banned at `now`, if it is.
    pub(crate) fn check(&self, key: &str, addrs: &[SocketAddr], now: Instant) -> Option<&str> {
        let live = |t: &str| self.map.get(t).filter(|b| b.until > now).map(|b| b.reason.as_str());
        live(&key.to_ascii_lowercase()).or_else(|| addrs.iter().find_map(|a| live(&a.to_string())))
    }

    /// Forgets the bans that ended before `now`.
    pub(crate) fn expire(&mut self, now: Instant) {
        self.map.retain(|_, b| b.until > now);
    }

    /// The bans in force at `now`, by target.
    pub(crate) fn list(&self, now: Instant) -> Vec<BanInfo> {
        let mut list: Vec<BanInfo> = self
            .map
            .iter()
            .filter(|(_, b)| b.until > now)
            .map(|(t, b)| BanInfo {
                target: t.clone(),
                remaining_secs: b.until.duration_since(now).as_secs(),
                reason: b.reason.clone(),
            })
            .collect();
        list.sort_by(|a, b| a.target.cmp(&b.target));
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AB00000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn points_add_up_to_a_ban() {
        let mut c = Conduct::new(Instant::now());
        assert!(!c.add(50), "an undecodable message alone is not enough");
        assert!(!c.add(20));
        assert!(!c.add(10));
        assert!(c.add(20), "100 points ban");
        assert_eq!(c.score(), 100);
        let mut c = Conduct::new(Instant::now());
        assert!(c.add(BAN_SCORE), "an invalid block bans at once");
        assert!(c.add(u32::MAX), "no overflow");
    }

    #[test]
    fn a_flood_is_more_than_the_rate_within_one_second() {
        let t0 = Instant::now();
        let mut c = Conduct::new(t0);
        for i in 0..MAX_MESSAGES_PER_SEC {
            assert!(!c.count_message(t0 + Duration::from_millis(u64::from(i) % 900)), "message {i}");
        }
        assert!(c.count_message(t0 + Duration::from_millis(950)), "one more within the second");
        // A new window starts after a second: the same rate spread out is fine.
        let mut c = Conduct::new(t0);
        for s in 0..5u64 {
            for _ in 0..MAX_MESSAGES_PER_SEC {
                assert!(!c.count_message(t0 + Duration::from_secs(s)));
            }
        }
    }

    #[test]
    fn bans_match_key_or_address_and_expire() {
        let t0 = Instant::now();
        let addr: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        let other: SocketAddr = "127.0.0.1:7002".parse().unwrap();
        let mut bans = Bans::default();
        bans.ban(KEY, t0 + Duration::from_secs(60), "invalid block");
        bans.ban(" 127.0.0.1:7001 ", t0 + Duration::from_secs(10), "operator");
        // The key matches whatever the case; the address whatever the key.
        assert_eq!(bans.check(&KEY.to_ascii_lowercase(), &[], t0), Some("invalid block"));
        assert_eq!(bans.check("cd", &[other, addr], t0), Some("operator"));
        assert_eq!(bans.check("cd", &[other], t0), None);
        // Expiry: the address ban ends first; the list shows what is left.
        let later = t0 + Duration::from_secs(30);
        assert_eq!(bans.check("cd", &[addr], later), None);
        bans.expire(later);
        let list = bans.list(later);
        assert_eq!(list.len(), 1);
        assert_eq!((list[0].target.as_str(), list[0].remaining_secs), (KEY.to_ascii_lowercase().as_str(), 30));
        // A shorter ban does not shorten a longer one; unban lifts it.
        bans.ban(KEY, t0 + Duration::from_secs(1), "short");
        assert_eq!(bans.check(KEY, &[], later), Some("invalid block"));
        assert!(bans.unban(KEY));
        assert!(!bans.unban(KEY), "nothing left to lift");
        assert_eq!(bans.check(KEY, &[], later), None);
        assert!(bans.list(t0 + Duration::from_secs(61)).is_empty());
    }
}
