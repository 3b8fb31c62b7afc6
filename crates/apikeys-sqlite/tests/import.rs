//! `SqliteStore::import_accounts`: many accounts in one transaction.
// Tests may unwrap and panic (helpers outside `#[test]` functions too).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apikeys::store::{Entity, Existing};
use apikeys::testing::records;
use apikeys::{
    Account, AccountId, AccountKind, AuditEvent, AuditKind, Channel, KeyId, KeyRecord, Store,
    StoreError,
};
use apikeys_sqlite::SqliteStore;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use time::macros::datetime;

type Batch = Vec<(Account, Vec<KeyRecord>, Vec<AuditEvent>)>;

fn batch(rng: &mut ChaCha20Rng, prefix: &str, accounts: usize) -> Batch {
    (0..accounts)
        .map(|i| {
            let account = Account {
                id: AccountId::random(rng),
                kind: AccountKind::Master,
                // Imported accounts keep their historic dates.
                created_at: datetime!(2019-03-04 05:06:07.089 UTC),
                suspended: false,
                policy: Default::default(),
                external_id: None,
            };
            let keys: Vec<KeyRecord> = [Channel::Ftp, Channel::Rest, Channel::Rest]
                .into_iter()
                .enumerate()
                .map(|(j, channel)| {
                    records::key(
                        KeyId::random(rng),
                        account.id,
                        channel,
                        &format!("{prefix}-{i}-{j}"),
                    )
                })
                .collect();
            let events = vec![records::event(
                account.id,
                None,
                AuditKind::AccountOpened,
                "imported",
            )];
            (account, keys, events)
        })
        .collect()
}

#[test]
fn a_batch_is_imported_whole() {
    let store = SqliteStore::open_in_memory().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let accounts = batch(&mut rng, "ok", 50);
    store.import_accounts(&accounts).unwrap();
    for (account, keys, events) in &accounts {
        assert_eq!(store.account(account.id).unwrap().as_ref(), Some(account));
        assert_eq!(
            &store.keys_of_account(account.id).unwrap().len(),
            &keys.len()
        );
        assert_eq!(&store.audit_events(account.id, 10).unwrap(), events);
    }
}

#[test]
fn one_bad_account_and_nothing_is_kept() {
    let store = SqliteStore::open_in_memory().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let taken = batch(&mut rng, "taken", 1);
    store.import_accounts(&taken).unwrap();

    for (case, expected) in [
        ("identifier", 0),
        ("account", 1),
        ("parent", 2),
        ("channel", 3),
    ] {
        let mut accounts = batch(&mut rng, case, 20);
        let last = accounts.last_mut().unwrap();
        match expected {
            0 => last.1[0].identifier = "TAKEN-0-0".into(),
            1 => last.0.id = taken[0].0.id,
            2 => {
                last.0.kind = AccountKind::Sub {
                    parent: AccountId::random(&mut rng),
                }
            }
            _ => last.1[1].channel = Channel::Ftp,
        }
        let err = store.import_accounts(&accounts).unwrap_err();
        let fits = match expected {
            0 => matches!(err, StoreError::AlreadyExists(Existing::Identifier)),
            1 => matches!(err, StoreError::AlreadyExists(Existing::Account)),
            2 => matches!(err, StoreError::NotFound(Entity::Account(_))),
            _ => matches!(
                err,
                StoreError::AlreadyExists(Existing::ChannelFull(Channel::Ftp))
            ),
        };
        assert!(fits, "{case}: {err:?}");
        for (account, _, _) in &accounts[..19] {
            assert_eq!(store.account(account.id).unwrap(), None, "{case}");
            assert!(store.audit_events(account.id, 10).unwrap().is_empty());
        }
        assert_eq!(
            store.key_by_identifier(&format!("{case}-0-0")).unwrap(),
            None
        );
    }
}
