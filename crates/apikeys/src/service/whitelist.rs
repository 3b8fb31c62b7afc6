//! A key's IP whitelist: read, replace, add, remove, explain. The rules of
//! the list itself are in [`crate::whitelist`].

use super::ApiKeys;
use super::keys::Precondition;
use crate::account::Actor;
use crate::audit::AuditKind;
use crate::error::Error;
use crate::id::KeyId;
use crate::key::{ApiKey, KeyRecord};
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
        Ok(self
            .set_whitelist_if(actor, id, entries, Precondition::Any)?
            .whitelist)
    }

    /// As [`ApiKeys::set_whitelist`], if the key meets `precondition`, else
    /// [`Error::StaleVersion`] and nothing changes. Returns the key, whose
    /// version the next conditional change names.
    pub fn set_whitelist_if(
        &self,
        actor: Actor,
        id: KeyId,
        entries: Vec<IpNet>,
        precondition: impl Into<Precondition>,
    ) -> Result<ApiKey, Error> {
        let wl = Whitelist::new(entries, self.policy.max_whitelist_entries)?;
        let record = self.change_whitelist(actor, id, &precondition.into(), |_| Ok(wl.clone()))?;
        self.view_of(&record)
    }

    /// Adds entries to the whitelist; returns the normalised list.
    pub fn add_to_whitelist(
        &self,
        actor: Actor,
        id: KeyId,
        entries: Vec<IpNet>,
    ) -> Result<Whitelist, Error> {
        Ok(self
            .edit_whitelist(actor, id, &entries, &[], Precondition::Any)?
            .whitelist)
    }

    /// Removes entries from the whitelist (absent ones are ignored); returns
    /// the normalised list.
    pub fn remove_from_whitelist(
        &self,
        actor: Actor,
        id: KeyId,
        entries: Vec<IpNet>,
    ) -> Result<Whitelist, Error> {
        Ok(self
            .edit_whitelist(actor, id, &[], &entries, Precondition::Any)?
            .whitelist)
    }

    /// Adds `add` to the whitelist and then removes `remove` from it (an
    /// absent entry is ignored), in one change, if the key meets
    /// `precondition`; returns the key with its normalised list. An entry
    /// both added and removed ends up removed. The result is held to the
    /// policy's most entries.
    pub fn edit_whitelist(
        &self,
        actor: Actor,
        id: KeyId,
        add: &[IpNet],
        remove: &[IpNet],
        precondition: impl Into<Precondition>,
    ) -> Result<ApiKey, Error> {
        let limit = self.policy.max_whitelist_entries;
        let record = self.change_whitelist(actor, id, &precondition.into(), |wl| {
            // Removals first would let an entry both added and removed
            // survive; the list is checked against the limit once, at the end.
            let added = wl.with_added(add.iter().copied(), usize::MAX)?;
            Ok(Whitelist::new(
                added.without(remove.iter().copied()).entries().to_vec(),
                limit,
            )?)
        })?;
        self.view_of(&record)
    }

    fn change_whitelist(
        &self,
        actor: Actor,
        id: KeyId,
        precondition: &Precondition,
        mut f: impl FnMut(&Whitelist) -> Result<Whitelist, Error>,
    ) -> Result<KeyRecord, Error> {
        self.modify_key(
            actor,
            id,
            AuditKind::WhitelistChanged,
            precondition,
            |current| {
                let mut next = current.clone();
                next.whitelist = f(&current.whitelist)?;
                let detail = format!(
                    "{} entries: {:?}",
                    next.whitelist.entries().len(),
                    next.whitelist
                );
                Ok((next, detail))
            },
        )
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
