//! A key's IP whitelist: read, replace, add, remove, explain. The rules of
//! the list itself are in [`crate::whitelist`].

use super::ApiKeys;
use crate::account::Actor;
use crate::audit::AuditKind;
use crate::error::Error;
use crate::id::KeyId;
use crate::whitelist::{Explanation, Whitelist};
use ipnet::IpNet;
use std::net::IpAddr;

impl ApiKeys {
    /// The key's whitelist.
    pub fn whitelist(&self, actor: Actor, id: KeyId) -> Result<Whitelist, Error> {
        Ok(self.authorized_key(actor, id)?.whitelist)
    }

    /// Replaces the whole whitelist atomically; returns the normalised list.
    pub fn set_whitelist(
        &self,
        actor: Actor,
        id: KeyId,
        entries: Vec<IpNet>,
    ) -> Result<Whitelist, Error> {
        let wl = Whitelist::new(entries, self.policy.max_whitelist_entries)?;
        self.change_whitelist(actor, id, |_| Ok(wl.clone()))
    }

    /// Adds entries to the whitelist; returns the normalised list.
    pub fn add_to_whitelist(
        &self,
        actor: Actor,
        id: KeyId,
        entries: Vec<IpNet>,
    ) -> Result<Whitelist, Error> {
        let limit = self.policy.max_whitelist_entries;
        self.change_whitelist(actor, id, |wl| {
            Ok(wl.with_added(entries.iter().copied(), limit)?)
        })
    }

    /// Removes entries from the whitelist (absent ones are ignored); returns
    /// the normalised list.
    pub fn remove_from_whitelist(
        &self,
        actor: Actor,
        id: KeyId,
        entries: Vec<IpNet>,
    ) -> Result<Whitelist, Error> {
        self.change_whitelist(actor, id, |wl| Ok(wl.without(entries.iter().copied())))
    }

    fn change_whitelist(
        &self,
        actor: Actor,
        id: KeyId,
        mut f: impl FnMut(&Whitelist) -> Result<Whitelist, Error>,
    ) -> Result<Whitelist, Error> {
        let record = self.modify_key(actor, id, AuditKind::WhitelistChanged, |current| {
            let mut next = current.clone();
            next.whitelist = f(&current.whitelist)?;
            let detail = format!(
                "{} entries: {:?}",
                next.whitelist.entries().len(),
                next.whitelist
            );
            Ok((next, detail))
        })?;
        Ok(record.whitelist)
    }

    /// Whether `ip` would pass the key's whitelist, and which entry lets it.
    pub fn explain_address(
        &self,
        actor: Actor,
        id: KeyId,
        ip: IpAddr,
    ) -> Result<Explanation, Error> {
        Ok(self.authorized_key(actor, id)?.whitelist.explain(ip))
    }
}
