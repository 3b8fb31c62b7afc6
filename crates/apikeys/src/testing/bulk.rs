//! Many accounts with keys, built in memory for bulk loading: benchmarks and
//! load tests fill a store with them, without a transaction per key.

use crate::account::Account;
use crate::audit::{AuditEvent, AuditKind};
use crate::channel::Channel;
use crate::credentials::{Secret, generate_identifier, generate_secret};
use crate::hashing::{HashingPolicy, SALT_LEN, SecretOrigin, hash_secret};
use crate::id::{AccountId, KeyId};
use crate::key::KeyRecord;
use rand_core::CryptoRng;

use super::records;

/// An account as a store's `create_account` takes it: the account, its keys,
/// its audit events.
pub type Opening = (Account, Vec<KeyRecord>, Vec<AuditEvent>);

/// Credentials kept to authenticate with later.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The key's channel.
    pub channel: Channel,
    /// Its identifier.
    pub identifier: String,
    /// Its secret.
    pub secret: Secret,
}

/// A master account created at [`START`](super::START) with one key per channel, each with
/// generated credentials hashed as the service hashes them, and the
/// credentials in plain text.
pub fn account_with_keys(rng: &mut (impl CryptoRng + ?Sized)) -> (Opening, Vec<Sample>) {
    let account = records::master(AccountId::random(rng));
    let mut keys = Vec::with_capacity(Channel::ALL.len());
    let mut samples = Vec::with_capacity(Channel::ALL.len());
    // Generated secrets take no salt and no cost parameters.
    let hashing = HashingPolicy::default();
    for channel in Channel::ALL {
        let identifier = generate_identifier(rng);
        let secret = generate_secret(rng);
        let secret_hash =
            match hash_secret(&hashing, &secret, SecretOrigin::Generated, &[0; SALT_LEN]) {
                Ok(h) => h,
                Err(e) => super::unreachable_in_tests(e),
            };
        keys.push(KeyRecord {
            secret_hash,
            ..records::key(KeyId::random(rng), account.id, channel, &identifier)
        });
        samples.push(Sample {
            channel,
            identifier,
            secret,
        });
    }
    let events = vec![records::event(
        account.id,
        None,
        AuditKind::AccountOpened,
        "imported",
    )];
    ((account, keys, events), samples)
}

/// Builds `keys` keys (rounded down to whole accounts of five), handing them
/// to `load` in batches of about `batch` keys, and returns up to `samples`
/// credentials spread evenly over them.
pub fn build<E>(
    rng: &mut (impl CryptoRng + ?Sized),
    keys: usize,
    batch: usize,
    samples: usize,
    mut load: impl FnMut(&[Opening]) -> Result<(), E>,
) -> Result<Vec<Sample>, E> {
    let per_account = Channel::ALL.len();
    let accounts = keys / per_account;
    let every = (accounts / samples.max(1)).max(1);
    let mut kept = Vec::with_capacity(samples);
    let mut pending = Vec::with_capacity(batch / per_account + 1);
    for i in 0..accounts {
        let (opening, credentials) = account_with_keys(rng);
        if i % every == 0 && kept.len() < samples {
            // Each channel in turn, whatever the spacing.
            kept.extend(credentials.into_iter().nth(kept.len() % per_account));
        }
        pending.push(opening);
        if pending.len() * per_account >= batch {
            load(&pending)?;
            pending.clear();
        }
    }
    if !pending.is_empty() {
        load(&pending)?;
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, Store};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn built_keys_load_and_authenticate() {
        let store = std::sync::Arc::new(MemoryStore::new());
        let mut batches = 0;
        let samples = build(&mut ChaCha20Rng::seed_from_u64(1), 103, 20, 7, |batch| {
            batches += 1;
            batch
                .iter()
                .try_for_each(|(a, k, e)| store.create_account(a, k, e))
        })
        .unwrap();
        assert_eq!(batches, 5, "100 keys in batches of 20");
        assert_eq!(samples.len(), 7);
        let f = crate::testing::Fixture::new(store, 2);
        for s in &samples {
            f.keys
                .authenticate(
                    s.channel,
                    &s.identifier,
                    s.secret.expose_secret(),
                    "192.0.2.1".parse().unwrap(),
                )
                .unwrap();
        }
    }

    #[test]
    fn samples_cover_every_channel_whatever_their_spacing() {
        // 200 accounts, a sample every 20: a multiple of the five channels.
        let samples = build(&mut ChaCha20Rng::seed_from_u64(3), 1000, 100, 10, |_| {
            Ok::<_, ()>(())
        })
        .unwrap();
        for channel in Channel::ALL {
            assert_eq!(
                samples.iter().filter(|s| s.channel == channel).count(),
                2,
                "{channel:?}"
            );
        }
    }
}
