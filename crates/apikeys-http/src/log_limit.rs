//! A rate limit on a log line, so that a flood of refusals cannot write
//! gigabytes: at most `per_second` lines a second; the lines left out are
//! counted and reported by the next line written. (The service's own
//! counters keep the exact numbers.)

use std::sync::Mutex;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

/// At most so many lines a second.
#[derive(Debug)]
pub(crate) struct LogLimit {
    per_second: u32,
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    written: u32,
    suppressed: u64,
}

impl LogLimit {
    pub(crate) fn per_second(per_second: u32) -> Self {
        LogLimit {
            per_second,
            window: Mutex::new(Window {
                started: Instant::now(),
                written: 0,
                suppressed: 0,
            }),
        }
    }

    /// Whether to write a line now: `Some(n)` with the number of lines left
    /// out since the last one written, or `None` to leave this one out.
    pub(crate) fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Option<u64> {
        let mut w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        if now.duration_since(w.started) >= Duration::from_secs(1) {
            w.started = now;
            w.written = 0;
        }
        if w.written < self.per_second {
            w.written += 1;
            Some(std::mem::take(&mut w.suppressed))
        } else {
            w.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_so_many_a_second_and_the_rest_counted() {
        let limit = LogLimit::per_second(3);
        let t0 = Instant::now();
        let admitted: Vec<_> = (0..1000).map(|_| limit.admit_at(t0)).collect();
        assert_eq!(admitted.iter().filter(|a| a.is_some()).count(), 3);
        // The next second's first line reports the 997 left out.
        assert_eq!(limit.admit_at(t0 + Duration::from_secs(1)), Some(997));
        assert_eq!(limit.admit_at(t0 + Duration::from_secs(1)), Some(0));
    }
}
