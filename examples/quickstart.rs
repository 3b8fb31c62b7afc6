//! A tour of the API Keys page on the in-memory store: what a person would
//! see, step by step.
//!
//! Run it with `cargo run --example quickstart`.

use apikeys::NewAccount;
use apikeys::{
    Actor, ApiKey, ApiKeys, Channel, CredentialChange, MemoryStore, NewKey, Policy, Secret,
};
use std::error::Error;
use std::net::IpAddr;
use std::sync::Arc;
use time::macros::datetime;

fn main() -> Result<(), Box<dyn Error>> {
    let keys = ApiKeys::production(Arc::new(MemoryStore::new()), Policy::default())?;
    let operator = Actor::Operator;

    step("A master account from 2021, before the 2023-06-06 cutover");
    let legacy = keys.open_account(
        operator,
        NewAccount::master().created_at(datetime!(2021-03-15 10:00 UTC)),
    )?;
    println!("account {}", legacy.account.id);
    show_channels(&keys, legacy.account.id)?;
    for issued in &legacy.issued {
        println!(
            "  issued {:<11} identifier {}  secret {}  (shown once)",
            issued.key.channel.label(),
            issued.key.identifier,
            issued.secret.as_ref().map_or("-", |s| s.expose_secret())
        );
    }

    step("A master account opened in 2025, after the cutover, and a sub-account of it");
    let master = keys.open_account(
        operator,
        NewAccount::master().created_at(datetime!(2025-02-01 9:00 UTC)),
    )?;
    let sub = keys.open_account(
        Actor::Account(master.account.id),
        NewAccount::sub(master.account.id).created_at(datetime!(2025-02-02 9:00 UTC)),
    )?;
    println!("master {}", master.account.id);
    show_channels(&keys, master.account.id)?;
    println!("sub-account {}", sub.account.id);
    show_channels(&keys, sub.account.id)?;

    step("The master creates a REST key with generated credentials");
    let me = Actor::Account(master.account.id);
    let mut new = NewKey::generated(Channel::Rest);
    new.label = Some("Billing server".into());
    let rest = keys.create_key(me, master.account.id, new)?;
    let rest_secret = rest
        .secret
        .clone()
        .ok_or("a generated secret is returned")?;
    show_key(&rest.key);
    println!(
        "  secret     {}  <- copy it now: it is never shown again",
        rest_secret.expose_secret()
    );

    step("A second REST key (REST allows several)");
    let mut second = NewKey::generated(Channel::Rest);
    second.label = Some("Reporting job".into());
    show_key(&keys.create_key(me, master.account.id, second)?.key);

    step("An FTP key with chosen credentials, for the sub-account");
    let ftp = keys.create_key(
        me,
        sub.account.id,
        NewKey::chosen(
            Channel::Ftp,
            "acme-uploads",
            Secret::new("Tr0ub4dor&3-horse"),
        ),
    )?;
    show_key(&ftp.key);
    println!("  secret     (chosen by you; stored only as an argon2id hash)");
    println!(
        "a second FTP key is refused: {}",
        refused(keys.create_key(me, sub.account.id, NewKey::generated(Channel::Ftp)))?
    );
    show_channels(&keys, sub.account.id)?;

    step("Authentication");
    let office: IpAddr = "203.0.113.10".parse()?;
    let who = keys.authenticate(
        Channel::Rest,
        &rest.key.identifier,
        rest_secret.expose_secret(),
        office,
    )?;
    println!(
        "REST key from {office}: account {}, key {}",
        who.account_id, who.key_id
    );
    let who = keys.authenticate(Channel::Ftp, "ACME-Uploads", "Tr0ub4dor&3-horse", office)?;
    println!(
        "FTP login as ACME-Uploads: account {} (the sub-account)",
        who.account_id
    );
    let err =
        refused(keys.authenticate(Channel::Http, "acme-uploads", "Tr0ub4dor&3-horse", office))?;
    println!(
        "the FTP credentials on HTTP: {err} (reason for our logs: {:?})",
        err.reason()
    );

    step("Changing the REST key's secret");
    let changed =
        keys.change_credentials(me, rest.key.id, CredentialChange::regenerate_secret())?;
    let new_secret = changed.secret.ok_or("a generated secret is returned")?;
    println!("new secret {}  (shown once)", new_secret.expose_secret());
    let err = refused(keys.authenticate(
        Channel::Rest,
        &rest.key.identifier,
        rest_secret.expose_secret(),
        office,
    ))?;
    println!("the old secret: {err}");
    keys.authenticate(
        Channel::Rest,
        &rest.key.identifier,
        new_secret.expose_secret(),
        office,
    )?;
    println!("the new secret: accepted");

    step("Restricting the REST key to the office network");
    let whitelist = keys.set_whitelist(
        me,
        rest.key.id,
        vec!["203.0.113.77/24".parse()?, "2001:db8:abcd::/48".parse()?],
    )?;
    println!("whitelist   {:?}  (normalised)", whitelist);
    let cafe: IpAddr = "198.51.100.23".parse()?;
    let err = refused(keys.authenticate(
        Channel::Rest,
        &rest.key.identifier,
        new_secret.expose_secret(),
        cafe,
    ))?;
    println!("right credentials from {cafe}: {err}");
    keys.authenticate(
        Channel::Rest,
        &rest.key.identifier,
        new_secret.expose_secret(),
        office,
    )?;
    println!("right credentials from {office}: accepted");

    step("The master's audit trail, newest first");
    for event in keys.audit(me, master.account.id, 20)? {
        println!(
            "  {}  {:<20} {:<5} {}",
            event.at.date(),
            event.kind,
            event.channel.map_or("", |c| c.code()),
            event.detail
        );
    }
    Ok(())
}

/// The error of an operation the tour expects to be refused.
fn refused<T, E>(result: Result<T, E>) -> Result<E, Box<dyn Error>> {
    match result {
        Ok(_) => Err("expected a refusal".into()),
        Err(e) => Ok(e),
    }
}

fn step(title: &str) {
    println!("\n== {title}");
}

fn show_channels(keys: &ApiKeys, account: apikeys::AccountId) -> Result<(), apikeys::Error> {
    let active = keys.active_channels(Actor::Operator, account)?;
    for channel in Channel::ALL {
        let mark = if active.contains(channel) {
            "active"
        } else {
            "-"
        };
        println!("  {:<11} {mark}", channel.label());
    }
    Ok(())
}

fn show_key(key: &ApiKey) {
    println!("  channel    {}", key.channel.label());
    println!("  identifier {}", key.identifier);
    if let Some(label) = &key.label {
        println!("  label      {label}");
    }
}
