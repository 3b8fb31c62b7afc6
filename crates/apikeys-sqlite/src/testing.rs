//! Test support (feature `testing`): filling a database for load and memory
//! checks.

use crate::SqliteStore;
use apikeys::testing::bulk::{self, Sample};
use rand_core::SeedableRng;
use std::path::Path;

/// Fills the SQLite database at `path` (created if absent) with `keys` keys
/// with generated credentials, 10,000 to a transaction, and returns up to
/// `samples` of their credentials spread over the whole database, to
/// authenticate with. The same `seed` gives the same keys.
pub fn populate(
    path: &Path,
    keys: usize,
    samples: usize,
    seed: u64,
) -> Result<Vec<Sample>, Box<dyn std::error::Error>> {
    let store = SqliteStore::open(path)?;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    Ok(bulk::build(&mut rng, keys, 10_000, samples, |batch| {
        store.import_accounts(batch)
    })?)
}
