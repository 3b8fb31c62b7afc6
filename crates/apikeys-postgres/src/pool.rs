//! The connection pool: `r2d2` over connections that carry their prepared
//! statements.
//!
//! Every statement the store runs is prepared once per connection, when the
//! connection is opened, so that each read is one round trip (Bind, Execute,
//! Sync) and never a Parse first. That is why the pool's connection is our
//! own [`Conn`] rather than `r2d2_postgres`'s bare `postgres::Client`: the
//! statements must live and die with the connection they were prepared on.

use crate::codec::{
    ACCOUNT_COLUMNS, ACCOUNT_TYPES, EVENT_COLUMNS, EVENT_TYPES, KEY_COLUMNS, KEY_TYPES,
    insert_many, qualified,
};
use crate::schema::fold;
use postgres::{Client, Config, NoTls, Statement};

/// Opens connections and prepares their statements.
#[derive(Debug)]
pub(crate) struct Manager {
    pub(crate) config: Config,
}

/// A pooled connection with its prepared statements.
pub(crate) struct Conn {
    pub(crate) client: Client,
    pub(crate) st: Statements,
    /// The server process of this session (`pg_backend_pid()`): to end it
    /// if it still holds a transaction whose `COMMIT` answer was lost.
    pub(crate) pid: i32,
    /// Set when an operation found the connection dead, so that the pool
    /// drops it instead of handing it out again.
    pub(crate) broken: bool,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        let mut client = self.config.connect(NoTls)?;
        let st = Statements::prepare(&mut client)?;
        let pid = client
            .query_one("SELECT pg_backend_pid()", &[])?
            .try_get(0)?;
        Ok(Conn {
            client,
            st,
            pid,
            broken: false,
        })
    }

    // Only called if `test_on_check_out` is set, which the store does not
    // set: it would cost a round trip on every authentication. Stale
    // connections are found by use and retried instead (see `crate::run`).
    fn is_valid(&self, conn: &mut Conn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken || conn.client.is_closed()
    }
}

/// The store's statements, prepared on one connection.
///
/// The first statement of every write transaction also returns
/// `txid_current()`, at no extra round trip, so that a `COMMIT` whose answer
/// was lost can be resolved afterwards with `txid_status` (see
/// `crate::PostgresStore::commit_status`).
pub(crate) struct Statements {
    pub(crate) account: Statement,
    pub(crate) account_by_external_id: Statement,
    pub(crate) sub_accounts: Statement,
    pub(crate) accounts_after: Statement,
    pub(crate) insert_account: Statement,
    pub(crate) txid: Statement,
    pub(crate) insert_accounts: Statement,
    pub(crate) insert_keys: Statement,
    pub(crate) insert_events: Statement,
    pub(crate) lock_account: Statement,
    pub(crate) insert_key: Statement,
    pub(crate) count_channel: Statement,
    pub(crate) key: Statement,
    pub(crate) key_by_identifier: Statement,
    pub(crate) keys_of_account: Statement,
    pub(crate) update_key: Statement,
    pub(crate) key_version: Statement,
    pub(crate) upgrade_hash: Statement,
    pub(crate) delete_key: Statement,
    pub(crate) insert_event: Statement,
    pub(crate) audit_events: Statement,
    pub(crate) lock_key: Statement,
    pub(crate) token_exists: Statement,
    pub(crate) drop_expired_tokens_of_key: Statement,
    pub(crate) make_room_for_token: Statement,
    pub(crate) insert_token: Statement,
    pub(crate) token: Statement,
    pub(crate) drop_tokens_of_key: Statement,
    pub(crate) purge_tokens: Statement,
    pub(crate) set_suspended: Statement,
    pub(crate) set_policy: Statement,
    pub(crate) record_last_uses: Statement,
    pub(crate) record_previous_uses: Statement,
    pub(crate) holders: Statement,
    pub(crate) key_for_authentication: Statement,
    pub(crate) token_for_authentication: Statement,
    pub(crate) dormant_keys: Statement,
    pub(crate) dormant_keys_of_account: Statement,
}

impl Statements {
    fn prepare(c: &mut Client) -> Result<Self, postgres::Error> {
        let k = qualified(KEY_COLUMNS, "k");
        let a = qualified(ACCOUNT_COLUMNS, "a");
        let m = qualified(ACCOUNT_COLUMNS, "m");
        // The account of a row of `a`, and its master (NULLs for a master).
        let holders_join = "JOIN apikeys_accounts a ON a.id = k.account_id \
             LEFT JOIN apikeys_accounts m ON m.id = a.parent_id";
        // The filter of `DormantQuery::matches` and the keyset page: $1 the
        // last id of the previous page (the empty value, before every id,
        // for the first), $2 `unused_since`, $3 only unused legacy
        // defaults, $4 the limit.
        let dormant = "k.id > $1 AND coalesce(k.last_used_at, k.created_at) <= $2 \
             AND (NOT $3::boolean OR (k.legacy_default AND k.last_used_at IS NULL))";
        Ok(Statements {
            account: c.prepare(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM apikeys_accounts WHERE id = $1"
            ))?,
            // The unique index of external ids; the column's collation
            // ("C") is the comparison's, so it is byte for byte.
            account_by_external_id: c.prepare(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM apikeys_accounts WHERE external_id = $1"
            ))?,
            // `apikeys_accounts_parent` holds this order: no sort.
            sub_accounts: c.prepare(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM apikeys_accounts WHERE parent_id = $1 \
                 ORDER BY created_at, id"
            ))?,
            // A range of the primary key; bytea compares bytewise, shorter
            // first on a tie, so the empty value is before every id.
            accounts_after: c.prepare(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM apikeys_accounts WHERE id > $1 \
                 ORDER BY id LIMIT $2"
            ))?,
            insert_account: c.prepare(&format!(
                "INSERT INTO apikeys_accounts ({ACCOUNT_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING txid_current()"
            ))?,
            // The first statement of a bulk creation, whose inserts return
            // nothing.
            txid: c.prepare("SELECT txid_current()")?,
            insert_accounts: c.prepare(&insert_many(
                "apikeys_accounts",
                ACCOUNT_COLUMNS,
                &ACCOUNT_TYPES,
            ))?,
            insert_keys: c.prepare(&insert_many("apikeys_keys", KEY_COLUMNS, &KEY_TYPES))?,
            insert_events: c.prepare(&insert_many(
                "apikeys_audit_events",
                EVENT_COLUMNS,
                &EVENT_TYPES,
            ))?,
            // NO KEY UPDATE: serialises the writers of one account's keys
            // without blocking the foreign-key checks of other writers.
            lock_account: c.prepare(
                "SELECT txid_current() FROM apikeys_accounts WHERE id = $1 FOR NO KEY UPDATE",
            )?,
            insert_key: c.prepare(&format!(
                "INSERT INTO apikeys_keys ({KEY_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                     $13, $14, $15, $16, $17, $18)"
            ))?,
            count_channel: c.prepare(
                "SELECT count(*) FROM apikeys_keys WHERE account_id = $1 AND channel = $2",
            )?,
            key: c.prepare(&format!(
                "SELECT {KEY_COLUMNS} FROM apikeys_keys WHERE id = $1"
            ))?,
            key_by_identifier: c.prepare(&format!(
                "SELECT {KEY_COLUMNS} FROM apikeys_keys WHERE {} = {}",
                fold("identifier"),
                fold("$1::text"),
            ))?,
            keys_of_account: c.prepare(&format!(
                "SELECT {KEY_COLUMNS} FROM apikeys_keys WHERE account_id = $1 \
                 ORDER BY created_at, id"
            ))?,
            // Also says whether the credentials changed: the row as it was
            // comes from the same snapshot, and the version check rules out
            // a change in between. The right-hand sides read the row as it
            // was: the previous secret's last use is kept only while its
            // hash stays the same. The legacy mark and the usage are not
            // written.
            update_key: c.prepare(
                "UPDATE apikeys_keys AS k SET identifier = $3, label = $4, secret_hash = $5, \
                 previous_hash = $6, previous_expires_at = $7, whitelist = $8, \
                 changed_at = $9, version = $10, expires_at = $11, enabled = $12, \
                 previous_secret_last_used_at = CASE \
                     WHEN k.previous_hash IS NOT DISTINCT FROM $6 \
                     THEN k.previous_secret_last_used_at END \
                 FROM (SELECT identifier, secret_hash FROM apikeys_keys WHERE id = $1) AS old \
                 WHERE k.id = $1 AND k.version = $2 \
                 RETURNING txid_current(), \
                     (old.identifier <> $3 OR old.secret_hash <> $5) AS credentials_changed",
            )?,
            key_version: c.prepare("SELECT version FROM apikeys_keys WHERE id = $1")?,
            upgrade_hash: c.prepare(
                "UPDATE apikeys_keys SET secret_hash = $3 WHERE id = $1 AND secret_hash = $2",
            )?,
            // $2 NULL: whatever the version.
            delete_key: c.prepare(
                "DELETE FROM apikeys_keys WHERE id = $1 AND ($2::bigint IS NULL OR version = $2) \
                 RETURNING txid_current()",
            )?,
            insert_event: c.prepare(&format!(
                "INSERT INTO apikeys_audit_events ({EVENT_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ))?,
            audit_events: c.prepare(&format!(
                "SELECT {EVENT_COLUMNS} FROM apikeys_audit_events WHERE account_id = $1 \
                 ORDER BY at DESC, seq DESC LIMIT $2"
            ))?,
            // Serialises the token writers of one key.
            lock_key: c.prepare(
                "SELECT version, txid_current() FROM apikeys_keys WHERE id = $1 FOR UPDATE",
            )?,
            token_exists: c.prepare("SELECT 1 FROM apikeys_tokens WHERE digest = $1")?,
            drop_expired_tokens_of_key: c
                .prepare("DELETE FROM apikeys_tokens WHERE key_id = $1 AND expires_at <= $2")?,
            make_room_for_token: c.prepare(
                "DELETE FROM apikeys_tokens WHERE digest IN ( \
                     SELECT digest FROM apikeys_tokens WHERE key_id = $1 \
                     ORDER BY issued_at, digest \
                     LIMIT greatest(0, \
                         (SELECT count(*) FROM apikeys_tokens WHERE key_id = $1) + 1 - $2))",
            )?,
            insert_token: c.prepare(
                "INSERT INTO apikeys_tokens (digest, key_id, issued_at, expires_at) \
                 VALUES ($1, $2, $3, $4)",
            )?,
            token: c.prepare(&format!(
                "SELECT {k}, t.issued_at, t.expires_at FROM apikeys_tokens t \
                 JOIN apikeys_keys k ON k.id = t.key_id WHERE t.digest = $1"
            ))?,
            drop_tokens_of_key: c.prepare("DELETE FROM apikeys_tokens WHERE key_id = $1")?,
            purge_tokens: c.prepare("DELETE FROM apikeys_tokens WHERE expires_at <= $1")?,
            // Each writes its own columns only, so that a suspension and a
            // policy change racing each other both land.
            set_suspended: c.prepare(
                "UPDATE apikeys_accounts SET suspended = $2 WHERE id = $1 \
                 RETURNING txid_current()",
            )?,
            set_policy: c.prepare(
                "UPDATE apikeys_accounts SET policy_whitelist = $2, sub_account_channels = $3, \
                 max_key_lifetime = $4 WHERE id = $1 RETURNING txid_current()",
            )?,
            // A whole batch in one statement (arrays of one entry per key,
            // unnested), newest instant winning; keys that are gone match no
            // row. One row back whatever the batch: the transaction's id.
            record_last_uses: c.prepare(
                "WITH updated AS ( \
                     UPDATE apikeys_keys AS k SET last_used_at = u.at, last_used_address = u.address \
                     FROM unnest($1::bytea[], $2::bigint[], $3::text[]) AS u(id, at, address) \
                     WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.at) \
                     RETURNING 1) \
                 SELECT txid_current(), (SELECT count(*) FROM updated)",
            )?,
            // Only while the stored previous hash is the one the use matched.
            record_previous_uses: c.prepare(
                "UPDATE apikeys_keys AS k SET previous_secret_last_used_at = u.at \
                 FROM unnest($1::bytea[], $2::bigint[], $3::text[]) AS u(id, at, hash) \
                 WHERE k.id = u.id AND k.previous_hash = u.hash \
                   AND (k.previous_secret_last_used_at IS NULL \
                        OR k.previous_secret_last_used_at < u.at)",
            )?,
            holders: c.prepare(&format!(
                "SELECT {a}, {m} FROM apikeys_accounts a \
                 LEFT JOIN apikeys_accounts m ON m.id = a.parent_id WHERE a.id = $1"
            ))?,
            // The authentication hot path: the key by the folded-identifier
            // index, its account and master by primary key, in one
            // statement and one round trip, from one snapshot.
            key_for_authentication: c.prepare(&format!(
                "SELECT {k}, {a}, {m} FROM apikeys_keys k {holders_join} WHERE {} = {}",
                fold("k.identifier"),
                fold("$1::text"),
            ))?,
            token_for_authentication: c.prepare(&format!(
                "SELECT {k}, t.issued_at, t.expires_at, {a}, {m} FROM apikeys_tokens t \
                 JOIN apikeys_keys k ON k.id = t.key_id {holders_join} WHERE t.digest = $1"
            ))?,
            // In id order, the primary key's: a page is a range of it.
            dormant_keys: c.prepare(&format!(
                "SELECT {k} FROM apikeys_keys k WHERE {dormant} ORDER BY k.id LIMIT $4"
            ))?,
            // One account's keys and, for a master, its sub-accounts'.
            dormant_keys_of_account: c.prepare(&format!(
                "SELECT {k} FROM apikeys_keys k WHERE k.account_id IN \
                     (SELECT $5::bytea UNION ALL \
                      SELECT id FROM apikeys_accounts WHERE parent_id = $5) \
                 AND {dormant} ORDER BY k.id LIMIT $4"
            ))?,
        })
    }
}
