//! Throttles password guessing without locking people out, and bounds the memory
//! that checking passwords takes.
//!
//! An attempt is reserved before its password is hashed and settled after, in one
//! step under one lock, so parallel requests cannot all slip past a check made
//! before any of them failed. Per client address, `max` failures within the window
//! refuse further attempts until the oldest leaves the window. Per user name there
//! is no lock-out (behind a proxy, or from a botnet, an attacker would lock the
//! real user out for everyone): past `max` failures each further attempt on the
//! name must wait a growing delay after the last failure (1 s, 2 s, 4 s, … at most
//! [`MAX_DELAY`]), and only one at a time. Each argon2 check takes ~19 MiB, so only
//! a few run at once server-wide ([`PasswordChecks`]).
//!
//! Kept in memory: a restart forgets, which is acceptable for a throttle (the
//! window is minutes).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::hashing::{PasswordChecks, Slot};

/// The longest a user name's attempts are delayed.
pub const MAX_DELAY: Duration = Duration::from_secs(30);
/// How long an attempt waits for a free password check before it is turned away.
const HASHING_WAIT: Duration = Duration::from_secs(5);
/// Asked of a client turned away while other attempts are still being checked.
const BUSY_RETRY: Duration = Duration::from_secs(1);

pub struct LoginLimiter {
    max: usize,
    window: Duration,
    entries: Mutex<HashMap<Key, Entry>>,
    checks: PasswordChecks,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Addr(IpAddr),
}

#[derive(Debug, Default)]
struct Entry {
    /// Failures within the window, oldest first.
    failures: VecDeque<Instant>,
    /// Attempts reserved and not yet settled.
    in_flight: usize,
    /// A user name's next attempt may not start before this.
    not_before: Option<Instant>,
}

impl Entry {
    fn prune(&mut self, now: Instant, window: Duration) {
        while self.failures.front().is_some_and(|t| now.duration_since(*t) >= window) {
            self.failures.pop_front();
        }
    }

    fn idle(&self, now: Instant) -> bool {
        self.failures.is_empty() && self.in_flight == 0 && self.not_before.is_none_or(|t| t <= now)
    }
}

/// Why an attempt was turned away, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub cause: ThrottleCause,
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleCause {
    /// Too many failures from the client's address.
    Address,
    /// The user name's attempts are being delayed.
    User,
    /// Too many passwords are being checked at once.
    Busy,
}

impl Throttled {
    /// Whole seconds, rounded up: what `Retry-After` says.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0)
    }
}

impl LoginLimiter {
    /// `max_failures` per user name and per address within `window`; at most
    /// `hashing_slots` password checks at once.
    pub fn new(max_failures: u32, window: Duration, hashing_slots: usize) -> Self {
        Self {
            max: max_failures.max(1) as usize,
            window,
            entries: Mutex::new(HashMap::new()),
            checks: PasswordChecks::new(hashing_slots, HASHING_WAIT),
        }
    }

    /// Reserves an attempt to sign in as `user` from `addr`, or says why not. It
    /// counts against both from now on, until it is settled.
    pub fn reserve(&self, user: &str, addr: Option<IpAddr>) -> Result<Attempt<'_>, Throttled> {
        let now = Instant::now();
        let keys: Vec<Key> = [Some(Key::User(user.to_owned())), addr.map(Key::Addr)].into_iter().flatten().collect();
        let mut entries = self.lock();
        let refusal = keys
            .iter()
            .filter_map(|key| {
                let entry = entries.get_mut(key)?;
                entry.prune(now, self.window);
                self.refusal(key, entry, now)
            })
            .max_by_key(|t| t.retry_after);
        if let Some(refusal) = refusal {
            return Err(refusal);
        }
        for key in &keys {
            entries.entry(key.clone()).or_default().in_flight += 1;
        }
        // Bound the memory an attacker cycling through names or addresses can take.
        if entries.len() > 100_000 {
            entries.retain(|_, entry| {
                entry.prune(now, self.window);
                !entry.idle(now)
            });
        }
        Ok(Attempt { limiter: self, keys, settled: false })
    }

    fn refusal(&self, key: &Key, entry: &Entry, now: Instant) -> Option<Throttled> {
        let counted = entry.failures.len() + entry.in_flight;
        match key {
            Key::Addr(_) if counted >= self.max => {
                // Free again when enough failures have left the window; attempts
                // still being checked settle within seconds.
                let retry_after = match entry.failures.len().checked_sub(self.max) {
                    Some(oldest) => self.window.saturating_sub(now - entry.failures[oldest]),
                    None => BUSY_RETRY,
                };
                Some(Throttled { cause: ThrottleCause::Address, retry_after })
            }
            Key::Addr(_) => None,
            Key::User(_) => {
                if let Some(wait) =
                    entry.not_before.and_then(|t| t.checked_duration_since(now)).filter(|w| !w.is_zero())
                {
                    return Some(Throttled { cause: ThrottleCause::User, retry_after: wait });
                }
                // Past the free attempts, one at a time.
                (counted >= self.max && entry.in_flight > 0)
                    .then_some(Throttled { cause: ThrottleCause::User, retry_after: BUSY_RETRY })
            }
        }
    }

    /// A slot to check a password in; `Err` when none frees up within a few seconds.
    pub async fn hashing_slot(&self) -> Result<Slot<'_>, Throttled> {
        self.checks.slot().await.map_err(|_| Throttled { cause: ThrottleCause::Busy, retry_after: self.checks.wait() })
    }

    fn settle(&self, keys: &[Key], outcome: Outcome) {
        let now = Instant::now();
        let mut entries = self.lock();
        for key in keys {
            let Some(entry) = entries.get_mut(key) else { continue };
            entry.in_flight = entry.in_flight.saturating_sub(1);
            match (key, outcome) {
                (_, Outcome::Failed) => {
                    entry.prune(now, self.window);
                    entry.failures.push_back(now);
                    if let Key::User(_) = key {
                        entry.not_before = self.delay(entry.failures.len()).map(|d| now + d);
                    }
                }
                (Key::User(_), Outcome::Succeeded) => {
                    entry.failures.clear();
                    entry.not_before = None;
                }
                (Key::Addr(_), Outcome::Succeeded) | (_, Outcome::Abandoned) => {}
            }
            if entry.idle(now) {
                entries.remove(key);
            }
        }
    }

    /// The wait before the next attempt on a user name after `failures` failures.
    fn delay(&self, failures: usize) -> Option<Duration> {
        let past = u32::try_from(failures.checked_sub(self.max)?).unwrap_or(u32::MAX);
        Some(Duration::from_secs(1u64.checked_shl(past).unwrap_or(u64::MAX)).min(MAX_DELAY))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Succeeded,
    Failed,
    /// Never checked (the client went away, or checking broke): nothing learnt.
    Abandoned,
}

/// A reserved sign-in attempt. Settle it with [`Attempt::succeeded`] or
/// [`Attempt::failed`]; dropped unsettled it gives the reservation back without
/// counting.
pub struct Attempt<'a> {
    limiter: &'a LoginLimiter,
    keys: Vec<Key>,
    settled: bool,
}

impl Attempt<'_> {
    /// The right password: the user name's failures are forgotten.
    pub fn succeeded(self) {
        self.settle(Outcome::Succeeded);
    }

    pub fn failed(self) {
        self.settle(Outcome::Failed);
    }

    fn settle(mut self, outcome: Outcome) {
        self.settled = true;
        self.limiter.settle(&self.keys, outcome);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.limiter.settle(&self.keys, Outcome::Abandoned);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(60);

    fn addr(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, n]))
    }

    #[test]
    fn parallel_attempts_from_one_address_cannot_pass_together() {
        let limiter = LoginLimiter::new(3, WINDOW, 2);
        let held: Vec<_> = (0..3).map(|i| limiter.reserve(&format!("user-{i}"), addr(1)).unwrap()).collect();
        let refused = limiter.reserve("user-9", addr(1)).err().unwrap();
        assert_eq!((refused.cause, refused.retry_after), (ThrottleCause::Address, BUSY_RETRY));
        // Another address is not held up.
        drop(limiter.reserve("user-9", addr(2)).unwrap());
        for attempt in held {
            attempt.failed();
        }
        let refused = limiter.reserve("user-9", addr(1)).err().unwrap();
        assert_eq!(refused.cause, ThrottleCause::Address);
        assert!(refused.retry_after > WINDOW - Duration::from_secs(2) && refused.retry_after <= WINDOW);
    }

    #[test]
    fn abandoned_and_successful_attempts_give_their_reservation_back() {
        let limiter = LoginLimiter::new(1, WINDOW, 2);
        drop(limiter.reserve("alice", addr(1)).unwrap());
        assert!(limiter.lock().is_empty(), "nothing is kept of an abandoned attempt");
        limiter.reserve("alice", addr(1)).unwrap().succeeded();
        limiter.reserve("alice", addr(1)).unwrap().failed();
        assert!(limiter.reserve("bob", addr(1)).is_err(), "the failure counts for the address");
    }

    #[test]
    fn a_user_name_is_delayed_more_and_more_but_never_locked() {
        let limiter = LoginLimiter::new(2, WINDOW, 2);
        for n in 1..=2u8 {
            limiter.reserve("alice", addr(n)).unwrap().failed();
        }
        // From any address, alice now waits a second after the last failure.
        let refused = limiter.reserve("alice", addr(3)).err().unwrap();
        assert_eq!(refused.cause, ThrottleCause::User);
        assert!(refused.retry_after > Duration::from_millis(900) && refused.retry_after <= Duration::from_secs(1));
        assert_eq!(refused.retry_after_secs(), 1);
        assert_eq!(
            [2, 3, 4, 5, 6, 7, 8, 40].map(|n| limiter.delay(n).unwrap().as_secs()),
            [1, 2, 4, 8, 16, 30, 30, 30]
        );
        assert_eq!(limiter.delay(1), None);
        // Other names are not held up.
        limiter.reserve("bob", addr(3)).unwrap().succeeded();
    }

    #[test]
    fn past_its_free_attempts_a_user_name_is_tried_once_at_a_time() {
        let limiter = LoginLimiter::new(2, WINDOW, 2);
        let first = limiter.reserve("alice", addr(1)).unwrap();
        let second = limiter.reserve("alice", addr(2)).unwrap();
        assert_eq!(limiter.reserve("alice", addr(3)).err().map(|t| t.cause), Some(ThrottleCause::User));
        drop((first, second));
        // A success forgets the failures.
        limiter.reserve("alice", addr(1)).unwrap().failed();
        limiter.reserve("alice", addr(2)).unwrap().succeeded();
        limiter.reserve("alice", addr(3)).unwrap().failed();
        assert!(limiter.reserve("alice", addr(4)).is_ok());
    }

    #[test]
    fn failures_leave_the_window() {
        let limiter = LoginLimiter::new(1, Duration::from_millis(50), 2);
        limiter.reserve("alice", addr(1)).unwrap().failed();
        assert!(limiter.reserve("bob", addr(1)).is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert!(limiter.reserve("bob", addr(1)).is_ok());
    }
}
