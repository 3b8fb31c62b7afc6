//! Last use, recorded write-behind so that the hot path never waits for a
//! write.
//!
//! Rules:
//! - A successful authentication notes, in memory, the instant and client
//!   address for its key (and, when the previous secret matched, that
//!   instant and the previous secret's hash). Nothing is written then.
//! - [`ApiKeys::flush_usage`](crate::ApiKeys::flush_usage) hands everything
//!   noted since the last flush to the store in one write
//!   ([`crate::Store::record_uses`], one transaction): one entry per key,
//!   however often it was used. A [`UsageFlusher`] flushes once per
//!   [`UsagePolicy::interval`] (60 s by default) and once more when it
//!   stops, so each key costs at most one store write per interval, and a
//!   crash loses at most one interval of last-use data and nothing else.
//! - Memory is bounded: at most [`UsagePolicy::capacity`] keys wait for a
//!   flush; a use of yet another key is dropped (and counted) until the
//!   next flush makes room. A failed flush puts its entries back, newest
//!   winning, within the same bound.
//! - Stores keep the newest instant: several processes may record for one
//!   key, in any order, and the latest use wins.
//! - A previous secret's use counts only for the previous secret it
//!   matched: a store records it only while that hash is still the key's
//!   previous secret.

use crate::hashing::SecretHash;
use crate::id::KeyId;
use crate::key::Usage;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use time::{Duration, OffsetDateTime};

/// How last use is recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsagePolicy {
    /// How often a [`UsageFlusher`] writes (default 60 s; at least 1 ms).
    pub interval: Duration,
    /// How many keys may wait for a flush (default 100,000, about 10 MB);
    /// 0 turns recording off.
    pub capacity: usize,
}

impl Default for UsagePolicy {
    fn default() -> Self {
        UsagePolicy {
            interval: Duration::seconds(60),
            capacity: 100_000,
        }
    }
}

/// The last use of one key since the last flush: what
/// [`crate::Store::record_uses`] writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyUse {
    /// The key.
    pub key_id: KeyId,
    /// The last successful authentication.
    pub at: OffsetDateTime,
    /// Its client address.
    pub address: IpAddr,
    /// The last use of the previous secret, with the hash it matched: a
    /// store records it only if that hash is still the key's previous
    /// secret.
    pub previous: Option<(OffsetDateTime, SecretHash)>,
}

impl KeyUse {
    /// Merges `other` (of the same key) into `self`, newest winning, in
    /// place: the hot path allocates nothing for a key already waiting.
    fn merge(&mut self, other: KeyUse) {
        if other.at > self.at {
            self.at = other.at;
            self.address = other.address;
        }
        if let Some(b) = other.previous
            && self.previous.as_ref().is_none_or(|a| b.0 > a.0)
        {
            self.previous = Some(b);
        }
    }

    /// What this use says about its key, as a [`Usage`].
    pub fn as_usage(&self) -> Usage {
        Usage {
            last_used_at: Some(self.at),
            last_used_address: Some(self.address),
            previous_secret_last_used_at: self.previous.as_ref().map(|p| p.0),
        }
    }
}

/// Shards of the pending map: authentications on many threads rarely meet
/// on one lock.
const SHARDS: usize = 16;

/// Hashes a key id by its first eight bytes. Ids are drawn from a CSPRNG
/// by the service, never chosen by a client, so they spread evenly without
/// a keyed hash: this saves SipHash's cost on every successful check.
#[derive(Clone, Copy, Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8).take(1) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }
}

type IdMap = HashMap<KeyId, KeyUse, std::hash::BuildHasherDefault<IdHasher>>;

/// The uses waiting for a flush.
pub(crate) struct Recorder {
    shards: Vec<Mutex<IdMap>>,
    /// Keys waiting, across shards (kept within `capacity`).
    waiting: AtomicU64,
    capacity: u64,
    dropped: AtomicU64,
}

impl Recorder {
    pub(crate) fn new(capacity: usize) -> Self {
        Recorder {
            shards: (0..SHARDS).map(|_| Mutex::new(IdMap::default())).collect(),
            waiting: AtomicU64::new(0),
            capacity: capacity as u64,
            dropped: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: KeyId) -> &Mutex<IdMap> {
        let b = key.as_bytes();
        &self.shards[usize::from(b[15]) % SHARDS]
    }

    /// Notes a use; cheap (one uncontended lock, one map entry).
    pub(crate) fn note(&self, found: KeyUse) {
        if self.capacity == 0 {
            return;
        }
        let mut shard = self
            .shard(found.key_id)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = shard.get_mut(&found.key_id) {
            entry.merge(found);
            return;
        }
        if self.waiting.load(Ordering::Relaxed) >= self.capacity {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        shard.insert(found.key_id, found);
    }

    /// Every use waiting, taken out.
    pub(crate) fn take(&self) -> Vec<KeyUse> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            let n = shard.len() as u64;
            out.extend(shard.drain().map(|(_, u)| u));
            self.waiting.fetch_sub(n, Ordering::Relaxed);
        }
        out
    }

    /// Puts back what a failed flush took, newest winning, within the bound.
    pub(crate) fn put_back(&self, uses: Vec<KeyUse>) {
        for u in uses {
            self.note(u);
        }
    }

    /// The use waiting for `key`, if any.
    pub(crate) fn pending(&self, key: KeyId) -> Option<KeyUse> {
        self.shard(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned()
    }

    pub(crate) fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::Relaxed)
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// A thread that flushes a service's last-use data once per interval, and
/// once more when stopped or dropped. A server starts one beside its
/// service and stops it at shutdown.
pub struct UsageFlusher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for UsageFlusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageFlusher").finish_non_exhaustive()
    }
}

impl UsageFlusher {
    /// Starts flushing `service` every `service.policy().usage.interval`.
    /// A failed flush keeps its data for the next one.
    pub fn start(service: Arc<crate::ApiKeys>) -> std::io::Result<Self> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let interval = service
            .policy()
            .usage
            .interval
            .try_into()
            .unwrap_or(std::time::Duration::from_secs(60));
        let thread = std::thread::Builder::new()
            .name("apikeys-usage".into())
            .spawn(move || {
                let (lock, cvar) = &*signal;
                let mut stopped = lock.lock().unwrap_or_else(PoisonError::into_inner);
                loop {
                    let deadline = std::time::Instant::now() + interval;
                    while !*stopped {
                        let left = deadline.saturating_duration_since(std::time::Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        stopped = cvar
                            .wait_timeout(stopped, left)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                    }
                    let last = *stopped;
                    drop(stopped);
                    let _ = service.flush_usage();
                    if last {
                        return;
                    }
                    stopped = lock.lock().unwrap_or_else(PoisonError::into_inner);
                }
            })?;
        Ok(UsageFlusher {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread after one last flush, and waits for it.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        let (lock, cvar) = &*self.stop;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
        cvar.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for UsageFlusher {
    fn drop(&mut self) {
        self.stop_now();
    }
}
