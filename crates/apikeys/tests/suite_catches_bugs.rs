//! The conformance suite has teeth: a copy of the in-memory store, with one
//! bug switched on at a time (the bugs stores really have: a check and a
//! write in separate critical sections, identifiers compared as patterns or
//! folded too much, unscoped listings, wrong tie orders, truncated instants
//! and values, immutable fields overwritten, events for refused writes,
//! the wrong error first, caches that hide writes...), fails it.
//!
//! `every_bug_is_caught` runs in CI: for each bug, the suite test that
//! should catch it (a race test up to three times), and the whole suite if
//! that one does not. The ignored tests print the full table (which tests
//! catch each bug) and how many of 20 runs of its race test catch each
//! race bug:
//!
//! ```text
//! cargo test -p apikeys --all-features --test suite_catches_bugs -- --ignored --nocapture
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apikeys::account::{Account, AccountKind, AccountPolicy, ExternalId};
use apikeys::audit::AuditEvent;
use apikeys::hashing::SecretHash;
use apikeys::id::{AccountId, KeyId};
use apikeys::key::KeyRecord;
use apikeys::lifecycle::HeldKey;
use apikeys::store::DormantQuery;
use apikeys::store::encoding::{instant_to_nanos, version_to_i64};
use apikeys::store::{AccountRecords, DynStore, Entity, Existing, Store, StoreError, Unstorable};
use apikeys::testing::conformance;
use apikeys::token::{TokenDigest, TokenRecord};
use apikeys::usage::KeyUse;
use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use time::{OffsetDateTime, UtcOffset};

/// The suite, as (name, function), from the suite's own list.
macro_rules! suite_list {
    (; $($name:ident),* $(,)?) => {
        const SUITE: &[(&str, fn(Arc<DynStore>))] = &[$((stringify!($name), conformance::$name)),*];
    };
}
apikeys::__conformance_list!(suite_list;);

/// One bug each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Bug {
    /// No bug: the copy as the in-memory store is.
    Correct,
    // A check and its write in separate critical sections.
    SplitCreateAccount,
    SplitInsertIdentifier,
    SplitInsertChannel,
    SplitInsertRestLimit,
    SplitUpdateIdentifier,
    SplitUpdateVersion,
    SplitDelete,
    SplitUpgrade,
    // Identifiers.
    CaseSensitive,
    UnicodeFolding,
    BitwiseFolding,
    LikeMatching,
    GlobMatching,
    PadSpaces,
    PrefixMatch,
    NulTerminated,
    // Listings.
    KeysIncludeSubAccounts,
    AuditIncludesSubAccounts,
    KeyTiesByIdentifier,
    KeyTiesDescending,
    SignedIdOrder,
    KeysByLastChange,
    AuditTiesOldestFirst,
    AuditIgnoresLimit,
    // Instants and versions.
    MicrosecondInstants,
    MicrosecondAudit,
    MicrosecondAccounts,
    MicrosecondGrace,
    KeepsOffset,
    NoRangeCheck,
    EventsUnchecked,
    NoInstantsBefore1970,
    VersionUnchecked,
    // Long values.
    LabelCutTo64Bytes,
    DetailCutTo64KiBMinusOne,
    WhitelistCutTo100,
    IdentifierCutTo63,
    HashesOver255Refused,
    // Immutable fields.
    UpdateWritesChannel,
    UpdateWritesAccount,
    UpdateWritesCreatedAt,
    UpdateRefusesIgnoredCreatedAt,
    UpgradeBumpsVersion,
    UpgradeRecordsEvent,
    UpgradeTouchesChangedAt,
    UpgradeIgnoresCurrent,
    UpgradeIgnoresHashCase,
    UpgradeEndsGrace,
    // Refused writes leaving traces.
    EventForRefusedInsert,
    EventForConflict,
    EventForRefusedDelete,
    EventForRefusedCreate,
    PartialCreate,
    KeyKeptWhenEventUnstorable,
    // Which error wins.
    ChannelBeforeIdentifier,
    IdentifierBeforeKeyId,
    KeyIdBeforeAccount,
    IdentifierBeforeConflict,
    ParentBeforeExistingAccount,
    KeysBeforeParent,
    NotFoundNamesTheKey,
    ConflictReportsExpected,
    // Caches that hide writes.
    StaleLookupCache,
    PerThreadKeyCache,
    // Other rules.
    DeleteKeepsIdentifier,
    RenameKeepsOldIdentifier,
    ChannelCountedAcrossAccounts,
    RestLimitOffByOne,
    InitialKeysChannelUnchecked,
    ForeignInitialKeyAccepted,
    DeleteErasesTrail,
    SelfParentAccepted,
    InsertDropsEvent,
    // Tokens.
    TokensSurviveNewSecret,
    TokensSurviveRename,
    TokensSurviveDelete,
    TokensDieWithTheWhitelist,
    TokenVersionUnchecked,
    TokenBoundIgnored,
    TokenBoundDropsNewest,
    ExpiredTokensKeptOnIssue,
    PurgeSparesExactlyNow,
    TokenEventForConflict,
    SplitTokenBound,
    // Account listings and deletion at a version.
    SubAccountsOfEveryMaster,
    SubAccountsById,
    SubAccountsByCreationOnly,
    SubAccountsIncludeTheMaster,
    AccountsPageIncludesTheCursor,
    AccountsPageSkipsOneMore,
    AccountsByCreation,
    AccountsSignedOrder,
    AccountsLimitOffByOne,
    AccountsMastersOnly,
    DeleteIgnoresVersion,
    DeleteConflictBeforeNotFound,
    SplitDeleteVersion,
    // Lifecycle.
    MicrosecondExpiry,
    UpdateIgnoresEnabled,
    UpdateIgnoresExpiry,
    UpdateWritesUsage,
    UpdateWritesLegacyMark,
    UpdateKeepsPreviousUse,
    SuspendWithoutEvent,
    SuspendAbsentAccepted,
    PolicyResetsSuspension,
    SplitAccountWrite,
    UsesOverwriteNewer,
    UsesIgnorePreviousHash,
    UsesPartialBatch,
    UsesRefuseGoneKey,
    UsesBumpVersion,
    SplitUses,
    HeldWithoutMaster,
    HeldStaleMaster,
    DormantExclusiveBound,
    DormantIgnoresSubAccounts,
    DormantLegacyIgnoresUse,
    DormantPageIncludesCursor,
    LifetimeUnchecked,
    // External ids and bulk creation.
    ExternalIdUnchecked,
    SplitExternalId,
    ExternalIdFolded,
    ExternalIdPrefix,
    ExternalIdLost,
    ExternalIdAfterParent,
    SuspendDropsExternalId,
    BulkStopsAtFirstRefusal,
    BulkAllOrNothing,
    BulkPartialAccount,
}

use Bug::*;

/// Each bug, what it is, and the suite test that should catch it.
const BUGS: &[(Bug, &str, &str)] = &[
    (
        SplitCreateAccount,
        "create_account checks the id, then writes, in two critical sections",
        "race_create_same_account",
    ),
    (
        SplitInsertIdentifier,
        "insert_key checks the identifier, then writes, in two critical sections",
        "race_same_identifier",
    ),
    (
        SplitInsertChannel,
        "insert_key checks a channel's limit of one, then writes, in two critical sections",
        "race_same_channel",
    ),
    (
        SplitInsertRestLimit,
        "insert_key counts REST keys, then writes, in two critical sections",
        "race_rest_limit",
    ),
    (
        SplitUpdateIdentifier,
        "update_key checks the new identifier, then writes, in two critical sections",
        "race_rename_onto_one_identifier",
    ),
    (
        SplitUpdateVersion,
        "update_key compares the version, then writes, in two critical sections",
        "race_compare_and_swap",
    ),
    (
        SplitDelete,
        "delete_key checks the key exists, then deletes and records, in two critical sections",
        "race_delete_same_key",
    ),
    (
        SplitUpgrade,
        "upgrade_secret_hash compares the hash, then writes, in two critical sections",
        "race_upgrade_secret_hash",
    ),
    (
        CaseSensitive,
        "identifiers compared case-sensitively",
        "identifier_unique_ignoring_case",
    ),
    (
        UnicodeFolding,
        "identifiers folded with Unicode lowercase (É = é)",
        "identifier_case_folding_is_ascii_only",
    ),
    (
        BitwiseFolding,
        "identifiers folded by setting bit 0x20 of 0x40-0x5F (@ = `, [ = {)",
        "identifier_case_folding_is_ascii_only",
    ),
    (
        LikeMatching,
        "identifiers compared with LIKE (_ and % wildcards)",
        "identifiers_are_not_patterns",
    ),
    (
        GlobMatching,
        "lookups compared with GLOB (*, ?, [...])",
        "identifiers_are_not_patterns",
    ),
    (
        PadSpaces,
        "trailing spaces ignored in comparisons (PAD SPACE)",
        "identifiers_match_whole",
    ),
    (
        PrefixMatch,
        "a lookup finds an identifier it is a prefix of",
        "identifiers_match_whole",
    ),
    (
        NulTerminated,
        "identifiers compared up to the first NUL (C strings)",
        "identifiers_match_whole",
    ),
    (
        KeysIncludeSubAccounts,
        "keys_of_account includes the sub-accounts' keys",
        "keys_listing_is_exactly_the_account",
    ),
    (
        AuditIncludesSubAccounts,
        "audit_events includes the sub-accounts' events",
        "audit_listing_is_exactly_the_account",
    ),
    (
        KeyTiesByIdentifier,
        "keys with equal creation instants ordered by identifier",
        "keys_ordered_by_creation_then_id",
    ),
    (
        KeyTiesDescending,
        "keys with equal creation instants ordered by id descending",
        "keys_ordered_by_creation_then_id",
    ),
    (
        SignedIdOrder,
        "ids compared as signed bytes",
        "keys_ordered_by_creation_then_id",
    ),
    (
        KeysByLastChange,
        "keys ordered by their last change",
        "keys_ordered_by_creation_then_id",
    ),
    (
        AuditTiesOldestFirst,
        "audit events with equal instants oldest recorded first",
        "audit_ties_newest_recorded_first",
    ),
    (
        AuditIgnoresLimit,
        "audit_events ignores its limit",
        "audit_newest_first_with_limit",
    ),
    (
        MicrosecondInstants,
        "every instant cut to microseconds (timestamptz)",
        "instants_keep_every_nanosecond",
    ),
    (
        MicrosecondAudit,
        "audit instants cut to microseconds",
        "instants_keep_every_nanosecond",
    ),
    (
        MicrosecondAccounts,
        "account creation instants cut to microseconds",
        "instants_keep_every_nanosecond",
    ),
    (
        MicrosecondGrace,
        "grace expiries cut to microseconds",
        "instants_keep_every_nanosecond",
    ),
    (
        KeepsOffset,
        "instants read back in the offset they were written in",
        "instants_keep_every_nanosecond",
    ),
    (
        NoRangeCheck,
        "instants out of range stored instead of refused",
        "instants_outside_the_range_are_unstorable",
    ),
    (
        EventsUnchecked,
        "audit instants out of range stored instead of refused",
        "instants_outside_the_range_are_unstorable",
    ),
    (
        NoInstantsBefore1970,
        "instants before 1970 refused (unsigned seconds)",
        "instants_keep_every_nanosecond",
    ),
    (
        VersionUnchecked,
        "versions beyond 2^63 - 1 stored instead of refused",
        "versions_beyond_the_range_are_unstorable",
    ),
    (
        LabelCutTo64Bytes,
        "labels cut to 64 bytes",
        "longest_values_round_trip",
    ),
    (
        DetailCutTo64KiBMinusOne,
        "audit details cut to 65,535 bytes",
        "longest_values_round_trip",
    ),
    (
        WhitelistCutTo100,
        "whitelists cut to 100 entries",
        "longest_values_round_trip",
    ),
    (
        IdentifierCutTo63,
        "identifiers cut to 63 bytes",
        "identifiers_match_whole",
    ),
    (
        HashesOver255Refused,
        "hashes over 255 bytes refused as a backend error (VARCHAR(255))",
        "longest_values_round_trip",
    ),
    (
        UpdateWritesChannel,
        "update_key writes the channel it is given",
        "update_keeps_immutable_fields",
    ),
    (
        UpdateWritesAccount,
        "update_key writes the account it is given",
        "update_keeps_immutable_fields",
    ),
    (
        UpdateWritesCreatedAt,
        "update_key writes the creation instant it is given",
        "update_keeps_immutable_fields",
    ),
    (
        UpdateRefusesIgnoredCreatedAt,
        "update_key refuses a creation instant out of range that it does not write",
        "update_keeps_immutable_fields",
    ),
    (
        UpgradeBumpsVersion,
        "upgrade_secret_hash bumps the version",
        "upgrade_changes_only_the_hash",
    ),
    (
        UpgradeRecordsEvent,
        "upgrade_secret_hash records an audit event",
        "upgrade_changes_only_the_hash",
    ),
    (
        UpgradeTouchesChangedAt,
        "upgrade_secret_hash sets changed_at",
        "upgrade_changes_only_the_hash",
    ),
    (
        UpgradeIgnoresCurrent,
        "upgrade_secret_hash replaces whatever hash is stored",
        "upgrade_hash_is_compare_and_swap",
    ),
    (
        UpgradeIgnoresHashCase,
        "upgrade_secret_hash compares hashes ignoring case",
        "upgrade_hash_is_compare_and_swap",
    ),
    (
        UpgradeEndsGrace,
        "upgrade_secret_hash drops the previous secret",
        "upgrade_changes_only_the_hash",
    ),
    (
        EventForRefusedInsert,
        "insert_key records its event before checking",
        "refused_key_inserts_leave_no_trace",
    ),
    (
        EventForConflict,
        "update_key records its event on a conflict",
        "refused_updates_leave_no_trace",
    ),
    (
        EventForRefusedDelete,
        "delete_key records its event for an absent key",
        "refused_deletes_leave_no_trace",
    ),
    (
        EventForRefusedCreate,
        "create_account records its events when the id is taken",
        "refused_account_creations_leave_no_trace",
    ),
    (
        PartialCreate,
        "create_account keeps the account when an initial key is refused",
        "create_account_is_all_or_nothing",
    ),
    (
        KeyKeptWhenEventUnstorable,
        "insert_key writes the key before finding its event unstorable",
        "instants_outside_the_range_are_unstorable",
    ),
    (
        ChannelBeforeIdentifier,
        "insert_key checks the channel before the identifier",
        "which_error_wins_insert_key",
    ),
    (
        IdentifierBeforeKeyId,
        "insert_key checks the identifier before the key id",
        "which_error_wins_insert_key",
    ),
    (
        KeyIdBeforeAccount,
        "insert_key checks the key id before the account",
        "which_error_wins_insert_key",
    ),
    (
        IdentifierBeforeConflict,
        "update_key checks the identifier before the version",
        "which_error_wins_update_key",
    ),
    (
        ParentBeforeExistingAccount,
        "create_account checks the parent before the id",
        "which_error_wins_create_account",
    ),
    (
        KeysBeforeParent,
        "create_account checks the initial keys before the parent",
        "which_error_wins_create_account",
    ),
    (
        NotFoundNamesTheKey,
        "insert_key's NotFound names the key, not the account",
        "insert_key_needs_account",
    ),
    (
        ConflictReportsExpected,
        "Conflict reports the expected version as found",
        "update_is_compare_and_swap",
    ),
    (
        StaleLookupCache,
        "a lookup cache that only a delete invalidates",
        "writes_are_visible_to_other_threads_at_once",
    ),
    (
        PerThreadKeyCache,
        "a per-thread cache of keys by id, invalidated by the thread's own writes",
        "writes_are_visible_to_other_threads_at_once",
    ),
    (
        DeleteKeepsIdentifier,
        "delete_key leaves the identifier taken",
        "delete_frees_identifier_and_channel",
    ),
    (
        RenameKeepsOldIdentifier,
        "update_key leaves the old identifier finding the key",
        "update_moves_the_identifier",
    ),
    (
        ChannelCountedAcrossAccounts,
        "channel limits counted over all accounts",
        "one_key_per_channel_except_rest",
    ),
    (
        RestLimitOffByOne,
        "the REST limit lets one key too many in",
        "one_key_per_channel_except_rest",
    ),
    (
        InitialKeysChannelUnchecked,
        "initial keys may hold two keys of one channel",
        "create_account_is_all_or_nothing",
    ),
    (
        ForeignInitialKeyAccepted,
        "initial keys of another account accepted",
        "refused_account_creations_leave_no_trace",
    ),
    (
        DeleteErasesTrail,
        "delete_key erases the key's audit events",
        "delete_frees_identifier_and_channel",
    ),
    (
        SelfParentAccepted,
        "a sub-account naming itself as parent accepted",
        "sub_account_needs_stored_parent",
    ),
    (
        InsertDropsEvent,
        "insert_key records no event",
        "audit_newest_first_with_limit",
    ),
    (
        TokensSurviveNewSecret,
        "update_key keeps the key's tokens when the secret changes",
        "tokens_live_and_die_with_their_credentials",
    ),
    (
        TokensSurviveRename,
        "update_key keeps the key's tokens when the identifier changes",
        "tokens_live_and_die_with_their_credentials",
    ),
    (
        TokensSurviveDelete,
        "delete_key leaves the key's tokens behind",
        "tokens_live_and_die_with_their_credentials",
    ),
    (
        TokensDieWithTheWhitelist,
        "update_key deletes the key's tokens on any change",
        "tokens_live_and_die_with_their_credentials",
    ),
    (
        TokenVersionUnchecked,
        "insert_token ignores the key's version",
        "token_inserts_are_checked_and_refusals_leave_no_trace",
    ),
    (
        TokenBoundIgnored,
        "insert_token keeps every token",
        "token_inserts_purge_expired_and_keep_the_bound",
    ),
    (
        TokenBoundDropsNewest,
        "insert_token makes room by deleting the newest token",
        "token_inserts_purge_expired_and_keep_the_bound",
    ),
    (
        ExpiredTokensKeptOnIssue,
        "insert_token keeps the key's expired tokens",
        "token_inserts_purge_expired_and_keep_the_bound",
    ),
    (
        PurgeSparesExactlyNow,
        "purge_expired_tokens keeps a token expiring exactly now",
        "purge_removes_exactly_the_expired_tokens",
    ),
    (
        TokenEventForConflict,
        "insert_token records an event for a refused token",
        "token_inserts_are_checked_and_refusals_leave_no_trace",
    ),
    (
        SplitTokenBound,
        "insert_token counts the key's tokens, then writes, in two critical sections",
        "race_token_inserts_keep_the_bound",
    ),
    (
        SubAccountsOfEveryMaster,
        "sub_accounts lists every sub-account, whatever its master",
        "sub_accounts_listing_is_exactly_the_master",
    ),
    (
        SubAccountsById,
        "sub_accounts ordered by id only",
        "sub_accounts_listing_is_exactly_the_master",
    ),
    (
        SubAccountsByCreationOnly,
        "sub_accounts with equal creation instants in insertion order",
        "sub_accounts_listing_is_exactly_the_master",
    ),
    (
        SubAccountsIncludeTheMaster,
        "sub_accounts lists the account itself too",
        "sub_accounts_listing_is_exactly_the_master",
    ),
    (
        AccountsPageIncludesTheCursor,
        "accounts starts a page at its cursor (>= instead of >)",
        "accounts_are_paged_by_id",
    ),
    (
        AccountsPageSkipsOneMore,
        "accounts skips the account right after the cursor",
        "accounts_are_paged_by_id",
    ),
    (
        AccountsByCreation,
        "accounts ordered by creation instant",
        "accounts_are_paged_by_id",
    ),
    (
        AccountsSignedOrder,
        "account ids compared as signed bytes",
        "accounts_are_paged_by_id",
    ),
    (
        AccountsLimitOffByOne,
        "accounts returns one more than the limit",
        "accounts_are_paged_by_id",
    ),
    (
        AccountsMastersOnly,
        "accounts lists masters only",
        "accounts_are_paged_by_id",
    ),
    (
        DeleteIgnoresVersion,
        "delete_key deletes whatever the version asked for",
        "refused_deletes_leave_no_trace",
    ),
    (
        DeleteConflictBeforeNotFound,
        "delete_key of an absent key at a version answers Conflict",
        "refused_deletes_leave_no_trace",
    ),
    (
        SplitDeleteVersion,
        "delete_key compares the version, then deletes, in two critical sections",
        "race_delete_at_version_with_update",
    ),
    (
        MicrosecondExpiry,
        "a key's expiry is kept to the microsecond",
        "update_writes_lifecycle_and_keeps_usage",
    ),
    (
        UpdateIgnoresEnabled,
        "update_key does not write the enabled state",
        "update_writes_lifecycle_and_keeps_usage",
    ),
    (
        UpdateIgnoresExpiry,
        "update_key does not write the expiry",
        "update_writes_lifecycle_and_keeps_usage",
    ),
    (
        UpdateWritesUsage,
        "update_key writes the record's usage over the recorded one",
        "update_writes_lifecycle_and_keeps_usage",
    ),
    (
        UpdateWritesLegacyMark,
        "update_key writes the record's legacy mark",
        "update_writes_lifecycle_and_keeps_usage",
    ),
    (
        UpdateKeepsPreviousUse,
        "a new previous secret keeps the old one's last use",
        "update_writes_lifecycle_and_keeps_usage",
    ),
    (
        SuspendWithoutEvent,
        "set_account_suspended records no event",
        "suspension_and_policy_are_written_alone",
    ),
    (
        SuspendAbsentAccepted,
        "set_account_suspended of an absent account answers Ok",
        "suspension_and_policy_are_written_alone",
    ),
    (
        PolicyResetsSuspension,
        "set_account_policy writes the suspension back to false",
        "suspension_and_policy_are_written_alone",
    ),
    (
        SplitAccountWrite,
        "account writes read the account, then write all of it back, in two critical sections",
        "race_suspension_and_policy_both_land",
    ),
    (
        UsesOverwriteNewer,
        "record_uses writes an older use over a newer one",
        "record_uses_keeps_the_newest",
    ),
    (
        UsesIgnorePreviousHash,
        "record_uses records a previous use whatever hash it matched",
        "record_uses_keeps_the_newest",
    ),
    (
        UsesPartialBatch,
        "record_uses writes the good uses of a batch it refuses",
        "lifecycle_instants_outside_the_range_are_unstorable",
    ),
    (
        UsesRefuseGoneKey,
        "record_uses refuses a batch naming a key that is gone",
        "record_uses_keeps_the_newest",
    ),
    (
        UsesBumpVersion,
        "record_uses bumps the key's version",
        "record_uses_keeps_the_newest",
    ),
    (
        SplitUses,
        "record_uses compares the instant, then writes, in two critical sections",
        "race_uses_keep_the_newest",
    ),
    (
        HeldWithoutMaster,
        "key_for_authentication leaves a sub-account's master out",
        "lifecycle_fields_round_trip",
    ),
    (
        HeldStaleMaster,
        "key_for_authentication answers a master as it was at the key's first read",
        "suspension_and_policy_are_written_alone",
    ),
    (
        DormantExclusiveBound,
        "dormant_keys leaves out a key last used exactly at the instant",
        "dormant_keys_are_listed_exactly",
    ),
    (
        DormantIgnoresSubAccounts,
        "dormant_keys of a master leaves its sub-accounts' keys out",
        "dormant_keys_are_listed_exactly",
    ),
    (
        DormantLegacyIgnoresUse,
        "dormant_keys lists used legacy default keys as never used",
        "dormant_keys_are_listed_exactly",
    ),
    (
        DormantPageIncludesCursor,
        "dormant_keys pages include the cursor's key",
        "dormant_keys_are_listed_exactly",
    ),
    (
        LifetimeUnchecked,
        "a policy lifetime beyond 2^63 - 1 ns is accepted",
        "policy_lifetimes_beyond_the_range_are_unstorable",
    ),
    (
        ExternalIdUnchecked,
        "two accounts may carry one external id",
        "external_id_is_unique",
    ),
    (
        SplitExternalId,
        "create_account checks the external id, then writes, in two critical sections",
        "race_same_external_id",
    ),
    (
        ExternalIdFolded,
        "account_by_external_id ignores ASCII case",
        "external_ids_round_trip_and_are_found_exactly",
    ),
    (
        ExternalIdPrefix,
        "account_by_external_id finds an id the text starts",
        "external_ids_round_trip_and_are_found_exactly",
    ),
    (
        ExternalIdLost,
        "create_account drops the external id",
        "external_ids_round_trip_and_are_found_exactly",
    ),
    (
        ExternalIdAfterParent,
        "a missing parent wins over a taken external id",
        "external_id_is_unique",
    ),
    (
        SuspendDropsExternalId,
        "set_account_suspended clears the external id",
        "external_ids_round_trip_and_are_found_exactly",
    ),
    (
        BulkStopsAtFirstRefusal,
        "create_accounts stops at the first refused account",
        "create_accounts_is_all_or_nothing_per_account",
    ),
    (
        BulkAllOrNothing,
        "create_accounts writes nothing when one account is refused",
        "create_accounts_is_all_or_nothing_per_account",
    ),
    (
        BulkPartialAccount,
        "create_accounts keeps the account row of an account whose key is refused",
        "create_accounts_is_all_or_nothing_per_account",
    ),
];

// ----- the buggy store ----------------------------------------------------

#[derive(Debug, Default)]
struct Inner {
    accounts: HashMap<AccountId, Account>,
    keys: HashMap<KeyId, KeyRecord>,
    /// Folded identifier to key.
    by_identifier: HashMap<String, KeyId>,
    events: Vec<AuditEvent>,
    tokens: HashMap<TokenDigest, TokenRecord>,
}

/// The in-memory store's logic, written again, with `bug` switched on.
struct Buggy {
    bug: Bug,
    inner: RwLock<Inner>,
    /// For `StaleLookupCache`.
    cache: Mutex<HashMap<String, Option<KeyRecord>>>,
    /// For `HeldStaleMaster`.
    held_cache: Mutex<HashMap<AccountId, Account>>,
    /// Tells stores apart in the per-thread cache.
    serial: usize,
}

thread_local! {
    static THREAD_CACHE: RefCell<HashMap<(usize, KeyId), Option<KeyRecord>>> = RefCell::new(HashMap::new());
}

impl Buggy {
    fn new(bug: Bug) -> Self {
        static SERIAL: AtomicUsize = AtomicUsize::new(0);
        Buggy {
            bug,
            inner: RwLock::default(),
            cache: Mutex::default(),
            held_cache: Mutex::default(),
            serial: SERIAL.fetch_add(1, Ordering::SeqCst),
        }
    }
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
    fn is(&self, bug: Bug) -> bool {
        self.bug == bug
    }
    /// After a write by this thread: its own per-thread cache forgets.
    fn wrote(&self) {
        THREAD_CACHE.with(|c| c.borrow_mut().retain(|(s, _), _| *s != self.serial));
    }

    fn fold(&self, s: &str) -> String {
        let s = match self.bug {
            PadSpaces => s.trim_end_matches(' '),
            NulTerminated => s.split('\0').next().unwrap_or(""),
            _ => s,
        };
        match self.bug {
            CaseSensitive => s.to_string(),
            UnicodeFolding => s.to_lowercase(),
            BitwiseFolding => s
                .chars()
                .map(|c| {
                    if ('\u{40}'..='\u{5f}').contains(&c) {
                        char::from(c as u8 | 0x20)
                    } else {
                        c
                    }
                })
                .collect(),
            IdentifierCutTo63 => s.to_ascii_lowercase().chars().take(63).collect(),
            _ => s.to_ascii_lowercase(),
        }
    }

    /// An instant as stored.
    fn keep(&self, t: OffsetDateTime, micro: bool) -> Result<OffsetDateTime, Unstorable> {
        if self.is(NoRangeCheck) {
            return Ok(t);
        }
        instant_to_nanos(t)?;
        if self.is(NoInstantsBefore1970) && t < OffsetDateTime::UNIX_EPOCH {
            return Err(Unstorable::Instant(t));
        }
        let t = if self.is(KeepsOffset) {
            t
        } else {
            t.to_offset(UtcOffset::UTC)
        };
        if micro || self.is(MicrosecondInstants) {
            let ns = t.nanosecond();
            return Ok(t.replace_nanosecond(ns - ns % 1000).unwrap_or(t));
        }
        Ok(t)
    }

    fn kept_account(&self, a: &Account) -> Result<Account, StoreError> {
        self.kept_policy(&a.policy)?;
        Ok(Account {
            created_at: self.keep(a.created_at, self.is(MicrosecondAccounts))?,
            ..a.clone()
        })
    }

    fn kept_key(&self, k: &KeyRecord, check_created: bool) -> Result<KeyRecord, StoreError> {
        if !self.is(VersionUnchecked) && !self.is(NoRangeCheck) {
            version_to_i64(k.version)?;
        }
        for h in std::iter::once(&k.secret_hash).chain(k.previous_secret.as_ref().map(|p| &p.hash))
        {
            if self.is(HashesOver255Refused) && h.as_str().len() > 255 {
                return Err(StoreError::backend(
                    "value too long for type character varying(255)",
                ));
            }
        }
        let mut kept = k.clone();
        if check_created {
            kept.created_at = self.keep(k.created_at, false)?;
        }
        kept.changed_at = self.keep(k.changed_at, false)?;
        kept.expires_at = k
            .expires_at
            .map(|t| self.keep(t, self.is(MicrosecondExpiry)))
            .transpose()?;
        kept.usage.last_used_at = k
            .usage
            .last_used_at
            .map(|t| self.keep(t, false))
            .transpose()?;
        kept.usage.previous_secret_last_used_at = k
            .usage
            .previous_secret_last_used_at
            .map(|t| self.keep(t, false))
            .transpose()?;
        if let Some(p) = &mut kept.previous_secret {
            p.expires_at = self.keep(p.expires_at, self.is(MicrosecondGrace))?;
        }
        if self.is(LabelCutTo64Bytes)
            && let Some(l) = &mut kept.label
        {
            let mut end = l.len().min(64);
            while !l.is_char_boundary(end) {
                end -= 1;
            }
            l.truncate(end);
        }
        if self.is(WhitelistCutTo100) && kept.whitelist.entries().len() > 100 {
            kept.whitelist = apikeys::Whitelist::new(kept.whitelist.entries()[..100].to_vec(), 100)
                .unwrap_or_default();
        }
        if self.is(IdentifierCutTo63) {
            kept.identifier = kept.identifier.chars().take(63).collect();
        }
        Ok(kept)
    }

    fn kept_policy(&self, p: &AccountPolicy) -> Result<(), StoreError> {
        if !self.is(LifetimeUnchecked)
            && let Some(l) = p.max_key_lifetime
        {
            apikeys::store::encoding::duration_to_nanos(l)?;
        }
        Ok(())
    }

    /// An account write: `change` applied to the stored account, with its
    /// event, in one critical section (or two, with `SplitAccountWrite`).
    fn write_account(
        &self,
        id: AccountId,
        event: &AuditEvent,
        change: impl Fn(&mut Account),
    ) -> Result<(), StoreError> {
        let event = self.kept_event(event)?;
        if self.is(SplitAccountWrite) {
            let mut account = self.read().accounts.get(&id).cloned();
            if let Some(a) = &mut account {
                change(a);
            }
            std::thread::yield_now();
            let mut inner = self.write();
            let a = account.ok_or(StoreError::NotFound(Entity::Account(id)))?;
            inner.accounts.insert(id, a);
            inner.events.push(event);
            return Ok(());
        }
        let mut inner = self.write();
        self.wrote();
        match inner.accounts.get_mut(&id) {
            Some(a) => change(a),
            None if self.is(SuspendAbsentAccepted) => return Ok(()),
            None => return Err(StoreError::NotFound(Entity::Account(id))),
        }
        if !(self.is(SuspendWithoutEvent) && event.kind == apikeys::AuditKind::AccountSuspended) {
            inner.events.push(event);
        }
        Ok(())
    }

    fn apply_uses(&self, uses: &[KeyUse]) -> Result<(), StoreError> {
        if self.is(SplitUses) {
            for u in uses {
                let newer = self
                    .read()
                    .keys
                    .get(&u.key_id)
                    .is_some_and(|k| k.usage.last_used_at.is_none_or(|t| u.at > t));
                std::thread::yield_now();
                if newer && let Some(k) = self.write().keys.get_mut(&u.key_id) {
                    k.usage.last_used_at = Some(u.at);
                    k.usage.last_used_address = Some(u.address);
                }
            }
            return Ok(());
        }
        let mut inner = self.write();
        self.wrote();
        if self.is(UsesRefuseGoneKey)
            && let Some(u) = uses.iter().find(|u| !inner.keys.contains_key(&u.key_id))
        {
            return Err(StoreError::NotFound(Entity::Key(u.key_id)));
        }
        for u in uses {
            let Some(k) = inner.keys.get_mut(&u.key_id) else {
                continue;
            };
            if self.is(UsesOverwriteNewer) || k.usage.last_used_at.is_none_or(|t| u.at > t) {
                k.usage.last_used_at = Some(u.at);
                k.usage.last_used_address = Some(u.address);
            }
            if self.is(UsesBumpVersion) {
                k.version += 1;
            }
            if let Some((at, hash)) = &u.previous
                && (self.is(UsesIgnorePreviousHash)
                    || k.previous_secret.as_ref().is_some_and(|p| p.hash == *hash))
                && k.usage.previous_secret_last_used_at.is_none_or(|t| *at > t)
            {
                k.usage.previous_secret_last_used_at = Some(*at);
            }
        }
        Ok(())
    }

    fn kept_event(&self, e: &AuditEvent) -> Result<AuditEvent, StoreError> {
        let at = if self.is(EventsUnchecked) {
            e.at
        } else {
            self.keep(e.at, self.is(MicrosecondAudit))?
        };
        let mut detail = e.detail.clone();
        if self.is(DetailCutTo64KiBMinusOne) && detail.len() > 65_535 {
            let mut end = 65_535;
            while !detail.is_char_boundary(end) {
                end -= 1;
            }
            detail.truncate(end);
        }
        Ok(AuditEvent {
            at,
            detail,
            ..e.clone()
        })
    }
}

/// SQL `LIKE`, ignoring ASCII case: `_` one character, `%` any run.
fn like(value: &str, pattern: &str) -> bool {
    fn go(v: &[char], p: &[char]) -> bool {
        match p.split_first() {
            None => v.is_empty(),
            Some(('%', rest)) => (0..=v.len()).any(|i| go(&v[i..], rest)),
            Some(('_', rest)) => !v.is_empty() && go(&v[1..], rest),
            Some((c, rest)) => {
                v.first().is_some_and(|x| x.eq_ignore_ascii_case(c)) && go(&v[1..], rest)
            }
        }
    }
    let v: Vec<char> = value.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    go(&v, &p)
}

/// SQLite's `GLOB`, on folded text: `*`, `?`, `[...]`.
fn glob(value: &str, pattern: &str) -> bool {
    fn go(v: &[char], p: &[char]) -> bool {
        match p.split_first() {
            None => v.is_empty(),
            Some(('*', rest)) => (0..=v.len()).any(|i| go(&v[i..], rest)),
            Some(('?', rest)) => !v.is_empty() && go(&v[1..], rest),
            Some(('[', rest)) => {
                let Some(end) = rest.iter().position(|c| *c == ']') else {
                    return v.first() == Some(&'[') && go(&v[1..], rest);
                };
                let (set, after) = (&rest[..end], &rest[end + 1..]);
                let (negate, set) = match set.split_first() {
                    Some(('^', s)) | Some(('!', s)) => (true, s),
                    _ => (false, set),
                };
                v.first().is_some_and(|c| set.contains(c) != negate) && go(&v[1..], after)
            }
            Some((c, rest)) => v.first() == Some(c) && go(&v[1..], rest),
        }
    }
    let v: Vec<char> = value.to_ascii_lowercase().chars().collect();
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    go(&v, &p)
}

impl Inner {
    fn taken(
        &self,
        s: &Buggy,
        identifier: &str,
        other_than: Option<KeyId>,
        pending: &[KeyRecord],
    ) -> bool {
        let clash = |k: &KeyRecord| {
            if s.is(LikeMatching) {
                like(&k.identifier, identifier)
            } else {
                s.fold(&k.identifier) == s.fold(identifier)
            }
        };
        self.keys
            .values()
            .any(|k| Some(k.id) != other_than && clash(k))
            || pending.iter().any(clash)
            || (s.is(DeleteKeepsIdentifier) && self.by_identifier.contains_key(&s.fold(identifier)))
    }

    fn held(&self, s: &Buggy, key: &KeyRecord, pending: &[KeyRecord]) -> usize {
        self.keys
            .values()
            .chain(pending)
            .filter(|k| {
                (s.is(ChannelCountedAcrossAccounts) || k.account_id == key.account_id)
                    && k.channel == key.channel
            })
            .count()
    }

    fn full(&self, s: &Buggy, key: &KeyRecord, max: u32, pending: &[KeyRecord]) -> bool {
        let held = self.held(s, key, pending);
        if s.is(RestLimitOffByOne) && key.channel.allows_several_keys() {
            held > max as usize
        } else {
            held >= max as usize
        }
    }

    /// The checks of a new key, in the order the bug says.
    fn check_new_key(
        &self,
        s: &Buggy,
        key: &KeyRecord,
        max: u32,
        pending: &[KeyRecord],
        skip: Option<Bug>,
    ) -> Result<(), StoreError> {
        let id_taken = || self.keys.contains_key(&key.id) || pending.iter().any(|k| k.id == key.id);
        let ident =
            || skip != Some(SplitInsertIdentifier) && self.taken(s, &key.identifier, None, pending);
        let skip_full = match skip {
            Some(SplitInsertChannel) => !key.channel.allows_several_keys(),
            Some(SplitInsertRestLimit) => key.channel.allows_several_keys(),
            _ => false,
        };
        let full = || !skip_full && self.full(s, key, max, pending);
        let channel_full = StoreError::AlreadyExists(Existing::ChannelFull(key.channel));
        if s.is(ChannelBeforeIdentifier) && full() {
            return Err(channel_full);
        }
        if s.is(IdentifierBeforeKeyId) && ident() {
            return Err(StoreError::AlreadyExists(Existing::Identifier));
        }
        if id_taken() {
            return Err(StoreError::AlreadyExists(Existing::Key));
        }
        if ident() {
            return Err(StoreError::AlreadyExists(Existing::Identifier));
        }
        if full() {
            return Err(channel_full);
        }
        Ok(())
    }

    fn put_key(&mut self, s: &Buggy, key: &KeyRecord) {
        self.by_identifier.insert(s.fold(&key.identifier), key.id);
        self.keys.insert(key.id, key.clone());
    }
}

impl Store for Buggy {
    fn create_account(
        &self,
        account: &Account,
        keys: &[KeyRecord],
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let account = self.kept_account(account)?;
        let keys = keys
            .iter()
            .map(|k| self.kept_key(k, true))
            .collect::<Result<Vec<_>, _>>()?;
        let events = events
            .iter()
            .map(|e| self.kept_event(e))
            .collect::<Result<Vec<_>, _>>()?;
        if self.is(SplitCreateAccount) && self.read().accounts.contains_key(&account.id) {
            return Err(StoreError::AlreadyExists(Existing::Account));
        }
        let wanted_external = account.external_id.clone();
        let external_taken = |inner: &Inner| {
            !self.is(ExternalIdUnchecked)
                && wanted_external.is_some()
                && inner
                    .accounts
                    .values()
                    .any(|a| a.external_id == wanted_external)
        };
        if self.is(SplitExternalId) && external_taken(&self.read()) {
            return Err(StoreError::AlreadyExists(Existing::ExternalId));
        }
        let account = if self.is(ExternalIdLost) {
            Account {
                external_id: None,
                ..account
            }
        } else {
            account
        };
        let mut inner = self.write();
        self.wrote();
        let parent_missing = match account.kind {
            AccountKind::Sub { parent } => {
                let accepted_self = self.is(SelfParentAccepted) && parent == account.id;
                !(inner.accounts.contains_key(&parent) || accepted_self)
            }
            AccountKind::Master => false,
        };
        let parent_error =
            || StoreError::NotFound(Entity::Account(account.kind.parent().unwrap_or(account.id)));
        let check_keys = |inner: &Inner| -> Result<(), StoreError> {
            for (i, key) in keys.iter().enumerate() {
                if key.account_id != account.id && !self.is(ForeignInitialKeyAccepted) {
                    return Err(StoreError::NotFound(Entity::Account(key.account_id)));
                }
                let max =
                    if key.channel.allows_several_keys() || self.is(InitialKeysChannelUnchecked) {
                        u32::MAX
                    } else {
                        1
                    };
                inner.check_new_key(self, key, max, &keys[..i], None)?;
            }
            Ok(())
        };
        if self.is(ParentBeforeExistingAccount) && parent_missing {
            return Err(parent_error());
        }
        if self.is(KeysBeforeParent) {
            check_keys(&inner)?;
        }
        if inner.accounts.contains_key(&account.id) && !self.is(SplitCreateAccount) {
            if self.is(EventForRefusedCreate) {
                inner.events.extend(events);
            }
            return Err(StoreError::AlreadyExists(Existing::Account));
        }
        if self.is(ExternalIdAfterParent) && parent_missing {
            return Err(parent_error());
        }
        if !self.is(SplitExternalId) && external_taken(&inner) {
            return Err(StoreError::AlreadyExists(Existing::ExternalId));
        }
        if parent_missing {
            return Err(parent_error());
        }
        if let Err(e) = check_keys(&inner) {
            if self.is(PartialCreate) {
                inner.accounts.insert(account.id, account);
            }
            return Err(e);
        }
        inner.accounts.insert(account.id, account);
        for key in &keys {
            inner.put_key(self, key);
        }
        inner.events.extend(events);
        Ok(())
    }

    fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        Ok(self.read().accounts.get(&id).cloned())
    }

    fn account_by_external_id(
        &self,
        external_id: &ExternalId,
    ) -> Result<Option<Account>, StoreError> {
        let wanted = external_id.as_str();
        let matches = |stored: &str| {
            if self.is(ExternalIdFolded) {
                stored.eq_ignore_ascii_case(wanted)
            } else if self.is(ExternalIdPrefix) {
                stored.starts_with(wanted)
            } else {
                stored == wanted
            }
        };
        Ok(self
            .read()
            .accounts
            .values()
            .find(|a| a.external_id.as_ref().is_some_and(|e| matches(e.as_str())))
            .cloned())
    }

    fn create_accounts(
        &self,
        accounts: &[AccountRecords],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let mut results = Vec::new();
        for (i, a) in accounts.iter().enumerate() {
            let r = self.create_account(&a.account, &a.keys, &a.events);
            if r.is_err() && self.is(BulkStopsAtFirstRefusal) {
                results.push(r);
                results.extend(accounts[i + 1..].iter().map(|_| {
                    Err(StoreError::backend(
                        "the batch stopped at a refused account",
                    ))
                }));
                return Ok(results);
            }
            if let Err(StoreError::AlreadyExists(Existing::Identifier)) = &r
                && self.is(BulkPartialAccount)
            {
                let mut inner = self.write();
                inner.accounts.insert(a.account.id, a.account.clone());
            }
            results.push(r);
        }
        if self.is(BulkAllOrNothing) && results.iter().any(Result::is_err) {
            let mut inner = self.write();
            for (a, r) in accounts.iter().zip(&mut results) {
                if r.is_ok() {
                    inner.accounts.remove(&a.account.id);
                    for k in &a.keys {
                        inner.keys.remove(&k.id);
                    }
                    inner
                        .by_identifier
                        .retain(|_, id| a.keys.iter().all(|k| k.id != *id));
                    inner.events.retain(|e| e.account_id != a.account.id);
                    *r = Err(StoreError::backend("the batch was rolled back"));
                }
            }
        }
        Ok(results)
    }

    fn sub_accounts(&self, master: AccountId) -> Result<Vec<Account>, StoreError> {
        let inner = self.read();
        let mut subs: Vec<Account> = inner
            .accounts
            .values()
            .filter(|a| match self.bug {
                SubAccountsOfEveryMaster => a.kind.parent().is_some(),
                SubAccountsIncludeTheMaster => a.kind.parent() == Some(master) || a.id == master,
                _ => a.kind.parent() == Some(master),
            })
            .cloned()
            .collect();
        // Recording order stands for insertion order.
        let order = |a: &Account| {
            inner
                .events
                .iter()
                .position(|e| e.account_id == a.id && e.key_id.is_none())
        };
        match self.bug {
            SubAccountsById => subs.sort_by_key(|a| a.id),
            SubAccountsByCreationOnly => subs.sort_by_key(|a| (a.created_at, order(a))),
            _ => subs.sort_by_key(|a| (a.created_at, a.id)),
        }
        Ok(subs)
    }

    fn accounts(&self, after: Option<AccountId>, limit: usize) -> Result<Vec<Account>, StoreError> {
        let signed = |id: &AccountId| id.as_bytes().map(|b| b as i8);
        let mut all: Vec<Account> = self
            .read()
            .accounts
            .values()
            .filter(|a| !self.is(AccountsMastersOnly) || a.kind.parent().is_none())
            .cloned()
            .collect();
        match self.bug {
            AccountsByCreation => all.sort_by_key(|a| (a.created_at, a.id)),
            AccountsSignedOrder => all.sort_by_key(|a| signed(&a.id)),
            _ => all.sort_by_key(|a| a.id),
        }
        let start = match after {
            None => 0,
            Some(after) => {
                let past = |a: &Account| match self.bug {
                    AccountsPageIncludesTheCursor => a.id >= after,
                    AccountsSignedOrder => signed(&a.id) > signed(&after),
                    _ => a.id > after,
                };
                let first = all.iter().position(past).unwrap_or(all.len());
                if self.is(AccountsPageSkipsOneMore) {
                    (first + 1).min(all.len())
                } else {
                    first
                }
            }
        };
        let limit = if self.is(AccountsLimitOffByOne) {
            limit.saturating_add(1)
        } else {
            limit
        };
        Ok(all.into_iter().skip(start).take(limit).collect())
    }

    fn insert_key(&self, key: &KeyRecord, max: u32, event: &AuditEvent) -> Result<(), StoreError> {
        let checked_event = if self.is(KeyKeptWhenEventUnstorable) {
            None
        } else {
            Some(self.kept_event(event)?)
        };
        let key = self.kept_key(key, true)?;
        let split = [
            SplitInsertIdentifier,
            SplitInsertChannel,
            SplitInsertRestLimit,
        ]
        .into_iter()
        .find(|b| self.is(*b));
        if let Some(bug) = split {
            // The check this bug splits off, under the read lock only.
            let inner = self.read();
            let refused = match bug {
                SplitInsertIdentifier => inner
                    .taken(self, &key.identifier, None, &[])
                    .then_some(Existing::Identifier),
                SplitInsertChannel if !key.channel.allows_several_keys() => inner
                    .full(self, &key, max, &[])
                    .then_some(Existing::ChannelFull(key.channel)),
                SplitInsertRestLimit if key.channel.allows_several_keys() => inner
                    .full(self, &key, max, &[])
                    .then_some(Existing::ChannelFull(key.channel)),
                _ => None,
            };
            drop(inner);
            if let Some(e) = refused {
                return Err(StoreError::AlreadyExists(e));
            }
        }
        let mut inner = self.write();
        self.wrote();
        if self.is(EventForRefusedInsert) {
            inner.events.push(event.clone());
        }
        let account_missing = !inner.accounts.contains_key(&key.account_id);
        let not_found = if self.is(NotFoundNamesTheKey) {
            StoreError::NotFound(Entity::Key(key.id))
        } else {
            StoreError::NotFound(Entity::Account(key.account_id))
        };
        if self.is(KeyIdBeforeAccount) && inner.keys.contains_key(&key.id) {
            return Err(StoreError::AlreadyExists(Existing::Key));
        }
        if account_missing {
            return Err(not_found);
        }
        inner.check_new_key(self, &key, max, &[], split)?;
        inner.put_key(self, &key);
        let event = match checked_event {
            Some(e) => e,
            // Written, then the event is found unstorable: the key stays.
            None => self.kept_event(event)?,
        };
        if !self.is(InsertDropsEvent) {
            inner.events.push(event);
        }
        Ok(())
    }

    fn key(&self, id: KeyId) -> Result<Option<KeyRecord>, StoreError> {
        if self.is(PerThreadKeyCache)
            && let Some(hit) = THREAD_CACHE.with(|c| c.borrow().get(&(self.serial, id)).cloned())
        {
            return Ok(hit);
        }
        let found = self.read().keys.get(&id).cloned();
        if self.is(PerThreadKeyCache) {
            THREAD_CACHE.with(|c| c.borrow_mut().insert((self.serial, id), found.clone()));
        }
        Ok(found)
    }

    fn key_by_identifier(&self, identifier: &str) -> Result<Option<KeyRecord>, StoreError> {
        let folded = self.fold(identifier);
        if self.is(StaleLookupCache)
            && let Some(hit) = self
                .cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&folded)
                .cloned()
        {
            return Ok(hit);
        }
        let inner = self.read();
        let mut found = inner
            .by_identifier
            .get(&folded)
            .and_then(|id| inner.keys.get(id))
            .cloned();
        if found.is_none() {
            let mut all: Vec<&KeyRecord> = inner.keys.values().collect();
            all.sort_by_key(|k| k.identifier.clone());
            let matches = |k: &&&KeyRecord| match self.bug {
                LikeMatching => like(&k.identifier, identifier),
                GlobMatching => glob(&k.identifier, identifier),
                PrefixMatch => {
                    !identifier.is_empty() && self.fold(&k.identifier).starts_with(&folded)
                }
                _ => false,
            };
            found = all.iter().find(matches).map(|k| (*k).clone());
        }
        if self.is(StaleLookupCache) {
            self.cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(folded, found.clone());
        }
        Ok(found)
    }

    fn keys_of_account(&self, account: AccountId) -> Result<Vec<KeyRecord>, StoreError> {
        let inner = self.read();
        let belongs = |k: &KeyRecord| {
            k.account_id == account
                || (self.is(KeysIncludeSubAccounts)
                    && inner
                        .accounts
                        .get(&k.account_id)
                        .is_some_and(|a| a.kind.parent() == Some(account)))
        };
        let mut keys: Vec<KeyRecord> = inner
            .keys
            .values()
            .filter(|k| belongs(k))
            .cloned()
            .collect();
        match self.bug {
            KeyTiesByIdentifier => keys
                .sort_by(|a, b| (a.created_at, &a.identifier).cmp(&(b.created_at, &b.identifier))),
            KeyTiesDescending => {
                keys.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(b.id.cmp(&a.id)))
            }
            SignedIdOrder => keys.sort_by_key(|k| (k.created_at, k.id.as_bytes().map(|b| b as i8))),
            KeysByLastChange => keys.sort_by_key(|k| (k.changed_at, k.id)),
            _ => keys.sort_by_key(|k| (k.created_at, k.id)),
        }
        Ok(keys)
    }

    fn update_key(
        &self,
        key: &KeyRecord,
        expected: u64,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let written = self.kept_key(key, self.is(UpdateRefusesIgnoredCreatedAt))?;
        let event = self.kept_event(event)?;
        if self.is(SplitUpdateVersion) || self.is(SplitUpdateIdentifier) {
            let inner = self.read();
            let stored = inner
                .keys
                .get(&key.id)
                .ok_or(StoreError::NotFound(Entity::Key(key.id)))?;
            if self.is(SplitUpdateVersion) && stored.version != expected {
                return Err(StoreError::Conflict {
                    key: key.id,
                    expected,
                    found: stored.version,
                });
            }
            if self.is(SplitUpdateIdentifier)
                && inner.taken(self, &key.identifier, Some(key.id), &[])
            {
                return Err(StoreError::AlreadyExists(Existing::Identifier));
            }
        }
        let mut inner = self.write();
        self.wrote();
        let stored = inner
            .keys
            .get(&key.id)
            .cloned()
            .ok_or(StoreError::NotFound(Entity::Key(key.id)))?;
        let taken = !self.is(SplitUpdateIdentifier)
            && inner.taken(self, &key.identifier, Some(key.id), &[]);
        if self.is(IdentifierBeforeConflict) && taken {
            return Err(StoreError::AlreadyExists(Existing::Identifier));
        }
        if stored.version != expected && !self.is(SplitUpdateVersion) {
            if self.is(EventForConflict) {
                inner.events.push(event);
            }
            let found = if self.is(ConflictReportsExpected) {
                expected
            } else {
                stored.version
            };
            return Err(StoreError::Conflict {
                key: key.id,
                expected,
                found,
            });
        }
        if taken {
            return Err(StoreError::AlreadyExists(Existing::Identifier));
        }
        let mut next = written;
        if !self.is(UpdateWritesAccount) {
            next.account_id = stored.account_id;
        }
        if !self.is(UpdateWritesChannel) {
            next.channel = stored.channel;
        }
        if !self.is(UpdateWritesCreatedAt) {
            next.created_at = stored.created_at;
        }
        if self.is(UpdateIgnoresEnabled) {
            next.enabled = stored.enabled;
        }
        if self.is(UpdateIgnoresExpiry) {
            next.expires_at = stored.expires_at;
        }
        if !self.is(UpdateWritesLegacyMark) {
            next.legacy_default = stored.legacy_default;
        }
        if !self.is(UpdateWritesUsage) {
            next.usage = stored.usage;
            if !self.is(UpdateKeepsPreviousUse)
                && next.previous_secret.as_ref().map(|p| &p.hash)
                    != stored.previous_secret.as_ref().map(|p| &p.hash)
            {
                next.usage.previous_secret_last_used_at = None;
            }
        }
        if !self.is(RenameKeepsOldIdentifier) {
            let old = self.fold(&stored.identifier);
            inner.by_identifier.remove(&old);
        }
        let credentials_changed = (stored.identifier != next.identifier
            && !self.is(TokensSurviveRename))
            || (stored.secret_hash != next.secret_hash && !self.is(TokensSurviveNewSecret))
            || self.is(TokensDieWithTheWhitelist);
        if credentials_changed {
            inner.tokens.retain(|_, t| t.key_id != key.id);
        }
        inner
            .by_identifier
            .insert(self.fold(&next.identifier), key.id);
        inner.keys.insert(key.id, next);
        inner.events.push(event);
        Ok(())
    }

    fn upgrade_secret_hash(
        &self,
        id: KeyId,
        current: &SecretHash,
        upgraded: &SecretHash,
    ) -> Result<bool, StoreError> {
        let same = |stored: &SecretHash| {
            self.is(UpgradeIgnoresCurrent)
                || stored.as_str() == current.as_str()
                || (self.is(UpgradeIgnoresHashCase)
                    && stored.as_str().eq_ignore_ascii_case(current.as_str()))
        };
        if self.is(SplitUpgrade) {
            let matches = self
                .read()
                .keys
                .get(&id)
                .is_some_and(|k| same(&k.secret_hash));
            if !matches {
                return Ok(false);
            }
        }
        let mut inner = self.write();
        self.wrote();
        let Some(k) = inner.keys.get_mut(&id) else {
            return Ok(false);
        };
        if !self.is(SplitUpgrade) && !same(&k.secret_hash) {
            return Ok(false);
        }
        k.secret_hash = upgraded.clone();
        if self.is(UpgradeBumpsVersion) {
            k.version += 1;
        }
        if self.is(UpgradeTouchesChangedAt) {
            k.changed_at += time::Duration::seconds(1);
        }
        if self.is(UpgradeEndsGrace) {
            k.previous_secret = None;
        }
        let event = AuditEvent {
            account_id: k.account_id,
            key_id: Some(k.id),
            channel: Some(k.channel),
            at: k.changed_at,
            kind: apikeys::AuditKind::CredentialsChanged,
            actor: apikeys::Actor::Operator,
            detail: "hash upgraded".into(),
        };
        if self.is(UpgradeRecordsEvent) {
            inner.events.push(event);
        }
        Ok(true)
    }

    fn delete_key(
        &self,
        id: KeyId,
        expected_version: Option<u64>,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let event = self.kept_event(event)?;
        if self.is(SplitDelete) && !self.read().keys.contains_key(&id) {
            return Err(StoreError::NotFound(Entity::Key(id)));
        }
        let conflict = |found: u64| match expected_version {
            Some(expected) if expected != found && !self.is(DeleteIgnoresVersion) => {
                Err(StoreError::Conflict {
                    key: id,
                    expected,
                    found,
                })
            }
            _ => Ok(()),
        };
        if self.is(DeleteConflictBeforeNotFound) && !self.read().keys.contains_key(&id) {
            conflict(0)?;
        }
        if self.is(SplitDeleteVersion) {
            let found = self.read().keys.get(&id).map(|k| k.version);
            if let Some(found) = found {
                conflict(found)?;
            }
            std::thread::yield_now();
        }
        let mut inner = self.write();
        if !self.is(SplitDeleteVersion)
            && let Some(found) = inner.keys.get(&id).map(|k| k.version)
        {
            conflict(found)?;
        }
        self.wrote();
        if self.is(StaleLookupCache) {
            self.cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
        let Some(key) = inner.keys.remove(&id) else {
            if self.is(SplitDelete) {
                inner.events.push(event);
                return Ok(());
            }
            if self.is(EventForRefusedDelete) {
                inner.events.push(event);
            }
            return Err(StoreError::NotFound(Entity::Key(id)));
        };
        if !self.is(DeleteKeepsIdentifier) {
            let folded = self.fold(&key.identifier);
            inner.by_identifier.remove(&folded);
        }
        if self.is(DeleteErasesTrail) {
            inner.events.retain(|e| e.key_id != Some(id));
        }
        if !self.is(TokensSurviveDelete) {
            inner.tokens.retain(|_, t| t.key_id != id);
        }
        inner.events.push(event);
        Ok(())
    }

    fn insert_token(
        &self,
        token: &TokenRecord,
        key_version: u64,
        max_live: u32,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let token = &TokenRecord {
            issued_at: self.keep(token.issued_at, false)?,
            expires_at: self.keep(token.expires_at, false)?,
            ..token.clone()
        };
        let event = self.kept_event(event)?;
        // The oldest live tokens past the bound, as `inner` holds them.
        let victims = |inner: &Inner| -> Vec<TokenDigest> {
            let mut mine: Vec<&TokenRecord> = inner
                .tokens
                .values()
                .filter(|t| t.key_id == token.key_id && t.expires_at > now)
                .collect();
            mine.sort_by_key(|t| (t.issued_at, t.digest.0));
            if self.is(TokenBoundDropsNewest) {
                mine.reverse();
            }
            let excess = (mine.len() + 1).saturating_sub(max_live.max(1) as usize);
            mine.iter().take(excess).map(|t| t.digest).collect()
        };
        // The split copy picks what to delete under one lock and writes
        // under another.
        let chosen_early = self.is(SplitTokenBound).then(|| victims(&self.read()));
        let mut inner = self.write();
        let Some(stored_version) = inner.keys.get(&token.key_id).map(|k| k.version) else {
            return Err(StoreError::NotFound(Entity::Key(token.key_id)));
        };
        if stored_version != key_version && !self.is(TokenVersionUnchecked) {
            if self.is(TokenEventForConflict) {
                inner.events.push(event);
            }
            return Err(StoreError::Conflict {
                key: token.key_id,
                expected: key_version,
                found: stored_version,
            });
        }
        if inner.tokens.contains_key(&token.digest) {
            return Err(StoreError::AlreadyExists(Existing::Token));
        }
        if !self.is(ExpiredTokensKeptOnIssue) {
            inner
                .tokens
                .retain(|_, t| t.key_id != token.key_id || t.expires_at > now);
        }
        if !self.is(TokenBoundIgnored) {
            let doomed = chosen_early.unwrap_or_else(|| victims(&inner));
            for d in doomed {
                inner.tokens.remove(&d);
            }
        }
        inner.tokens.insert(token.digest, token.clone());
        inner.events.push(event);
        Ok(())
    }

    fn token(&self, digest: &TokenDigest) -> Result<Option<(TokenRecord, KeyRecord)>, StoreError> {
        let inner = self.read();
        Ok(inner
            .tokens
            .get(digest)
            .and_then(|t| inner.keys.get(&t.key_id).map(|k| (t.clone(), k.clone()))))
    }

    fn set_account_suspended(
        &self,
        id: AccountId,
        suspended: bool,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.write_account(id, event, |a| {
            a.suspended = suspended;
            if self.is(SuspendDropsExternalId) {
                a.external_id = None;
            }
        })
    }

    fn set_account_policy(
        &self,
        id: AccountId,
        policy: &AccountPolicy,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.kept_policy(policy)?;
        self.write_account(id, event, |a| {
            a.policy = policy.clone();
            if self.is(PolicyResetsSuspension) {
                a.suspended = false;
            }
        })
    }

    fn record_uses(&self, uses: &[KeyUse]) -> Result<(), StoreError> {
        let mut kept = Vec::new();
        for u in uses {
            match (self.keep(u.at, false), &u.previous) {
                (Ok(at), Some((p, h))) => match self.keep(*p, false) {
                    Ok(p) => kept.push(KeyUse {
                        at,
                        address: u.address.to_canonical(),
                        previous: Some((p, h.clone())),
                        ..u.clone()
                    }),
                    Err(e) if !self.is(UsesPartialBatch) => return Err(e.into()),
                    Err(_) => break,
                },
                (Ok(at), None) => kept.push(KeyUse {
                    at,
                    address: u.address.to_canonical(),
                    ..u.clone()
                }),
                (Err(e), _) if !self.is(UsesPartialBatch) => return Err(e.into()),
                (Err(e), _) => {
                    self.apply_uses(&kept)?;
                    return Err(e.into());
                }
            }
        }
        self.apply_uses(&kept)
    }

    fn key_for_authentication(&self, identifier: &str) -> Result<Option<HeldKey>, StoreError> {
        let Some(key) = self.key_by_identifier(identifier)? else {
            return Ok(None);
        };
        let Some(mut holders) = self.holders(key.account_id)? else {
            return Ok(None);
        };
        if self.is(HeldWithoutMaster) {
            holders.master = None;
        }
        if self.is(HeldStaleMaster) {
            let mut seen = self.held_cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(master) = &mut holders.master {
                *master = seen
                    .entry(master.id)
                    .or_insert_with(|| master.clone())
                    .clone();
            }
        }
        Ok(Some(HeldKey { key, holders }))
    }

    fn dormant_keys(&self, query: &DormantQuery) -> Result<Vec<KeyRecord>, StoreError> {
        let inner = self.read();
        let in_scope = |k: &KeyRecord| match query.account {
            None => true,
            Some(a) => {
                k.account_id == a
                    || (!self.is(DormantIgnoresSubAccounts)
                        && inner
                            .accounts
                            .get(&k.account_id)
                            .is_some_and(|acc| acc.kind.parent() == Some(a)))
            }
        };
        let dormant = |k: &KeyRecord| {
            let last = k.usage.last_used_at.unwrap_or(k.created_at);
            let old = if self.is(DormantExclusiveBound) {
                last < query.unused_since
            } else {
                last <= query.unused_since
            };
            let never_used = self.is(DormantLegacyIgnoresUse) || k.usage.last_used_at.is_none();
            old && (!query.legacy_defaults_only || (k.legacy_default && never_used))
        };
        let after = |k: &KeyRecord| match query.after {
            None => true,
            Some(a) if self.is(DormantPageIncludesCursor) => k.id >= a,
            Some(a) => k.id > a,
        };
        let mut found: Vec<KeyRecord> = inner
            .keys
            .values()
            .filter(|k| in_scope(k) && dormant(k) && after(k))
            .cloned()
            .collect();
        found.sort_by_key(|k| k.id);
        found.truncate(query.limit);
        Ok(found)
    }

    fn purge_expired_tokens(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut inner = self.write();
        let before = inner.tokens.len();
        let spare_now = self.is(PurgeSparesExactlyNow);
        inner
            .tokens
            .retain(|_, t| t.expires_at > now || (spare_now && t.expires_at == now));
        Ok((before - inner.tokens.len()) as u64)
    }

    fn audit_events(
        &self,
        account: AccountId,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let inner = self.read();
        let belongs = |e: &AuditEvent| {
            e.account_id == account
                || (self.is(AuditIncludesSubAccounts)
                    && inner
                        .accounts
                        .get(&e.account_id)
                        .is_some_and(|a| a.kind.parent() == Some(account)))
        };
        let mut out: Vec<AuditEvent> = if self.is(AuditTiesOldestFirst) {
            inner
                .events
                .iter()
                .filter(|e| belongs(e))
                .cloned()
                .collect()
        } else {
            inner
                .events
                .iter()
                .rev()
                .filter(|e| belongs(e))
                .cloned()
                .collect()
        };
        out.sort_by_key(|e| std::cmp::Reverse(e.at));
        if !self.is(AuditIgnoresLimit) {
            out.truncate(limit);
        }
        Ok(out)
    }
}

// ----- running the suite against a bug ------------------------------------

/// Runs `f` with panics caught and their messages silenced.
fn quietly<T>(f: impl FnOnce() -> T) -> T {
    static LOCK: Mutex<()> = Mutex::new(());
    let _one_at_a_time = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let out = f();
    std::panic::set_hook(previous);
    out
}

/// Whether the suite test `name` fails on a store with `bug`.
fn fails(bug: Bug, name: &str) -> bool {
    let (_, test) = SUITE
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no suite test {name}"));
    let store: Arc<DynStore> = Arc::new(Buggy::new(bug));
    catch_unwind(AssertUnwindSafe(|| test(store))).is_err()
}

fn is_race(bug: Bug) -> bool {
    matches!(
        bug,
        SplitCreateAccount
            | SplitInsertIdentifier
            | SplitInsertChannel
            | SplitInsertRestLimit
            | SplitUpdateIdentifier
            | SplitUpdateVersion
            | SplitDelete
            | SplitUpgrade
            | SplitTokenBound
            | SplitDeleteVersion
            | SplitExternalId
            | SplitAccountWrite
            | SplitUses
    )
}

#[test]
fn the_bug_free_copy_passes_the_suite() {
    // The control: without a bug the copy passes, so each bug is what
    // fails the suite.
    let failed: Vec<&str> = quietly(|| {
        SUITE
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| fails(Correct, n))
            .collect()
    });
    assert!(failed.is_empty(), "the bug-free copy fails {failed:?}");
}

#[test]
fn every_bug_is_caught() {
    let mut missed = Vec::new();
    quietly(|| {
        for (bug, what, by) in BUGS {
            let attempts = if is_race(*bug) { 3 } else { 1 };
            if (0..attempts).any(|_| fails(*bug, by)) {
                continue;
            }
            let others: Vec<&str> = SUITE
                .iter()
                .map(|(n, _)| *n)
                .filter(|n| fails(*bug, n))
                .collect();
            missed.push(format!(
                "{bug:?} ({what}): not caught by {by}; caught by {others:?}"
            ));
        }
    });
    assert!(
        missed.is_empty(),
        "the suite misses bugs:\n{}",
        missed.join("\n")
    );
    assert!(BUGS.len() >= 15);
}

/// Prints, for each bug, every suite test that catches it.
#[test]
#[ignore = "prints the table of bugs and the tests that catch them; slow"]
fn table_of_bugs() {
    let rows: Vec<String> = quietly(|| {
        BUGS.iter()
            .map(|(bug, what, _)| {
                let by: Vec<&str> = SUITE
                    .iter()
                    .map(|(n, _)| *n)
                    .filter(|n| fails(*bug, n))
                    .collect();
                format!(
                    "| {bug:?} | {what} | {} | {} |",
                    if by.is_empty() { "NO" } else { "yes" },
                    by.join(", ")
                )
            })
            .collect()
    });
    println!("| bug | what | caught | by |\n|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}

/// How many of 20 runs of its race test catch each race bug: at least 19.
#[test]
#[ignore = "runs each race test 20 times per race bug"]
fn race_bugs_are_caught_19_times_of_20() {
    let counts: Vec<(Bug, &str, usize)> = quietly(|| {
        BUGS.iter()
            .filter(|(bug, _, _)| is_race(*bug))
            .map(|(bug, _, by)| (*bug, *by, (0..20).filter(|_| fails(*bug, by)).count()))
            .collect()
    });
    for (bug, by, n) in &counts {
        println!("{bug:?}: {by} caught it in {n} of 20 runs");
    }
    for (bug, by, n) in counts {
        assert!(n >= 19, "{bug:?}: {by} caught it in only {n} of 20 runs");
    }
}
