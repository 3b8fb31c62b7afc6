#![doc = include_str!("../README.md")]

mod codec;
pub mod error;
mod pool;
mod redact;
pub mod schema;
#[cfg(feature = "testing")]
pub mod testing;

pub use apikeys::store::BadRow;
pub use apikeys::store::Unstorable;
pub use error::{ConnectError, DatabaseError};
pub use redact::redact_password;

/// The schema version this version of the crate creates and reads (recorded
/// in `apikeys_schema_migrations`). A database recording a higher version is
/// refused with [`ConnectError::NewerSchema`].
pub const SCHEMA_VERSION: i32 = schema::LATEST;

use crate::codec::{
    ACCOUNT_COLUMN_COUNT, AccountParams, AccountRows, EventParams, EventRows, KEY_COLUMN_COUNT,
    KeyParams, KeyRows,
};
use crate::pool::{Conn, Manager};
use crate::schema::names;
use apikeys::account::AccountPolicy;
use apikeys::lifecycle::{HeldKey, Holders};
use apikeys::store::encoding::PolicyValues;
use apikeys::store::{AccountRecords, DormantQuery, Entity, Existing};
use apikeys::token::{TokenDigest, TokenRecord};
use apikeys::usage::KeyUse;
use apikeys::{
    Account, AccountId, AuditEvent, ExternalId, KeyId, KeyRecord, SecretHash, Store, StoreError,
};
use postgres::error::SqlState;
use postgres::{Config, NoTls, Transaction};
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// The `application_name` a connection reports when the URL sets none, so
/// that the store's sessions can be told apart in `pg_stat_activity`.
pub const DEFAULT_APPLICATION_NAME: &str = "apikeys-postgres";

/// How long opening a TCP connection may take when the URL sets no
/// `connect_timeout`.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How [`PostgresStore::connect_with`] connects: pool size, schema, timeout.
/// `Options::default()` is the production setting; chainable setters named
/// after the fields change one value
/// (`Options::default().pool_size(4).schema("apikeys")`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// The most connections the pool opens (default 16). Zero is refused
    /// at connect ([`ConnectError::InvalidPoolSize`]).
    pub pool_size: u32,
    /// The schema the tables go in, created if needed (default `None`: the
    /// connection's default schema, usually `public`). Each connection of
    /// the pool starts with `search_path=<schema>`, set in its startup
    /// packet, so no request pays for it. Names are 1 to 63 lowercase ASCII
    /// letters, digits and underscores, starting with a letter or an
    /// underscore; any other is refused at connect
    /// ([`ConnectError::InvalidSchema`]).
    pub schema: Option<String>,
    /// How long an operation waits for a connection from the pool (all busy,
    /// or the server unreachable) before failing with
    /// [`DatabaseError::Unavailable`] (default 5 s; less than a millisecond
    /// counts as one millisecond).
    pub checkout_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pool_size: 16,
            schema: None,
            checkout_timeout: Duration::from_secs(5),
        }
    }
}

impl Options {
    /// These options with another pool size.
    #[must_use]
    pub fn pool_size(mut self, pool_size: u32) -> Self {
        self.pool_size = pool_size;
        self
    }

    /// These options with the tables in `schema`.
    #[must_use]
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// These options with another checkout timeout.
    #[must_use]
    pub fn checkout_timeout(mut self, timeout: Duration) -> Self {
        self.checkout_timeout = timeout;
        self
    }
}

/// An [`apikeys::Store`] in a PostgreSQL database, over a pool of
/// connections. Cheap to share: put it in an `Arc`.
pub struct PostgresStore {
    pool: r2d2::Pool<Manager>,
    schema: Option<String>,
    checkout_timeout: Duration,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.pool.state();
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .field("pool_size", &self.pool.max_size())
            .field("connections", &state.connections)
            .field("idle_connections", &state.idle_connections)
            .finish()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (e.g.
    /// `postgres://apikeys@db.internal:5432/platform`, or the `key=value`
    /// form) with the default [`Options`], creates or upgrades the schema,
    /// and opens a pool of at most 16 connections. The tables go into the
    /// connection's default schema (usually `public`), named `apikeys_*`.
    pub fn connect(url: &str) -> Result<Self, ConnectError> {
        Self::connect_with(url, Options::default())
    }

    /// As [`PostgresStore::connect`], with other options.
    pub fn connect_with(url: &str, options: Options) -> Result<Self, ConnectError> {
        let Options {
            pool_size,
            schema,
            checkout_timeout,
        } = options;
        // A public field can hold anything: r2d2 needs a non-zero timeout.
        let checkout_timeout = checkout_timeout.max(Duration::from_millis(1));
        if pool_size == 0 {
            return Err(ConnectError::InvalidPoolSize(pool_size));
        }
        if let Some(s) = &schema
            && !schema::valid_schema_name(s)
        {
            return Err(ConnectError::InvalidSchema {
                schema: s.chars().take(64).collect(),
            });
        }
        let mut config: Config = url.parse().map_err(|source| ConnectError::InvalidUrl {
            reason: redact_password(&error::full(&source).to_string(), url),
        })?;
        if config.get_application_name().is_none() {
            config.application_name(DEFAULT_APPLICATION_NAME);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        if let Some(s) = &schema {
            let options = match config.get_options() {
                Some(o) if !o.trim().is_empty() => format!("{o} -c search_path={s}"),
                _ => format!("-c search_path={s}"),
            };
            config.options(&options);
        }

        let mut client = config
            .connect(NoTls)
            .map_err(|source| ConnectError::Connect { source })?;
        schema::migrate(&mut client, schema.as_deref())?;
        drop(client);

        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .min_idle(Some(1))
            // A check per checkout would cost every authentication a second
            // round trip; stale connections are retried instead (`run`).
            .test_on_check_out(false)
            .connection_timeout(checkout_timeout)
            .build(Manager { config })
            .map_err(|source| ConnectError::Pool { source })?;
        Ok(PostgresStore {
            pool,
            schema,
            checkout_timeout,
        })
    }

    /// The schema the tables are in, if one was given.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The most connections the pool opens.
    pub fn pool_size(&self) -> u32 {
        self.pool.max_size()
    }

    /// Runs a read on a pooled connection (see [`PostgresStore::run`]).
    fn read<T>(&self, op: impl FnMut(&mut Conn) -> Result<T, Fail>) -> Result<T, StoreError> {
        self.run(op, None)
    }

    /// Runs a write transaction on a pooled connection (see
    /// [`PostgresStore::run`]).
    fn write(&self, op: impl FnMut(&mut Conn) -> Result<(), Fail>) -> Result<(), StoreError> {
        self.run(op, Some(()))
    }

    /// Runs `op` on a pooled connection; `if_committed` is what a write
    /// returns when its `COMMIT` turns out to have succeeded although the
    /// answer was lost.
    ///
    /// A connection can die while it sits idle in the pool (the server
    /// restarted, the backend was terminated, the network dropped it). The
    /// pool does not test connections at checkout, since that would cost a
    /// round trip on every authentication; instead, when `op` finds its
    /// connection dead before anything committed, the connection is dropped
    /// and `op` runs again on another one, up to the pool's size plus one
    /// times: enough to get past every stale connection to a new one. When
    /// the server is really gone, the pool cannot open a new one either, and
    /// the operation fails after the checkout timeout
    /// ([`DatabaseError::Unavailable`]), or with
    /// [`DatabaseError::ConnectionLost`] once the attempts are spent.
    ///
    /// A connection that dies during `COMMIT` leaves the outcome unknown to
    /// the client; the server knows it. The store asks it, on another
    /// connection, with `txid_status` of the transaction's id, and keeps
    /// asking until it gets an answer (see [`PostgresStore::commit_status`]):
    /// committed, the write succeeded; aborted, nothing was applied and `op`
    /// runs again. So `Err` always means "not applied", as the store contract
    /// requires, even if that means waiting out an outage.
    fn run<T>(
        &self,
        mut op: impl FnMut(&mut Conn) -> Result<T, Fail>,
        mut if_committed: Option<T>,
    ) -> Result<T, StoreError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut conn = self.pool.get().map_err(|source| {
                StoreError::backend(DatabaseError::Unavailable {
                    timeout: self.checkout_timeout,
                    source,
                })
            })?;
            let source = match op(&mut conn) {
                Ok(value) => return Ok(value),
                Err(Fail::Store(e)) => return Err(e),
                Err(Fail::Db(e) | Fail::Commit(e, _)) if !connection_failed(&e, &conn) => {
                    return Err(StoreError::backend(DatabaseError::Query { source: e }));
                }
                Err(Fail::Commit(source, xid)) => {
                    // Dropped by the pool, before asking on another one.
                    conn.broken = true;
                    let pid = conn.pid;
                    drop(conn);
                    match (self.commit_status(xid, pid), if_committed.take()) {
                        (CommitStatus::Committed, Some(value)) => return Ok(value),
                        (CommitStatus::Aborted, committed) => {
                            if_committed = committed;
                            source
                        }
                        (CommitStatus::Committed, None) | (CommitStatus::Unknowable, _) => {
                            return Err(StoreError::backend(DatabaseError::CommitUncertain {
                                source,
                            }));
                        }
                    }
                }
                Err(Fail::Db(source)) => {
                    conn.broken = true;
                    source
                }
            };
            if attempt > self.pool.max_size() {
                return Err(StoreError::backend(DatabaseError::ConnectionLost {
                    source,
                }));
            }
        }
    }

    /// What became of transaction `xid`, whose session was server process
    /// `pid`, asked on a connection of the pool. It waits for as long as the
    /// server is unreachable, retrying with a growing pause (up to a
    /// second). If the old session still holds the transaction open after
    /// [`RESOLVE_WAIT`] (the server has not noticed that its client is gone),
    /// it ends that session, which settles the transaction one way or the
    /// other. Only a server that refuses the question (`txid_status` not
    /// allowed, or an id too old to know) gets [`CommitStatus::Unknowable`].
    fn commit_status(&self, xid: i64, pid: i32) -> CommitStatus {
        let started = Instant::now();
        let mut pause = Duration::from_millis(10);
        let mut terminated = false;
        loop {
            if let Ok(mut conn) = self.pool.get() {
                let status = conn
                    .client
                    .query_one("SELECT txid_status($1)", &[&xid])
                    .and_then(|row| row.try_get::<_, Option<String>>(0));
                match status.as_ref().map(|s| s.as_deref()) {
                    Ok(Some("committed")) => return CommitStatus::Committed,
                    Ok(Some("aborted")) => return CommitStatus::Aborted,
                    Ok(Some("in progress")) => {
                        if !terminated && started.elapsed() >= RESOLVE_WAIT {
                            // Ours, and dead to us: ending it settles the
                            // transaction. Failing to end it, we go on asking.
                            terminated = conn
                                .client
                                .execute("SELECT pg_terminate_backend($1)", &[&pid])
                                .is_ok();
                        }
                    }
                    Err(e) if connection_failed(e, &conn) => conn.broken = true,
                    Ok(_) | Err(_) => return CommitStatus::Unknowable,
                }
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
}

/// How long [`PostgresStore::commit_status`] lets a session that still holds
/// a transaction open finish it before ending the session.
const RESOLVE_WAIT: Duration = Duration::from_secs(2);

/// The outcome of a transaction, as `txid_status` tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CommitStatus {
    Committed,
    Aborted,
    /// The server refused to say.
    Unknowable,
}

/// How an operation on one connection failed.
enum Fail {
    /// A refusal in the store's own terms (a rule, a missing thing, a bad row).
    Store(StoreError),
    /// A statement failed (before any commit was sent).
    Db(postgres::Error),
    /// `COMMIT` of the transaction with this id (`txid_current()`) failed.
    Commit(postgres::Error, i64),
}

impl From<postgres::Error> for Fail {
    fn from(e: postgres::Error) -> Self {
        Fail::Db(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

/// Whether `e` means the connection is dead, rather than a statement refused.
fn connection_failed(e: &postgres::Error, conn: &Conn) -> bool {
    let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    e.is_closed() || conn.client.is_closed() || fatal_code(e) || io
}

/// Whether the server answered `e` for a statement on a connection that
/// still works: an error of the statement, not of the session.
fn refused_by_server(e: &postgres::Error) -> bool {
    e.as_db_error().is_some() && !fatal_code(e) && !e.is_closed()
}

/// Whether `e` carries a code that ends the session.
fn fatal_code(e: &postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        c.code().starts_with("08") // connection_exception and its subclasses
            || *c == SqlState::ADMIN_SHUTDOWN // pg_terminate_backend, fast shutdown
            || *c == SqlState::CRASH_SHUTDOWN
            || *c == SqlState::CANNOT_CONNECT_NOW
    })
}

/// The constraint a unique (`23505`) or foreign-key (`23503`) violation
/// names, with which of the two it is.
fn violated(e: &postgres::Error) -> Option<(Violation, &str)> {
    let db = e.as_db_error()?;
    let kind = if *db.code() == SqlState::UNIQUE_VIOLATION {
        Violation::Unique
    } else if *db.code() == SqlState::FOREIGN_KEY_VIOLATION {
        Violation::ForeignKey
    } else {
        return None;
    };
    Some((kind, db.constraint()?))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Violation {
    Unique,
    ForeignKey,
}

/// Maps the errors of inserting `key` onto the rules they enforce.
fn key_insert_error(e: postgres::Error, key: &KeyRecord) -> Fail {
    let mapped = match violated(&e) {
        Some((Violation::Unique, names::KEYS_PKEY)) => StoreError::AlreadyExists(Existing::Key),
        Some((Violation::Unique, names::KEYS_IDENTIFIER)) => {
            StoreError::AlreadyExists(Existing::Identifier)
        }
        Some((Violation::Unique, names::KEYS_ONE_PER_CHANNEL)) => {
            StoreError::AlreadyExists(Existing::ChannelFull(key.channel))
        }
        Some((Violation::ForeignKey, _)) => StoreError::NotFound(Entity::Account(key.account_id)),
        _ => return Fail::Db(e),
    };
    Fail::Store(mapped)
}

fn insert_key(
    tx: &mut Transaction<'_>,
    st: &pool::Statements,
    key: &KeyRecord,
    p: &KeyParams<'_>,
) -> Result<(), Fail> {
    tx.execute(
        &st.insert_key,
        &[
            &p.id,
            &p.account_id,
            &p.channel,
            &p.identifier,
            &p.label,
            &p.secret_hash,
            &p.previous_hash,
            &p.previous_expires_at,
            &p.whitelist,
            &p.created_at,
            &p.changed_at,
            &p.version,
            &p.expires_at,
            &p.enabled,
            &p.legacy_default,
            &p.last_used_at,
            &p.last_used_address,
            &p.previous_secret_last_used_at,
        ],
    )
    .map_err(|e| key_insert_error(e, key))?;
    Ok(())
}

fn insert_event(
    tx: &mut Transaction<'_>,
    st: &pool::Statements,
    event: &AuditEvent,
    p: &EventParams<'_>,
) -> Result<(), Fail> {
    tx.execute(
        &st.insert_event,
        &[
            &p.account_id,
            &p.key_id,
            &p.channel,
            &p.at,
            &p.kind,
            &p.actor,
            &p.detail,
        ],
    )
    .map_err(|e| match violated(&e) {
        Some((Violation::ForeignKey, _)) => {
            Fail::Store(StoreError::NotFound(Entity::Account(event.account_id)))
        }
        _ => Fail::Db(e),
    })?;
    Ok(())
}

/// The token's instants of a row holding them just after the key's columns.
fn token_at(
    row: &postgres::Row,
    digest: &TokenDigest,
    key: &KeyRecord,
) -> Result<TokenRecord, Fail> {
    let issued_at: i64 = row.try_get(KEY_COLUMN_COUNT)?;
    let expires_at: i64 = row.try_get(KEY_COLUMN_COUNT + 1)?;
    Ok(TokenRecord {
        digest: *digest,
        key_id: key.id,
        issued_at: apikeys::store::encoding::instant_from_nanos(issued_at),
        expires_at: apikeys::store::encoding::instant_from_nanos(expires_at),
    })
}

/// The holders of a row holding an account's columns at `base` and its
/// master's (NULLs for a master) just after.
fn holders_at(row: &postgres::Row, base: usize) -> Result<Holders, StoreError> {
    Ok(Holders {
        account: codec::account_at(row, base)?,
        master: codec::opt_account_at(row, base + ACCOUNT_COLUMN_COUNT)?,
    })
}

/// A batch of last uses as the arrays `record_uses` binds: one entry per
/// key, the newest use winning (the first of equal ones, as the in-memory
/// store keeps it), and one previous-secret entry per key and hash, sorted
/// by key id so that concurrent batches lock their rows in the same order.
#[derive(Default)]
struct UseArrays<'u> {
    ids: Vec<&'u [u8]>,
    ats: Vec<i64>,
    addresses: Vec<String>,
    previous_ids: Vec<&'u [u8]>,
    previous_ats: Vec<i64>,
    previous_hashes: Vec<&'u str>,
}

impl<'u> UseArrays<'u> {
    fn new(uses: &'u [KeyUse]) -> Result<Self, StoreError> {
        let mut last: HashMap<KeyId, (i64, &'u KeyUse)> = HashMap::new();
        let mut previous: HashMap<(KeyId, &'u str), (i64, &'u KeyUse)> = HashMap::new();
        for u in uses {
            let at = codec::instant(u.at)?;
            match last.get(&u.key_id) {
                Some((newest, _)) if *newest >= at => {}
                _ => {
                    last.insert(u.key_id, (at, u));
                }
            }
            if let Some((at, hash)) = &u.previous {
                let at = codec::instant(*at)?;
                match previous.get(&(u.key_id, hash.as_str())) {
                    Some((newest, _)) if *newest >= at => {}
                    _ => {
                        previous.insert((u.key_id, hash.as_str()), (at, u));
                    }
                }
            }
        }
        let mut last: Vec<_> = last.into_values().collect();
        last.sort_by_key(|(_, u)| u.key_id);
        let mut previous: Vec<_> = previous.into_iter().collect();
        previous.sort_by_key(|((id, hash), _)| (*id, *hash));
        let mut arrays = UseArrays::default();
        for (at, u) in last {
            arrays.ids.push(u.key_id.as_bytes().as_slice());
            arrays.ats.push(at);
            arrays
                .addresses
                .push(apikeys::store::encoding::address_to_text(u.address));
        }
        for ((_, hash), (at, u)) in previous {
            arrays.previous_ids.push(u.key_id.as_bytes().as_slice());
            arrays.previous_ats.push(at);
            arrays.previous_hashes.push(hash);
        }
        Ok(arrays)
    }
}

/// How many accounts a bulk creation writes per many-row insert: enough
/// that the statements' cost is spread thin, few enough that the arrays
/// bound (a few megabytes at most for typical accounts) and a refused group
/// is cheap to split.
const GROUP: usize = 1000;

/// The size at or under which a refused group of a bulk creation is
/// written one account at a time rather than split again.
const LEAF: usize = 8;

/// An account to create with its keys and events, encoded once.
struct Opening<'a> {
    account: &'a Account,
    keys: &'a [KeyRecord],
    events: &'a [AuditEvent],
    params: AccountParams<'a>,
    key_params: Vec<KeyParams<'a>>,
    event_params: Vec<EventParams<'a>>,
}

impl<'a> Opening<'a> {
    /// Encodes everything `create_account` writes, refusing what cannot be
    /// stored in its order: the account, then each key, then each event.
    fn new(
        account: &'a Account,
        keys: &'a [KeyRecord],
        events: &'a [AuditEvent],
    ) -> Result<Self, StoreError> {
        Ok(Opening {
            account,
            keys,
            events,
            params: AccountParams::new(account)?,
            key_params: keys
                .iter()
                .map(KeyParams::new)
                .collect::<Result<Vec<_>, _>>()?,
            event_params: events
                .iter()
                .map(EventParams::new)
                .collect::<Result<Vec<_>, _>>()?,
        })
    }

    /// Whether this account, at position `at` of a bulk creation, must be
    /// written alone because a many-row insert could answer it otherwise
    /// than `create_account` would: a key of another account (refused
    /// before the keys after it, which a many-row insert would have tried),
    /// or a parent that is itself or comes later in the batch (`last`: each
    /// id's last position), which the foreign key, checked at the end of
    /// the statement, would accept though the parent is not yet written.
    fn needs_one_by_one(&self, at: usize, last: &HashMap<AccountId, usize>) -> bool {
        let foreign_key = self.keys.iter().any(|k| k.account_id != self.account.id);
        let late_parent = self
            .account
            .kind
            .parent()
            .and_then(|p| last.get(&p))
            .is_some_and(|&p| p >= at);
        foreign_key || late_parent
    }
}

/// Writes one account with its keys and events in `tx`, with
/// `create_account`'s checks and errors; returns the transaction's id.
fn open_account(
    tx: &mut Transaction<'_>,
    st: &pool::Statements,
    o: &Opening<'_>,
) -> Result<i64, Fail> {
    let (account, p) = (o.account, &o.params);
    let parent = account.kind.parent();
    let xid: i64 = tx
        .query_one(
            &st.insert_account,
            &[
                &p.id,
                &p.kind,
                &p.parent_id,
                &p.created_at,
                &p.suspended,
                &p.policy.whitelist_entries,
                &p.policy.sub_account_channels,
                &p.policy.max_key_lifetime,
                &p.external_id,
            ],
        )
        .and_then(|row| row.try_get(0))
        .map_err(|e| match (violated(&e), parent) {
            (Some((Violation::Unique, names::ACCOUNTS_PKEY)), _) => {
                Fail::Store(StoreError::AlreadyExists(Existing::Account))
            }
            (Some((Violation::Unique, names::ACCOUNTS_EXTERNAL_ID)), _) => {
                Fail::Store(StoreError::AlreadyExists(Existing::ExternalId))
            }
            (Some((Violation::ForeignKey, names::ACCOUNTS_PARENT_FKEY)), Some(parent)) => {
                Fail::Store(StoreError::NotFound(Entity::Account(parent)))
            }
            _ => Fail::Db(e),
        })?;
    // A sub-account of itself passes the foreign key (checked after the row
    // is in), but its parent was not stored.
    if parent == Some(account.id) {
        return Err(StoreError::NotFound(Entity::Account(account.id)).into());
    }
    for (key, p) in o.keys.iter().zip(&o.key_params) {
        if key.account_id != account.id {
            return Err(StoreError::NotFound(Entity::Account(key.account_id)).into());
        }
        insert_key(tx, st, key, p)?;
    }
    for (event, p) in o.events.iter().zip(&o.event_params) {
        insert_event(tx, st, event, p)?;
    }
    Ok(xid)
}

/// The answers of a group of a bulk creation, one per account, in order.
type Answers = Vec<Result<(), StoreError>>;

/// Writes each of `accounts` under a savepoint of its own: a refusal rolls
/// back that account only. A statement failing for another reason fails
/// the attempt.
fn open_one_by_one(
    tx: &mut Transaction<'_>,
    st: &pool::Statements,
    accounts: &[&Opening<'_>],
) -> Result<Answers, Fail> {
    let mut answers = Vec::with_capacity(accounts.len());
    for o in accounts {
        let mut sp = tx.savepoint("apikeys_account")?;
        answers.push(match open_account(&mut sp, st, o) {
            Ok(_) => {
                sp.commit()?;
                Ok(())
            }
            Err(Fail::Store(e)) => {
                sp.rollback()?;
                Err(e)
            }
            Err(e) => return Err(e),
        });
    }
    Ok(answers)
}

/// Writes `group` by many-row inserts under a savepoint; if the server
/// refuses them, rolls back to it and writes each half the same way, and a
/// group of at most [`LEAF`] accounts one by one. A connection that failed
/// fails the attempt.
fn open_many(
    tx: &mut Transaction<'_>,
    st: &pool::Statements,
    group: &[&Opening<'_>],
) -> Result<Answers, Fail> {
    let mut sp = tx.savepoint("apikeys_accounts")?;
    match insert_many(&mut sp, st, group) {
        Ok(()) => {
            sp.commit()?;
            return Ok(group.iter().map(|_| Ok(())).collect());
        }
        // The server answered with an error, so the connection is fine:
        // some account broke a rule (or the database refused).
        Err(e) if refused_by_server(&e) => sp.rollback()?,
        Err(e) => return Err(Fail::Db(e)),
    }
    if group.len() <= LEAF {
        return open_one_by_one(tx, st, group);
    }
    let (first, second) = group.split_at(group.len() / 2);
    let mut answers = open_many(tx, st, first)?;
    answers.extend(open_many(tx, st, second)?);
    Ok(answers)
}

/// The many-row inserts of `group`: its accounts, then their keys, then
/// their events, each in the batch's order.
fn insert_many(
    tx: &mut Transaction<'_>,
    st: &pool::Statements,
    group: &[&Opening<'_>],
) -> Result<(), postgres::Error> {
    let mut accounts = AccountRows::default();
    let mut keys = KeyRows::default();
    let mut events = EventRows::default();
    for o in group {
        accounts.push(&o.params);
        o.key_params.iter().for_each(|k| keys.push(k));
        o.event_params.iter().for_each(|e| events.push(e));
    }
    tx.execute(&st.insert_accounts, &accounts.params())?;
    if !keys.is_empty() {
        tx.execute(&st.insert_keys, &keys.params())?;
    }
    if !events.is_empty() {
        tx.execute(&st.insert_events, &events.params())?;
    }
    Ok(())
}

fn commit(tx: Transaction<'_>, xid: i64) -> Result<(), Fail> {
    tx.commit().map_err(|e| Fail::Commit(e, xid))
}

impl Store for PostgresStore {
    fn create_account(
        &self,
        account: &Account,
        keys: &[KeyRecord],
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let opening = Opening::new(account, keys, events)?;
        self.write(|conn| {
            let mut tx = conn.client.transaction()?;
            let xid = open_account(&mut tx, &conn.st, &opening)?;
            commit(tx, xid)
        })
    }

    /// One transaction for the whole call. The accounts go in groups of
    /// [`GROUP`], each written by three many-row inserts (accounts, keys,
    /// events) under a savepoint. A group that any rule refuses is rolled
    /// back to its savepoint and split in two, each half tried the same way,
    /// down to groups of [`LEAF`] accounts, which are written one by one as
    /// `create_account` writes them, each under a savepoint of its own: so
    /// each account's answer is exactly `create_account`'s, and one bad
    /// account among thousands costs a few more statements, not a statement
    /// per row. The few accounts a many-row insert could answer differently
    /// (see [`Opening::needs_one_by_one`]) are always written one by one.
    ///
    /// A connection lost before `COMMIT` runs the whole call again on
    /// another connection; one lost during `COMMIT` is resolved as for every
    /// write (see [`PostgresStore::run`]), so an `Err` means nothing of the
    /// call was written.
    fn create_accounts(
        &self,
        accounts: &[AccountRecords],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        if accounts.is_empty() {
            return Ok(Vec::new());
        }
        // Encoded once, whatever the attempts: an account that cannot be
        // encoded is refused as create_account refuses it, before anything
        // is written, and takes no part.
        let openings: Vec<Result<Opening<'_>, StoreError>> = accounts
            .iter()
            .map(|a| Opening::new(&a.account, &a.keys, &a.events))
            .collect();
        let mut last_position: HashMap<AccountId, usize> = HashMap::new();
        for (i, a) in accounts.iter().enumerate() {
            last_position.insert(a.account.id, i);
        }
        // Runs of the encoded accounts in the batch's order: those to write
        // one by one alone, the others in groups of at most GROUP.
        let mut runs: Vec<(bool, Vec<&Opening<'_>>)> = Vec::new();
        let mut group = Vec::new();
        for (i, o) in openings.iter().enumerate() {
            let Ok(o) = o else { continue };
            if o.needs_one_by_one(i, &last_position) {
                if !group.is_empty() {
                    runs.push((false, std::mem::take(&mut group)));
                }
                runs.push((true, vec![o]));
            } else {
                group.push(o);
                if group.len() == GROUP {
                    runs.push((false, std::mem::take(&mut group)));
                }
            }
        }
        if !group.is_empty() {
            runs.push((false, group));
        }
        let mut answers = Answers::new();
        self.write(|conn| {
            let mut tx = conn.client.transaction()?;
            let xid: i64 = tx.query_one(&conn.st.txid, &[])?.try_get(0)?;
            let mut written = Answers::with_capacity(accounts.len());
            for (one_by_one, run) in &runs {
                written.extend(if *one_by_one {
                    open_one_by_one(&mut tx, &conn.st, run)?
                } else {
                    open_many(&mut tx, &conn.st, run)?
                });
            }
            answers = written;
            commit(tx, xid)
        })?;
        // One answer per encoded account, in order; the others were refused
        // by their encoding.
        let mut answers = answers.into_iter();
        Ok(openings
            .into_iter()
            .map(|o| {
                o.and_then(|_| {
                    // Never reached (one answer per encoded account); if it
                    // were, "not written" is the answer that cannot lie.
                    answers
                        .next()
                        .unwrap_or_else(|| Err(StoreError::backend("no answer for this account")))
                })
            })
            .collect())
    }

    fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        self.read(|conn| {
            let row = conn
                .client
                .query_opt(&conn.st.account, &[&id.as_bytes().as_slice()])?;
            Ok(row.as_ref().map(codec::account_from_row).transpose()?)
        })
    }

    fn account_by_external_id(
        &self,
        external_id: &ExternalId,
    ) -> Result<Option<Account>, StoreError> {
        self.read(|conn| {
            let row = conn
                .client
                .query_opt(&conn.st.account_by_external_id, &[&external_id.as_str()])?;
            Ok(row.as_ref().map(codec::account_from_row).transpose()?)
        })
    }

    fn sub_accounts(&self, master: AccountId) -> Result<Vec<Account>, StoreError> {
        self.read(|conn| {
            let rows = conn
                .client
                .query(&conn.st.sub_accounts, &[&master.as_bytes().as_slice()])?;
            Ok(rows
                .iter()
                .map(codec::account_from_row)
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn accounts(&self, after: Option<AccountId>, limit: usize) -> Result<Vec<Account>, StoreError> {
        let after: &[u8] = after.as_ref().map_or(&[], |a| a.as_bytes().as_slice());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            let rows = conn
                .client
                .query(&conn.st.accounts_after, &[&after, &limit])?;
            Ok(rows
                .iter()
                .map(codec::account_from_row)
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn insert_key(
        &self,
        key: &KeyRecord,
        max_for_channel: u32,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let p = KeyParams::new(key)?;
        let ep = EventParams::new(event)?;
        self.write(|conn| {
            let mut tx = conn.client.transaction()?;
            // Locking the account's row serialises the writers of its keys,
            // so the count below cannot be overtaken by a concurrent insert.
            let Some(locked) = tx.query_opt(&conn.st.lock_account, &[&p.account_id])? else {
                return Err(StoreError::NotFound(Entity::Account(key.account_id)).into());
            };
            let xid: i64 = locked.try_get(0)?;
            // Insert first, count after: a key breaking several rules is
            // refused for its id or identifier before its channel, as the
            // in-memory store does.
            insert_key(&mut tx, &conn.st, key, &p)?;
            let held: i64 = tx
                .query_one(&conn.st.count_channel, &[&p.account_id, &p.channel])?
                .try_get(0)?;
            if held > i64::from(max_for_channel) {
                return Err(StoreError::AlreadyExists(Existing::ChannelFull(key.channel)).into());
            }
            insert_event(&mut tx, &conn.st, event, &ep)?;
            commit(tx, xid)
        })
    }

    fn key(&self, id: KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.read(|conn| {
            let row = conn
                .client
                .query_opt(&conn.st.key, &[&id.as_bytes().as_slice()])?;
            Ok(row.as_ref().map(codec::key_from_row).transpose()?)
        })
    }

    fn key_by_identifier(&self, identifier: &str) -> Result<Option<KeyRecord>, StoreError> {
        // PostgreSQL's text cannot hold NUL, so no stored identifier has
        // one, and the server would refuse the parameter: nothing matches.
        if identifier.contains('\0') {
            return Ok(None);
        }
        // The hot path: one prepared statement, one round trip, one index
        // lookup.
        self.read(|conn| {
            let row = conn
                .client
                .query_opt(&conn.st.key_by_identifier, &[&identifier])?;
            Ok(row.as_ref().map(codec::key_from_row).transpose()?)
        })
    }

    fn keys_of_account(&self, account: AccountId) -> Result<Vec<KeyRecord>, StoreError> {
        self.read(|conn| {
            let rows = conn
                .client
                .query(&conn.st.keys_of_account, &[&account.as_bytes().as_slice()])?;
            Ok(rows
                .iter()
                .map(codec::key_from_row)
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn update_key(
        &self,
        key: &KeyRecord,
        expected_version: u64,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let p = KeyParams::for_update(key)?;
        // A version no key can be at (stored versions are at least 1)
        // matches none: the update is then a Conflict, as any other stale
        // version is.
        let expected = i64::try_from(expected_version).unwrap_or(0);
        let ep = EventParams::new(event)?;
        self.write(|conn| {
            let mut tx = conn.client.transaction()?;
            let updated = tx
                .query_opt(
                    &conn.st.update_key,
                    &[
                        &p.id,
                        &expected,
                        &p.identifier,
                        &p.label,
                        &p.secret_hash,
                        &p.previous_hash,
                        &p.previous_expires_at,
                        &p.whitelist,
                        &p.changed_at,
                        &p.version,
                        &p.expires_at,
                        &p.enabled,
                    ],
                )
                .map_err(|e| match violated(&e) {
                    Some((Violation::Unique, names::KEYS_IDENTIFIER)) => {
                        Fail::Store(StoreError::AlreadyExists(Existing::Identifier))
                    }
                    _ => Fail::Db(e),
                })?;
            let Some(updated) = updated else {
                // Gone, or moved on: tell which.
                let found = tx.query_opt(&conn.st.key_version, &[&p.id])?;
                let err = match found {
                    None => StoreError::NotFound(Entity::Key(key.id)),
                    Some(row) => {
                        let found: i64 = row.try_get(0)?;
                        StoreError::Conflict {
                            key: key.id,
                            expected: expected_version,
                            found: u64::try_from(found).unwrap_or(0),
                        }
                    }
                };
                return Err(err.into());
            };
            let xid: i64 = updated.try_get(0)?;
            let credentials_changed: bool = updated.try_get(1)?;
            if credentials_changed {
                tx.execute(&conn.st.drop_tokens_of_key, &[&p.id])?;
            }
            insert_event(&mut tx, &conn.st, event, &ep)?;
            commit(tx, xid)
        })
    }

    fn upgrade_secret_hash(
        &self,
        id: KeyId,
        current: &SecretHash,
        upgraded: &SecretHash,
    ) -> Result<bool, StoreError> {
        self.read(|conn| {
            let n = conn.client.execute(
                &conn.st.upgrade_hash,
                &[
                    &id.as_bytes().as_slice(),
                    &current.as_str(),
                    &upgraded.as_str(),
                ],
            )?;
            Ok(n == 1)
        })
    }

    fn delete_key(
        &self,
        id: KeyId,
        expected_version: Option<u64>,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let ep = EventParams::new(event)?;
        // A version no key can be at matches none: a Conflict, as in
        // `update_key`.
        let expected = expected_version.map(|v| i64::try_from(v).unwrap_or(0));
        self.write(|conn| {
            let mut tx = conn.client.transaction()?;
            let Some(deleted) =
                tx.query_opt(&conn.st.delete_key, &[&id.as_bytes().as_slice(), &expected])?
            else {
                // Gone, or moved on: tell which.
                let found = tx.query_opt(&conn.st.key_version, &[&id.as_bytes().as_slice()])?;
                let err = match (found, expected_version) {
                    (Some(row), Some(expected)) => {
                        let found: i64 = row.try_get(0)?;
                        StoreError::Conflict {
                            key: id,
                            expected,
                            found: u64::try_from(found).unwrap_or(0),
                        }
                    }
                    _ => StoreError::NotFound(Entity::Key(id)),
                };
                return Err(err.into());
            };
            let xid: i64 = deleted.try_get(0)?;
            insert_event(&mut tx, &conn.st, event, &ep)?;
            commit(tx, xid)
        })
    }

    fn insert_token(
        &self,
        token: &TokenRecord,
        key_version: u64,
        max_live: u32,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let (issued_at, expires_at, now) = (
            codec::instant(token.issued_at)?,
            codec::instant(token.expires_at)?,
            codec::instant(now)?,
        );
        let ep = EventParams::new(event)?;
        let key_id = token.key_id.as_bytes().as_slice();
        let digest = token.digest.0.as_slice();
        let max_live = i64::from(max_live.max(1));
        self.write(|conn| {
            let mut tx = conn.client.transaction()?;
            let Some(locked) = tx.query_opt(&conn.st.lock_key, &[&key_id])? else {
                return Err(StoreError::NotFound(Entity::Key(token.key_id)).into());
            };
            let found: i64 = locked.try_get(0)?;
            let xid: i64 = locked.try_get(1)?;
            let found = u64::try_from(found).unwrap_or(0);
            if found != key_version {
                return Err(StoreError::Conflict {
                    key: token.key_id,
                    expected: key_version,
                    found,
                }
                .into());
            }
            if tx.query_opt(&conn.st.token_exists, &[&digest])?.is_some() {
                return Err(StoreError::AlreadyExists(Existing::Token).into());
            }
            tx.execute(&conn.st.drop_expired_tokens_of_key, &[&key_id, &now])?;
            tx.execute(&conn.st.make_room_for_token, &[&key_id, &max_live])?;
            tx.execute(
                &conn.st.insert_token,
                &[&digest, &key_id, &issued_at, &expires_at],
            )?;
            insert_event(&mut tx, &conn.st, event, &ep)?;
            commit(tx, xid)
        })
    }

    fn token(&self, digest: &TokenDigest) -> Result<Option<(TokenRecord, KeyRecord)>, StoreError> {
        self.read(|conn| {
            let Some(row) = conn
                .client
                .query_opt(&conn.st.token, &[&digest.0.as_slice()])?
            else {
                return Ok(None);
            };
            let key = codec::key_from_row(&row)?;
            Ok(Some((token_at(&row, digest, &key)?, key)))
        })
    }

    fn purge_expired_tokens(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let now = codec::instant(now)?;
        self.read(|conn| Ok(conn.client.execute(&conn.st.purge_tokens, &[&now])?))
    }

    fn audit_events(
        &self,
        account: AccountId,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            let rows = conn.client.query(
                &conn.st.audit_events,
                &[&account.as_bytes().as_slice(), &limit],
            )?;
            Ok(rows
                .iter()
                .map(codec::event_from_row)
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn set_account_suspended(
        &self,
        id: AccountId,
        suspended: bool,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let ep = EventParams::new(event)?;
        self.write(|conn| {
            let mut tx = conn.client.transaction()?;
            let Some(updated) = tx.query_opt(
                &conn.st.set_suspended,
                &[&id.as_bytes().as_slice(), &suspended],
            )?
            else {
                return Err(StoreError::NotFound(Entity::Account(id)).into());
            };
            let xid: i64 = updated.try_get(0)?;
            insert_event(&mut tx, &conn.st, event, &ep)?;
            commit(tx, xid)
        })
    }

    fn set_account_policy(
        &self,
        id: AccountId,
        policy: &AccountPolicy,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let policy = PolicyValues::new(policy)?;
        let ep = EventParams::new(event)?;
        self.write(|conn| {
            let mut tx = conn.client.transaction()?;
            let Some(updated) = tx.query_opt(
                &conn.st.set_policy,
                &[
                    &id.as_bytes().as_slice(),
                    &policy.whitelist_entries,
                    &policy.sub_account_channels,
                    &policy.max_key_lifetime,
                ],
            )?
            else {
                return Err(StoreError::NotFound(Entity::Account(id)).into());
            };
            let xid: i64 = updated.try_get(0)?;
            insert_event(&mut tx, &conn.st, event, &ep)?;
            commit(tx, xid)
        })
    }

    fn record_uses(&self, uses: &[KeyUse]) -> Result<(), StoreError> {
        // Everything encoded first: an instant out of range refuses the
        // batch before anything is written.
        let arrays = UseArrays::new(uses)?;
        if arrays.ids.is_empty() {
            return Ok(());
        }
        // One transaction, whatever the batch's size: BEGIN, one statement
        // for the last uses, one for the previous secrets' if any, COMMIT.
        // Recording is idempotent (the newest instant wins), so a batch
        // that lost a deadlock against another process's (their rows
        // locked in another order by the join) is simply run again.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let outcome = self.write(|conn| {
                let mut tx = conn.client.transaction()?;
                let xid: i64 = tx
                    .query_one(
                        &conn.st.record_last_uses,
                        &[&arrays.ids, &arrays.ats, &arrays.addresses],
                    )?
                    .try_get(0)?;
                if !arrays.previous_ids.is_empty() {
                    tx.execute(
                        &conn.st.record_previous_uses,
                        &[
                            &arrays.previous_ids,
                            &arrays.previous_ats,
                            &arrays.previous_hashes,
                        ],
                    )?;
                }
                commit(tx, xid)
            });
            match outcome {
                Err(e) if attempts < 3 && lost_a_deadlock(&e) => continue,
                other => return other,
            }
        }
    }

    fn holders(&self, account: AccountId) -> Result<Option<Holders>, StoreError> {
        self.read(|conn| {
            let row = conn
                .client
                .query_opt(&conn.st.holders, &[&account.as_bytes().as_slice()])?;
            Ok(row.as_ref().map(|r| holders_at(r, 0)).transpose()?)
        })
    }

    fn key_for_authentication(&self, identifier: &str) -> Result<Option<HeldKey>, StoreError> {
        // As `key_by_identifier`: no stored identifier holds a NUL.
        if identifier.contains('\0') {
            return Ok(None);
        }
        // The hot path: one prepared statement, one round trip, the key by
        // its index and the holders by primary key, from one snapshot.
        self.read(|conn| {
            let Some(row) = conn
                .client
                .query_opt(&conn.st.key_for_authentication, &[&identifier])?
            else {
                return Ok(None);
            };
            Ok(Some(HeldKey {
                key: codec::key_from_row(&row)?,
                holders: holders_at(&row, KEY_COLUMN_COUNT)?,
            }))
        })
    }

    fn token_for_authentication(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<(TokenRecord, HeldKey)>, StoreError> {
        self.read(|conn| {
            let Some(row) = conn
                .client
                .query_opt(&conn.st.token_for_authentication, &[&digest.0.as_slice()])?
            else {
                return Ok(None);
            };
            let key = codec::key_from_row(&row)?;
            let token = token_at(&row, digest, &key)?;
            let holders = holders_at(&row, KEY_COLUMN_COUNT + 2)?;
            Ok(Some((token, HeldKey { key, holders })))
        })
    }

    fn dormant_keys(&self, query: &DormantQuery) -> Result<Vec<KeyRecord>, StoreError> {
        let since = codec::instant(query.unused_since)?;
        // bytea compares bytewise, shorter first on a tie: the empty value
        // is before every id, the first page.
        let after: &[u8] = query
            .after
            .as_ref()
            .map_or(&[], |k| k.as_bytes().as_slice());
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let legacy = query.legacy_defaults_only;
        self.read(|conn| {
            let rows = match query.account {
                None => conn
                    .client
                    .query(&conn.st.dormant_keys, &[&after, &since, &legacy, &limit])?,
                Some(account) => conn.client.query(
                    &conn.st.dormant_keys_of_account,
                    &[
                        &after,
                        &since,
                        &legacy,
                        &limit,
                        &account.as_bytes().as_slice(),
                    ],
                )?,
            };
            Ok(rows
                .iter()
                .map(codec::key_from_row)
                .collect::<Result<Vec<_>, _>>()?)
        })
    }
}

/// Whether a write failed for a deadlock the server broke by aborting it
/// (nothing of it was applied).
fn lost_a_deadlock(e: &StoreError) -> bool {
    let StoreError::Backend { source } = e else {
        return false;
    };
    matches!(
        source.downcast_ref::<DatabaseError>(),
        Some(DatabaseError::Query { source })
            if source.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_default_to_production_and_chain() {
        let d = Options::default();
        assert_eq!(d.pool_size, 16);
        assert_eq!(d.schema, None);
        assert_eq!(d.checkout_timeout, Duration::from_secs(5));
        let o = Options::default()
            .pool_size(4)
            .schema("apikeys")
            .checkout_timeout(Duration::from_millis(250));
        assert_eq!(
            (o.pool_size, o.schema.as_deref(), o.checkout_timeout),
            (4, Some("apikeys"), Duration::from_millis(250))
        );
    }
}
