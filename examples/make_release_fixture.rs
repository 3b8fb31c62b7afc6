//! Writes a database made by this release, with credentials to check after
//! an upgrade (the migration tests' fixture). Run once per release:
//! `cargo run --example make_release_fixture -- DB.sqlite3 CREDENTIALS.json [POSTGRES_URL SCHEMA]`
// A one-off tool run by hand: failing loudly on any error is its job.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use apikeys::service::{CredentialChange, Grace, NewAccount, NewKey};
use apikeys::time::macros::datetime;
use apikeys::{Actor, ApiKeys, Channel, Policy, Secret, Store, Whitelist};
use std::sync::Arc;

fn fill(store: Arc<dyn Store>) -> Vec<String> {
    let svc = ApiKeys::production(
        store,
        Policy::fast_for_tests().max_grace(apikeys::time::Duration::days(3650)),
    )
    .unwrap();
    let mut out = Vec::new();
    let mut note = |channel: Channel, identifier: &str, secret: &str, slot: &str| {
        out.push(format!(
            "{{\"channel\":\"{}\",\"identifier\":\"{identifier}\",\"secret\":\"{secret}\",\"slot\":\"{slot}\"}}",
            channel.code()
        ));
    };
    let op = Actor::Operator;
    // A legacy master: four default keys with generated secrets.
    let legacy = svc
        .open_account(
            op,
            NewAccount::master().created_at(datetime!(2021-03-04 05:06:07.123456789 UTC)),
        )
        .unwrap();
    for k in &legacy.issued {
        note(
            k.key.channel,
            &k.key.identifier,
            k.secret.as_ref().unwrap().expose_secret(),
            "current",
        );
    }
    // A new master with a generated REST key, a chosen labelled one, and a key in grace.
    let fresh = svc
        .open_account(
            op,
            NewAccount::master().created_at(datetime!(2024-01-02 03:04:05 UTC)),
        )
        .unwrap();
    let id = fresh.account.id;
    let g = svc
        .create_key(op, id, NewKey::generated(Channel::Rest))
        .unwrap();
    note(
        Channel::Rest,
        &g.key.identifier,
        g.secret.as_ref().unwrap().expose_secret(),
        "current",
    );
    let chosen = "Chosen-Secret-For-The-Fixture-42!";
    let c = svc
        .create_key(
            op,
            id,
            NewKey::chosen(Channel::Rest, "fixture-rest-chosen", Secret::new(chosen))
                .with_label("billing"),
        )
        .unwrap();
    note(Channel::Rest, &c.key.identifier, chosen, "current");
    let w = svc
        .create_key(op, id, NewKey::generated(Channel::Http))
        .unwrap();
    let old = w.secret.as_ref().unwrap().expose_secret().to_owned();
    let changed = svc
        .change_credentials(
            op,
            w.key.id,
            CredentialChange::regenerate_secret()
                .with_grace(Grace::For(apikeys::time::Duration::days(3650))),
        )
        .unwrap();
    note(
        Channel::Http,
        &w.key.identifier,
        changed.secret.as_ref().unwrap().expose_secret(),
        "current",
    );
    note(Channel::Http, &w.key.identifier, &old, "previous");
    // A sub-account with a whitelisted FTP key.
    let sub = svc.open_account(op, NewAccount::sub(id)).unwrap();
    let f = svc
        .create_key(op, sub.account.id, NewKey::generated(Channel::Ftp))
        .unwrap();
    svc.set_whitelist(
        op,
        f.key.id,
        Whitelist::parse(&["127.0.0.0/8", "::1"], 100)
            .unwrap()
            .entries()
            .to_vec(),
    )
    .unwrap();
    note(
        Channel::Ftp,
        &f.key.identifier,
        f.secret.as_ref().unwrap().expose_secret(),
        "current",
    );
    let a = svc
        .authenticate(
            Channel::Rest,
            &c.key.identifier,
            chosen,
            "127.0.0.1".parse().unwrap(),
        )
        .unwrap();
    svc.issue_token(&a).unwrap();
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let store = Arc::new(apikeys_sqlite::SqliteStore::open(&args[0]).unwrap());
    let lines = fill(store);
    std::fs::write(&args[1], lines.join("\n") + "\n").unwrap();
    if let (Some(url), Some(schema)) = (args.get(2), args.get(3)) {
        let pg = apikeys_postgres::PostgresStore::connect_with(
            url,
            apikeys_postgres::Options::default().schema(schema.clone()),
        )
        .unwrap();
        let lines = fill(Arc::new(pg));
        std::fs::write(format!("{}.postgres", args[1]), lines.join("\n") + "\n").unwrap();
    }
}
