//! Helpers shared by the workspace's examples and benchmarks: the production
//! clock and generator, which the domain crate never reaches for itself.
//!
//! The workspace README follows; its examples are compiled as tests here.
#![doc = include_str!("../README.md")]

use std::sync::Arc;

/// The system clock, as the domain's [`apikeys::Clock`].
pub fn system_clock() -> Arc<dyn apikeys::Clock> {
    // The one place outside adapters where the wall clock is read, on purpose.
    #[allow(clippy::disallowed_methods)]
    Arc::new(time::OffsetDateTime::now_utc)
}

/// The operating system's CSPRNG, as the domain's generator.
pub fn os_rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// Fills the SQLite database at `path` (created if absent) with `keys` keys
/// with generated credentials, 10,000 to a transaction, and returns up to
/// `samples` of their credentials spread over the whole database, to
/// authenticate with.
pub fn populate_sqlite(
    path: &std::path::Path,
    keys: usize,
    samples: usize,
    seed: u64,
) -> Result<Vec<apikeys::testing::bulk::Sample>, Box<dyn std::error::Error>> {
    use rand_core::SeedableRng;
    let store = apikeys_sqlite::SqliteStore::open(path)?;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let kept = apikeys::testing::bulk::build(&mut rng, keys, 10_000, samples, |batch| {
        store.import_accounts(batch)
    })?;
    Ok(kept)
}
