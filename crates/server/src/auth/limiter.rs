//! Throttles password guessing: after too many failed sign-ins for a user name,
//! or from one address, within a window, further attempts are refused until the
//! oldest failure leaves the window. Kept in memory: a restart forgets, which is
//! acceptable for a throttle (the window is minutes).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct LoginLimiter {
    max: usize,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self { max: max_failures.max(1) as usize, window, failures: Mutex::new(HashMap::new()) }
    }

    /// How long until any of these keys may try again; `None` when all may now.
    pub fn retry_after(&self, keys: &[String]) -> Option<Duration> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        keys.iter()
            .filter_map(|key| {
                let times = map.get_mut(key)?;
                prune(times, now, self.window);
                (times.len() >= self.max).then(|| self.window.saturating_sub(now - times[0]))
            })
            .max()
    }

    pub fn record_failure(&self, keys: &[String]) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            let times = map.entry(key.clone()).or_default();
            prune(times, now, self.window);
            times.push_back(now);
        }
        // Bound the memory an attacker cycling through names can take.
        if map.len() > 100_000 {
            map.retain(|_, times| {
                prune(times, now, self.window);
                !times.is_empty()
            });
        }
    }

    pub fn clear(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

fn prune(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times.front().is_some_and(|t| now.duration_since(*t) >= window) {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_max_failures_per_key() {
        let limiter = LoginLimiter::new(2, Duration::from_secs(60));
        let (user, addr) = ("user:alice".to_owned(), "addr:10.0.0.1".to_owned());
        assert_eq!(limiter.retry_after(&[user.clone(), addr.clone()]), None);
        limiter.record_failure(&[user.clone(), addr.clone()]);
        assert_eq!(limiter.retry_after(std::slice::from_ref(&user)), None);
        limiter.record_failure(std::slice::from_ref(&user));
        let wait = limiter.retry_after(&[user.clone(), addr.clone()]).expect("alice is throttled");
        assert!(wait > Duration::from_secs(58) && wait <= Duration::from_secs(60), "{wait:?}");
        // The address saw one failure only.
        assert_eq!(limiter.retry_after(std::slice::from_ref(&addr)), None);
        limiter.clear(&user);
        assert_eq!(limiter.retry_after(&[user]), None);
    }

    #[test]
    fn failures_leave_the_window() {
        let limiter = LoginLimiter::new(1, Duration::from_millis(50));
        let key = vec!["addr:x".to_owned()];
        limiter.record_failure(&key);
        assert!(limiter.retry_after(&key).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(limiter.retry_after(&key), None);
    }
}
