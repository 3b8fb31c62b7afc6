//! `apikeys-server export`: every account and its keys' metadata, in the
//! import's format, so that the file imports into another store.
//!
//! Rules:
//! - No secret ever (none is kept), and no hash unless asked
//!   (`--with-hashes`, with a warning: a hash is what an attacker who has
//!   the file would brute-force).
//! - An account without an external id is written with its id here as its
//!   external id, so that every line imports and its sub-accounts find it.
//! - Accounts go in id order, a page at a time: memory holds one page.

use super::format::{Line, LineKey, rfc3339};
use apikeys::{Account, AccountId, AccountKind, DynStore};
use std::collections::HashMap;
use std::error::Error;
use std::io::Write;

/// Accounts read at a time.
const PAGE: usize = 1000;

/// What an export wrote.
#[derive(Debug, Default)]
pub(crate) struct Exported {
    pub(crate) accounts: u64,
    pub(crate) keys: u64,
}

/// The external id an account is exported under.
fn exported_id(account: &Account) -> String {
    account
        .external_id
        .as_ref()
        .map_or_else(|| account.id.to_string(), |e| e.as_str().to_owned())
}

/// Writes every account to `out`.
pub(crate) fn run(
    store: &DynStore,
    out: &mut dyn Write,
    with_hashes: bool,
) -> Result<Exported, Box<dyn Error>> {
    let mut done = Exported::default();
    let mut after = None;
    // Masters' exported ids, for their sub-accounts' lines.
    let mut masters: HashMap<AccountId, String> = HashMap::new();
    loop {
        let page = store.accounts(after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for account in &page {
            let parent = match account.kind {
                AccountKind::Master => None,
                AccountKind::Sub { parent } => Some(match masters.get(&parent) {
                    Some(id) => id.clone(),
                    None => {
                        let master = store.account(parent)?.ok_or_else(|| {
                            format!("account {} names a master that is not stored", account.id)
                        })?;
                        let id = exported_id(&master);
                        masters.insert(parent, id.clone());
                        id
                    }
                }),
            };
            if matches!(account.kind, AccountKind::Master) {
                masters.insert(account.id, exported_id(account));
            }
            let keys = store.keys_of_account(account.id)?;
            done.keys += keys.len() as u64;
            let line = Line {
                external_id: exported_id(account),
                kind: account.kind.code().into(),
                parent_external_id: parent,
                created_at: rfc3339(account.created_at),
                keys: keys
                    .into_iter()
                    .map(|k| LineKey {
                        channel: k.channel.code().into(),
                        identifier: k.identifier,
                        secret: None,
                        secret_hash: with_hashes.then(|| k.secret_hash.as_str().to_owned()),
                        label: k.label,
                        whitelist: k
                            .whitelist
                            .entries()
                            .iter()
                            .map(ToString::to_string)
                            .collect(),
                        enabled: k.enabled,
                        expires_at: k.expires_at.map(rfc3339),
                    })
                    .collect(),
            };
            serde_json::to_writer(&mut *out, &line)?;
            out.write_all(b"\n")?;
            done.accounts += 1;
        }
    }
    out.flush()?;
    Ok(done)
}
