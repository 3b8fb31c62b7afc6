//! What every handler shares: the service, the admin token, the
//! configuration, and the two lanes that keep slow hashing from starving the
//! rest.

use crate::Config;
use crate::admin::AdminToken;
use crate::error::ApiError;
use apikeys::ApiKeys;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Which lane a blocking call runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Work that runs argon2 (a chosen secret to hash or verify): few at
    /// once, about one per core, so a flood of such requests queues here
    /// (cheaply, as futures) instead of taking every thread and tens of
    /// megabytes each.
    Argon2,
    /// Everything else: store calls, argon2-free checks (a SHA-256).
    Fast,
}

impl Lane {
    /// The lane for work of this cost.
    pub(crate) fn for_cost(cost: apikeys::Cost) -> Self {
        match cost {
            apikeys::Cost::Argon2 => Lane::Argon2,
            apikeys::Cost::Fast => Lane::Fast,
        }
    }
}

/// The router's state.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Inner>);

struct Inner {
    keys: Arc<ApiKeys>,
    admin: AdminToken,
    config: Config,
    argon2: Arc<Semaphore>,
    fast: Arc<Semaphore>,
    openapi_json: Vec<u8>,
}

impl AppState {
    pub(crate) fn new(
        keys: Arc<ApiKeys>,
        admin: AdminToken,
        config: Config,
        openapi_json: Vec<u8>,
    ) -> Self {
        AppState(Arc::new(Inner {
            argon2: Arc::new(Semaphore::new(config.argon2_concurrency.max(1))),
            fast: Arc::new(Semaphore::new(config.blocking_concurrency.max(1))),
            keys,
            admin,
            config,
            openapi_json,
        }))
    }

    pub(crate) fn admin_token(&self) -> &AdminToken {
        &self.0.admin
    }

    pub(crate) fn trust_proxy(&self) -> bool {
        self.0.config.trust_proxy
    }

    pub(crate) fn inline_checks(&self) -> bool {
        self.0.config.inline_checks
    }

    pub(crate) fn body_limit(&self) -> usize {
        self.0.config.body_limit
    }

    pub(crate) fn keys(&self) -> &ApiKeys {
        &self.0.keys
    }

    pub(crate) fn openapi_json(&self) -> &[u8] {
        &self.0.openapi_json
    }

    /// Runs `f` on the blocking pool (the store and the hashes are
    /// synchronous), once a permit of `lane` is free. The permit travels
    /// with the work, so a client that hangs up does not free it early.
    pub(crate) async fn blocking<T, F>(&self, lane: Lane, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&ApiKeys) -> T + Send + 'static,
    {
        let semaphore = match lane {
            Lane::Argon2 => &self.0.argon2,
            Lane::Fast => &self.0.fast,
        };
        let permit = semaphore
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::internal("a lane's semaphore was closed"))?;
        let keys = self.0.keys.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f(&keys)
        })
        .await
        .map_err(|e| ApiError::internal(&format!("a blocking task failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apikeys::MemoryStore;
    use apikeys::testing::Fixture;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    fn state(argon2_concurrency: usize) -> AppState {
        let fixture = Fixture::new(Arc::new(MemoryStore::new()), 1);
        let config = Config::default().argon2_concurrency(argon2_concurrency);
        AppState::new(
            Arc::new(fixture.keys),
            AdminToken::from_chosen("a-token-for-the-tests").unwrap(),
            config,
            Vec::new(),
        )
    }

    /// The argon2 lane never runs more than its bound at once, and the fast
    /// lane is not held up while it is full.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn argon2_lane_is_bounded_and_fast_lane_is_free() {
        let state = state(2);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let slow: Vec<_> = (0..12)
            .map(|_| {
                let (state, running, most) = (state.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    state
                        .blocking(Lane::Argon2, move |_| {
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
        state.blocking(Lane::Fast, |_| ()).await.unwrap();
        let fast = start.elapsed();
        for t in slow {
            t.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
        assert!(
            fast < Duration::from_millis(40),
            "fast lane waited {fast:?}"
        );
    }
}
