//! Test support for store backends and embedders (feature `testing`).
//!
//! - [`conformance`]: one public function per behaviour of the storage
//!   contract, each taking a fresh store; [`crate::store_conformance_tests!`]
//!   generates the `#[test]` wrappers in one line.
//! - [`strategies`]: proptest strategies for the domain types.
//! - [`foreign`]: hashes in the formats imported from other systems, made
//!   by the crates that implement them.
//! - [`bulk`]: many accounts with keys, for loading benchmark databases.
//! - [`records`]: plain records for tests that talk to a store directly.
//! - [`Fixture`]: a service over a store with a manual clock, a seeded
//!   generator and the fast hashing preset.

pub mod bulk;
pub mod conformance;
pub mod foreign;
pub mod records;
pub mod strategies;

use crate::clock::ManualClock;
use crate::policy::Policy;
use crate::service::{ApiKeys, NewAccount};
pub use crate::store::StoreCall;
use crate::store::{DynStore, Store};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::sync::Arc;
use time::OffsetDateTime;
use time::macros::datetime;

/// The instant a fixture's clock starts at: 2025-01-01T00:00:00Z.
pub const START: OffsetDateTime = datetime!(2025-01-01 0:00 UTC);

/// A service ready for tests, with its clock and its store.
pub struct Fixture {
    /// The service.
    pub keys: ApiKeys,
    /// Its clock, to move time.
    pub clock: Arc<ManualClock>,
    /// Its store, to look behind the service's back (or share with another
    /// fixture, of another seed).
    pub store: Arc<DynStore>,
}

impl Fixture {
    /// A service over `store` with [`Policy::fast_for_tests`] without
    /// throttling (tests refuse the same credentials from one address over
    /// and over), a clock at [`START`] and a generator seeded with `seed`.
    /// Tests of the throttle pass a policy of their own to
    /// [`Fixture::with_policy`].
    ///
    /// Two fixtures sharing one store need different seeds, or their ids
    /// collide.
    pub fn new(store: Arc<DynStore>, seed: u64) -> Self {
        let policy = Policy::fast_for_tests().throttle(crate::ThrottlePolicy::off());
        Self::with_policy(store, seed, policy)
    }

    /// As [`Fixture::new`], with another policy.
    pub fn with_policy(store: Arc<DynStore>, seed: u64, policy: Policy) -> Self {
        let clock = Arc::new(ManualClock::new(START));
        let keys = match ApiKeys::new(
            store.clone(),
            policy,
            clock.clone(),
            ChaCha20Rng::seed_from_u64(seed),
        ) {
            Ok(k) => k,
            Err(e) => unreachable_in_tests(e),
        };
        Fixture { keys, clock, store }
    }
}

impl Fixture {
    /// Opens a master account created at [`START`] (after the cutover, so
    /// with no default key), as the operator.
    pub fn master(&self) -> crate::Account {
        match self.keys.open_account(
            crate::Actor::Operator,
            NewAccount::master().created_at(START),
        ) {
            Ok(opened) => opened.account,
            Err(e) => unreachable_in_tests(e),
        }
    }

    /// Opens a sub-account of `parent` created at [`START`], as the operator.
    pub fn sub(&self, parent: crate::AccountId) -> crate::Account {
        match self.keys.open_account(
            crate::Actor::Operator,
            NewAccount::sub(parent).created_at(START),
        ) {
            Ok(opened) => opened.account,
            Err(e) => unreachable_in_tests(e),
        }
    }
}

#[allow(clippy::panic)]
fn unreachable_in_tests(e: impl std::fmt::Display) -> ! {
    panic!("test fixture failed: {e}")
}

/// A store that keeps something alive exactly as long as itself: the
/// temporary directory of a file store, the throw-away schema of a server
/// store. The store is dropped first, then the guard (field order).
#[derive(Debug)]
pub struct Guarded<S, G> {
    /// The store; every call goes to it.
    pub store: S,
    /// What must outlive the store.
    pub guard: G,
}

crate::store::forward_store!(
    impl[S: Store, G: Send + Sync] Guarded<S, G>,
    |this, _call| this.store,
    Ok::<(), crate::StoreError>(())
);

/// A store whose every call goes first to `before`, which may count it or
/// fail it (its error is then the call's answer), and then to `store`: for
/// tests of what the service asks of a store, and of a store that fails.
///
/// ```
/// use apikeys::testing::{Intercepted, StoreCall};
/// use apikeys::{MemoryStore, StoreError};
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// let lookups = AtomicUsize::new(0);
/// let store = Intercepted {
///     store: MemoryStore::new(),
///     before: |call| {
///         if call == StoreCall::KeyByIdentifier {
///             lookups.fetch_add(1, Ordering::SeqCst);
///         }
///         Ok::<(), StoreError>(())
///     },
/// };
/// # use apikeys::Store;
/// assert!(store.key_by_identifier("nobody").unwrap().is_none());
/// assert_eq!(lookups.load(Ordering::SeqCst), 1);
/// ```
pub struct Intercepted<S, F> {
    /// The store; every call that `before` lets through goes to it.
    pub store: S,
    /// Called before each call, with which one it is.
    pub before: F,
}

crate::store::forward_store!(
    impl[S, F] Intercepted<S, F>
    where [S: Store, F: Fn(StoreCall) -> Result<(), crate::StoreError> + Send + Sync],
    |this, call| this.store,
    (this.before)(call)
);

/// What the conformance macro accepts as "a new store": a store, or an
/// `Option` of one, where `None` means "skip" (for a backend whose server is
/// not configured on this machine; the caller prints why).
pub trait TestStore {
    /// The store behind `dyn`, or `None` to skip the test.
    fn into_test_store(self) -> Option<Arc<DynStore>>;
}

impl<S: Store + 'static> TestStore for S {
    fn into_test_store(self) -> Option<Arc<DynStore>> {
        Some(Arc::new(self))
    }
}

impl<S: Store + 'static> TestStore for Option<S> {
    fn into_test_store(self) -> Option<Arc<DynStore>> {
        self.map(|s| Arc::new(s) as Arc<DynStore>)
    }
}

/// Generates one `#[test]` per conformance behaviour for a backend.
///
/// The argument is an expression evaluated afresh for each test, giving a
/// new, empty store (or an `Option` of one; `None` skips the test):
///
/// ```ignore
/// apikeys::store_conformance_tests!(MySqlStore::open_in_memory().unwrap());
/// ```
#[macro_export]
macro_rules! store_conformance_tests {
    ($new_store:expr) => {
        $crate::__conformance_list!($crate::__conformance_tests; $new_store);
    };
}

/// Calls the macro `$then` with `$args`, a `;` and the name of every
/// function of the conformance suite: the one list of the suite, which
/// [`store_conformance_tests!`] and the suite's own tests both use.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_list {
    ($($then:tt)::+ ; $($args:tt)*) => {
        $($then)::+!($($args)*;
            account_roundtrip,
            sub_account_needs_stored_parent,
            create_account_is_all_or_nothing,
            key_roundtrip_every_field,
            identifier_unique_ignoring_case,
            one_key_per_channel_except_rest,
            insert_key_needs_account,
            key_id_is_unique,
            update_is_compare_and_swap,
            update_moves_the_identifier,
            upgrade_hash_is_compare_and_swap,
            delete_frees_identifier_and_channel,
            audit_newest_first_with_limit,
            audit_event_roundtrip_every_field,
            refused_account_creations_leave_no_trace,
            refused_key_inserts_leave_no_trace,
            refused_updates_leave_no_trace,
            refused_deletes_leave_no_trace,
            which_error_wins_create_account,
            which_error_wins_insert_key,
            which_error_wins_update_key,
            identifiers_are_not_patterns,
            identifier_case_folding_is_ascii_only,
            identifiers_match_whole,
            keys_listing_is_exactly_the_account,
            audit_listing_is_exactly_the_account,
            keys_ordered_by_creation_then_id,
            audit_ties_newest_recorded_first,
            sub_accounts_listing_is_exactly_the_master,
            accounts_are_paged_by_id,
            instants_keep_every_nanosecond,
            instants_outside_the_range_are_unstorable,
            versions_beyond_the_range_are_unstorable,
            longest_values_round_trip,
            longest_values_the_service_writes_round_trip,
            update_keeps_immutable_fields,
            upgrade_changes_only_the_hash,
            writes_are_visible_to_other_threads_at_once,
            lookups_see_each_change_from_the_next_read,
            race_create_same_account,
            race_initial_keys_same_identifier,
            race_same_identifier,
            race_same_channel,
            race_rest_limit,
            race_rename_onto_one_identifier,
            race_compare_and_swap,
            race_upgrade_secret_hash,
            race_delete_same_key,
            race_delete_at_version_with_update,
            tokens_live_and_die_with_their_credentials,
            token_inserts_are_checked_and_refusals_leave_no_trace,
            token_inserts_purge_expired_and_keep_the_bound,
            token_instants_are_kept_exactly_or_refused,
            purge_removes_exactly_the_expired_tokens,
            race_token_inserts_keep_the_bound,
            token_revocation_is_seen_at_once,
            lifecycle_fields_round_trip,
            update_writes_lifecycle_and_keeps_usage,
            suspension_and_policy_are_written_alone,
            record_uses_keeps_the_newest,
            lifecycle_instants_outside_the_range_are_unstorable,
            dormant_keys_are_listed_exactly,
            race_uses_keep_the_newest,
            race_suspension_and_policy_both_land,
            policy_lifetimes_beyond_the_range_are_unstorable,
            external_ids_round_trip_and_are_found_exactly,
            external_id_is_unique,
            race_same_external_id,
            create_accounts_is_all_or_nothing_per_account,
            model_based_sequences,
            model_based_concurrent,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($new_store:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let Some(store) = $crate::testing::TestStore::into_test_store($new_store) else {
                    return;
                };
                $crate::testing::conformance::$name(store);
            }
        )*
    };
}
