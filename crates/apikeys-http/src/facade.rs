//! [`AsyncApiKeys`]: the one async face of the synchronous service, used by
//! the router, the authentication layer and embedders alike.
//!
//! It owns the lanes a call runs in:
//! - **inline**: the argon2-free first step of an authentication (one store
//!   lookup and a SHA-256, or the verified-secret cache, or a throttle's
//!   answer) runs on the event loop when the store answers from memory or a
//!   local file ([`StoreCalls::Inline`]);
//! - **the blocking pool**, bounded: every other store call, and the first
//!   step too over a store that waits on the network
//!   ([`StoreCalls::BlockingPool`]);
//! - **the argon2 lane**, bounded: hashing or verifying a chosen secret.
//!   Few run at once (one per core by default). A bounded number may wait,
//!   for a bounded time; past either bound the answer is "busy, retry
//!   after" (503) at once, rather than a queue without end. One client
//!   address may have only so many checks in argon2 at once (default 1):
//!   past that it is told to slow down (429), so that a single source
//!   flooding wrong chosen secrets cannot fill the lane for everyone.
//!
//! Work that the cache or a throttle can answer never reaches the argon2
//! lane: the first step answers it.

use apikeys::{ApiKeys, AuthError, Authenticated, Channel, Check, Cost, Secret};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Where the argon2-free store calls of authentication run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreCalls {
    /// On the event loop: right for a store that answers from memory or a
    /// local file (the memory and SQLite stores), where handing the call to
    /// a thread would cost more than the call.
    Inline,
    /// On the blocking pool: right for a store that waits on the network
    /// (PostgreSQL, whose synchronous client cannot run on an async worker
    /// at all). The default, because it is never wrong, only slower.
    #[default]
    BlockingPool,
}

/// How big the lanes are. `Lanes::default()` suits a server on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lanes {
    /// Where authentication's argon2-free step runs (default
    /// [`StoreCalls::BlockingPool`]).
    pub store_calls: StoreCalls,
    /// How many calls may run argon2 at once (default: the number of cores).
    pub argon2_concurrency: usize,
    /// How many more may wait for it (default 32); past that, "busy".
    pub argon2_queue: usize,
    /// How long one may wait for it (default 1 s); past that, "busy".
    pub argon2_wait: Duration,
    /// How many authentications from one client address may be in the
    /// argon2 lane at once (default 1); past that, "slow down" (429).
    pub argon2_per_address: usize,
    /// How many other blocking calls may run at once (default 64).
    pub blocking_concurrency: usize,
}

impl Default for Lanes {
    fn default() -> Self {
        Lanes {
            store_calls: StoreCalls::default(),
            argon2_concurrency: std::thread::available_parallelism().map_or(2, usize::from),
            argon2_queue: 32,
            argon2_wait: Duration::from_secs(1),
            argon2_per_address: 1,
            blocking_concurrency: 64,
        }
    }
}

impl Lanes {
    /// These lanes with the argon2-free step inline or on the pool.
    #[must_use]
    pub fn store_calls(mut self, calls: StoreCalls) -> Self {
        self.store_calls = calls;
        self
    }

    /// These lanes with another argon2 concurrency (0 counts as 1).
    #[must_use]
    pub fn argon2_concurrency(mut self, at_once: usize) -> Self {
        self.argon2_concurrency = at_once;
        self
    }

    /// These lanes with another bound on calls waiting for argon2.
    #[must_use]
    pub fn argon2_queue(mut self, waiting: usize) -> Self {
        self.argon2_queue = waiting;
        self
    }

    /// These lanes with another longest wait for argon2.
    #[must_use]
    pub fn argon2_wait(mut self, wait: Duration) -> Self {
        self.argon2_wait = wait;
        self
    }

    /// These lanes with another bound on one address's argon2 checks (0
    /// counts as 1).
    #[must_use]
    pub fn argon2_per_address(mut self, at_once: usize) -> Self {
        self.argon2_per_address = at_once;
        self
    }

    /// These lanes with another bound on other blocking calls (0 counts as
    /// 1).
    #[must_use]
    pub fn blocking_concurrency(mut self, at_once: usize) -> Self {
        self.blocking_concurrency = at_once;
        self
    }
}

/// A call the lanes would not take now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Busy {
    /// The argon2 lane is full, or the wait was too long: try again later.
    #[error("the server is busy checking secrets: try again in {retry_after:?}")]
    Argon2Lane {
        /// When to try again.
        retry_after: Duration,
    },
    /// This client address already has as many checks in argon2 as allowed.
    #[error("too many checks in progress from this address: try again in {retry_after:?}")]
    Address {
        /// When to try again.
        retry_after: Duration,
    },
    /// The blocking task failed (it panicked): a bug, not a refusal.
    #[error("a blocking task failed")]
    TaskFailed,
}

/// An authentication that did not succeed: refused by the service, or not
/// taken by the lanes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The service's answer.
    #[error(transparent)]
    Refused(#[from] AuthError),
    /// The lanes' answer.
    #[error(transparent)]
    Busy(#[from] Busy),
}

/// The async face of [`ApiKeys`]; cheap to clone.
#[derive(Clone)]
pub struct AsyncApiKeys(Arc<Inner>);

struct Inner {
    keys: Arc<ApiKeys>,
    lanes: Lanes,
    argon2: Arc<Semaphore>,
    argon2_waiting: AtomicUsize,
    blocking: Arc<Semaphore>,
    /// Authentications in the argon2 lane, per client address.
    per_address: Mutex<HashMap<IpAddr, usize>>,
}

impl std::fmt::Debug for AsyncApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncApiKeys")
            .field("lanes", &self.0.lanes)
            .finish_non_exhaustive()
    }
}

/// When a client told "busy" should try again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

impl AsyncApiKeys {
    /// The service, behind lanes of these sizes.
    pub fn new(keys: Arc<ApiKeys>, lanes: Lanes) -> Self {
        AsyncApiKeys(Arc::new(Inner {
            argon2: Arc::new(Semaphore::new(lanes.argon2_concurrency.max(1))),
            argon2_waiting: AtomicUsize::new(0),
            blocking: Arc::new(Semaphore::new(lanes.blocking_concurrency.max(1))),
            per_address: Mutex::new(HashMap::new()),
            keys,
            lanes,
        }))
    }

    /// The synchronous service, for calls that need no lane (its policy, its
    /// counters).
    pub fn sync(&self) -> &ApiKeys {
        &self.0.keys
    }

    /// The lanes' sizes.
    pub fn lanes(&self) -> &Lanes {
        &self.0.lanes
    }

    /// Checks credentials: the argon2-free step inline or on the pool (see
    /// [`StoreCalls`]), then, only if the verdict needs it, argon2 in its
    /// bounded lane.
    pub async fn authenticate(
        &self,
        channel: Channel,
        identifier: String,
        secret: Secret,
        client: IpAddr,
    ) -> Result<Authenticated, CheckError> {
        let client = client.to_canonical();
        let first = match self.0.lanes.store_calls {
            StoreCalls::Inline => self.0.keys.begin_authentication(
                channel,
                &identifier,
                secret.expose_secret(),
                client,
            ),
            StoreCalls::BlockingPool => {
                self.run(Cost::Fast, move |k| {
                    k.begin_authentication(channel, &identifier, secret.expose_secret(), client)
                })
                .await?
            }
        };
        let pending = match first {
            Check::Done(outcome) => return Ok(outcome?),
            Check::NeedsArgon2(pending) => pending,
        };
        let _slot = self.address_slot(client)?;
        Ok(self
            .run(Cost::Argon2, move |k| k.finish_authentication(pending))
            .await??)
    }

    /// Checks a REST bearer token: one store lookup and one SHA-256, inline
    /// or on the pool (see [`StoreCalls`]), never argon2.
    pub async fn authenticate_token(
        &self,
        token: Secret,
        client: IpAddr,
    ) -> Result<Authenticated, CheckError> {
        let client = client.to_canonical();
        Ok(match self.0.lanes.store_calls {
            StoreCalls::Inline => self
                .0
                .keys
                .authenticate_token(token.expose_secret(), client),
            StoreCalls::BlockingPool => {
                self.run(Cost::Fast, move |k| {
                    k.authenticate_token(token.expose_secret(), client)
                })
                .await?
            }
        }?)
    }

    /// Runs a synchronous call on the blocking pool, in the argon2 lane if
    /// `cost` says it runs argon2 (hashing a chosen secret, say). The permit
    /// travels with the work, so a client that hangs up does not free it
    /// early.
    pub async fn run<T, F>(&self, cost: Cost, f: F) -> Result<T, Busy>
    where
        T: Send + 'static,
        F: FnOnce(&ApiKeys) -> T + Send + 'static,
    {
        let permit = match cost {
            Cost::Argon2 => self.argon2_permit().await?,
            Cost::Fast => self
                .0
                .blocking
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| Busy::TaskFailed)?,
        };
        let keys = self.0.keys.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f(&keys)
        })
        .await
        .map_err(|_| Busy::TaskFailed)
    }

    /// A permit of the argon2 lane, or "busy" if too many wait or the wait
    /// is too long.
    async fn argon2_permit(&self) -> Result<OwnedSemaphorePermit, Busy> {
        let busy = Busy::Argon2Lane {
            retry_after: RETRY_AFTER,
        };
        if let Ok(permit) = self.0.argon2.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let waiting = self.0.argon2_waiting.fetch_add(1, Ordering::SeqCst);
        let _leave = Leave(&self.0.argon2_waiting);
        if waiting >= self.0.lanes.argon2_queue {
            return Err(busy);
        }
        match tokio::time::timeout(
            self.0.lanes.argon2_wait,
            self.0.argon2.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(Busy::TaskFailed),
            Err(_) => Err(busy),
        }
    }

    /// A place for `client` among the authentications in argon2, or "slow
    /// down" if it has its share already.
    fn address_slot(&self, client: IpAddr) -> Result<AddressSlot<'_>, Busy> {
        let client = address_group(client);
        let mut map = self
            .0
            .per_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let held = map.entry(client).or_insert(0);
        if *held >= self.0.lanes.argon2_per_address.max(1) {
            return Err(Busy::Address {
                retry_after: RETRY_AFTER,
            });
        }
        *held += 1;
        Ok(AddressSlot {
            inner: &self.0,
            client,
        })
    }
}

/// What counts as one client address: an IPv4 address, or an IPv6 /64 (one
/// subscriber gets a whole /64), as the domain's throttle counts them.
fn address_group(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(a) => IpAddr::V6((u128::from(a) & !u128::from(u64::MAX)).into()),
        v4 => v4,
    }
}

/// Counts a waiter out of the argon2 queue when it stops waiting.
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One client address's place among the authentications in argon2.
struct AddressSlot<'a> {
    inner: &'a Inner,
    client: IpAddr,
}

impl Drop for AddressSlot<'_> {
    fn drop(&mut self) {
        let mut map = self
            .inner
            .per_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = map.get_mut(&self.client) {
            *held -= 1;
            if *held == 0 {
                map.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apikeys::testing::Fixture;
    use apikeys::{MemoryStore, Policy};
    use std::time::Instant;

    fn facade(lanes: Lanes) -> AsyncApiKeys {
        let f = Fixture::new(Arc::new(MemoryStore::new()), 1);
        AsyncApiKeys::new(Arc::new(f.keys), lanes)
    }

    /// The argon2 lane never runs more than its bound at once, and the
    /// blocking pool is not held up while it is full.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_argon2_lane_is_bounded_and_the_pool_stays_free() {
        let keys = facade(
            Lanes::default()
                .argon2_concurrency(2)
                .argon2_queue(100)
                .argon2_wait(Duration::from_secs(10)),
        );
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let slow: Vec<_> = (0..12)
            .map(|_| {
                let (keys, running, most) = (keys.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    keys.run(Cost::Argon2, move |_| {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(40));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                    .unwrap();
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let start = Instant::now();
        keys.run(Cost::Fast, |_| ()).await.unwrap();
        let fast = start.elapsed();
        for t in slow {
            t.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
        assert!(fast < Duration::from_millis(40), "the pool waited {fast:?}");
    }

    /// Past the queue's bound, or past the longest wait, the lane answers
    /// "busy" at once instead of queueing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_argon2_lane_says_busy() {
        let keys = facade(
            Lanes::default()
                .argon2_concurrency(1)
                .argon2_queue(2)
                .argon2_wait(Duration::from_millis(150)),
        );
        let hold = |ms| {
            let keys = keys.clone();
            tokio::spawn(async move {
                keys.run(Cost::Argon2, move |_| {
                    std::thread::sleep(Duration::from_millis(ms))
                })
                .await
            })
        };
        let running = hold(600);
        tokio::time::sleep(Duration::from_millis(30)).await;
        let waiting: Vec<_> = (0..2).map(|_| hold(10)).collect();
        tokio::time::sleep(Duration::from_millis(30)).await;
        // The queue is full: refused at once.
        let start = Instant::now();
        let third = keys.run(Cost::Argon2, |_| ()).await;
        assert!(matches!(third, Err(Busy::Argon2Lane { .. })), "{third:?}");
        assert!(start.elapsed() < Duration::from_millis(50));
        // Those waiting give up after the longest wait.
        for w in waiting {
            assert!(matches!(w.await.unwrap(), Err(Busy::Argon2Lane { .. })));
        }
        assert!(running.await.unwrap().is_ok());
        // The queue emptied as they left: a new call is taken.
        assert!(keys.run(Cost::Argon2, |_| ()).await.is_ok());
    }

    /// One address gets one place in argon2 at a time; another address is
    /// not held up by it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_address_gets_its_share_of_argon2() {
        let f = Fixture::with_policy(
            Arc::new(MemoryStore::new()),
            2,
            Policy::fast_for_tests().throttle(apikeys::ThrottlePolicy::off()),
        );
        let keys = AsyncApiKeys::new(Arc::new(f.keys), Lanes::default());
        let flooder: IpAddr = "203.0.113.9".parse().unwrap();
        let slot = keys.address_slot(flooder).unwrap();
        assert!(matches!(
            keys.address_slot(flooder),
            Err(Busy::Address { .. })
        ));
        let other = keys.address_slot("203.0.113.10".parse().unwrap());
        assert!(other.is_ok());
        drop(slot);
        assert!(
            keys.address_slot(flooder).is_ok(),
            "the place is given back"
        );
        // Mapped and plain IPv4 are one address.
        let mapped: IpAddr = "::ffff:198.51.100.1".parse().unwrap();
        let _held = keys.address_slot(mapped.to_canonical()).unwrap();
        let outcome = keys
            .authenticate(
                Channel::Ftp,
                "nobody-at-all".into(),
                Secret::new("chosen-shape-guess"),
                "198.51.100.1".parse().unwrap(),
            )
            .await;
        assert!(
            matches!(outcome, Err(CheckError::Busy(Busy::Address { .. }))),
            "{outcome:?}"
        );
    }
}
