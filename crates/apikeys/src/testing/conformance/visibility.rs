//! Visibility: once a write returns `Ok`, every read that starts after it,
//! on any thread, sees it; no cache or stale snapshot answers with an
//! older state.

use super::support::*;
use crate::account::Account;
use crate::audit::AuditKind;
use crate::channel::Channel;
use crate::key::KeyRecord;
use crate::store::DynStore;
use crate::testing::records::{event, hash, key as record, master, opened};
use crate::whitelist::Whitelist;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// What every thread sees of `watch`: the writing thread, a thread that
/// has been reading all along (and so holds whatever a store keeps per
/// thread or per connection), and a thread started now.
#[track_caller]
fn views(store: &DynStore, watch: &Watch, reader: &Reader<'_>) -> [Snapshot; 3] {
    let here = Snapshot::take(store, watch);
    let old = reader.snapshot(watch);
    let new = std::thread::scope(|s| {
        s.spawn(|| Snapshot::take(store, watch))
            .join()
            .expect("a fresh reading thread can read")
    });
    [here, old, new]
}

/// A thread that reads on demand, and keeps reading in between.
struct Reader<'s> {
    ask: mpsc::Sender<Option<Watch>>,
    answer: mpsc::Receiver<Snapshot>,
    _store: std::marker::PhantomData<&'s DynStore>,
}

impl Reader<'_> {
    #[track_caller]
    fn snapshot(&self, watch: &Watch) -> Snapshot {
        self.ask
            .send(Some(watch.clone()))
            .expect("the reading thread runs");
        self.answer
            .recv()
            .expect("the reading thread answers (it failed to read?)")
    }
}

/// Runs `f` with a [`Reader`] on `store`.
fn with_reader<T>(store: &DynStore, f: impl FnOnce(&Reader<'_>) -> T) -> T {
    std::thread::scope(|s| {
        let (ask, asked) = mpsc::channel::<Option<Watch>>();
        let (tell, answer) = mpsc::channel();
        s.spawn(move || {
            while let Ok(Some(watch)) = asked.recv() {
                if tell.send(Snapshot::take(store, &watch)).is_err() {
                    break;
                }
            }
        });
        let reader = Reader {
            ask,
            answer,
            _store: std::marker::PhantomData,
        };
        let out = f(&reader);
        let _ = reader.ask.send(None);
        out
    })
}

/// `check` holds for what every thread sees, and all see the same.
#[track_caller]
fn seen_by_all(
    store: &DynStore,
    watch: &Watch,
    reader: &Reader<'_>,
    after: &str,
    check: impl Fn(&Snapshot) -> Result<(), String>,
) {
    let [here, old, new] = views(store, watch, reader);
    for (who, view) in [
        ("the writing thread", &here),
        ("a thread that was reading before the write", &old),
        ("a thread started after the write", &new),
    ] {
        if let Err(what) = check(view) {
            fail(
                &format!(
                    "once a write returns Ok, every read that starts after it sees it ({after}, read by {who})"
                ),
                view,
                Shown(what),
            );
        }
    }
    same(
        &old,
        &here,
        &format!("every thread sees the same state after {after}"),
    );
    same(
        &new,
        &here,
        &format!("every thread sees the same state after {after}"),
    );
}

/// After each kind of write returns `Ok` (an account opened with keys, a
/// key inserted, renamed and re-keyed, its hash upgraded, deleted), a read
/// on any thread, including one that was reading before, sees it at once.
pub fn writes_are_visible_to_other_threads_at_once(store: Arc<DynStore>) {
    let mut ids = Ids::new(71);
    let a = master(ids.account());
    let initial = record(ids.key(), a.id, Channel::Ftp, "seen-initial");
    let k = record(ids.key(), a.id, Channel::Rest, "seen-before");
    let mut renamed = next(&k, "renamed");
    renamed.identifier = "seen-after".into();
    renamed.whitelist = Whitelist::parse(&["10.0.0.0/8"], 10).expect("an entry");
    let mut watch = Watch::default();
    watch.account(&a).key(&initial).key(&k).key(&renamed);
    let store: &DynStore = &store;
    with_reader(store, |reader| {
        // Warm every view: whatever they cache, they cache the empty store.
        let _ = views(store, &watch, reader);

        ok(
            store.create_account(&a, std::slice::from_ref(&initial), &[opened(&a)]),
            "an account is stored",
        );
        seen_by_all(store, &watch, reader, "create_account", |v| {
            let want_acc: Option<Account> = Some(a.clone());
            expect(v.account(a.id) == Some(&want_acc), "the new account")?;
            expect(
                v.key(initial.id) == Some(&Some(initial.clone())),
                "its initial key",
            )?;
            expect(
                v.trail(a.id).is_some_and(|t| t.len() == 1),
                "its opening event",
            )
        });

        put(store, &k, 10);
        seen_by_all(store, &watch, reader, "insert_key", |v| {
            expect(v.key(k.id) == Some(&Some(k.clone())), "the new key by id")?;
            expect(
                v.by_identifier("seen-before") == Some(&Some(k.clone())),
                "the new key by identifier",
            )?;
            expect(
                v.listing(a.id).is_some_and(|l| l.contains(&k)),
                "the new key listed",
            )?;
            expect(v.trail(a.id).is_some_and(|t| t.len() == 2), "its event")
        });

        update(store, &renamed, "renamed");
        seen_by_all(store, &watch, reader, "update_key", |v| {
            expect(
                v.by_identifier("seen-before") == Some(&None),
                "nothing under the old identifier",
            )?;
            expect(
                v.by_identifier("seen-after") == Some(&Some(renamed.clone())),
                "the changed key (new version, hash, whitelist) under the new identifier",
            )?;
            expect(
                v.key(k.id) == Some(&Some(renamed.clone())),
                "the changed key by id",
            )?;
            expect(v.trail(a.id).is_some_and(|t| t.len() == 3), "its event")
        });

        let upgraded = hash("upgraded");
        same(
            ok(
                store.upgrade_secret_hash(k.id, &renamed.secret_hash, &upgraded),
                "upgrade succeeds",
            ),
            true,
            "an upgrade from the current hash answers true",
        );
        let after_upgrade = KeyRecord {
            secret_hash: upgraded,
            ..renamed.clone()
        };
        seen_by_all(store, &watch, reader, "upgrade_secret_hash", |v| {
            expect(
                v.by_identifier("seen-after") == Some(&Some(after_upgrade.clone())),
                "the upgraded hash",
            )
        });

        ok(
            store.delete_key(
                k.id,
                None,
                &event(a.id, Some(&k), AuditKind::KeyDeleted, "deleted"),
            ),
            "a stored key can be deleted",
        );
        seen_by_all(store, &watch, reader, "delete_key", |v| {
            expect(v.key(k.id) == Some(&None), "no key by id")?;
            expect(
                v.by_identifier("seen-after") == Some(&None),
                "no key by identifier",
            )?;
            expect(
                v.listing(a.id)
                    .is_some_and(|l| !l.iter().any(|x| x.id == k.id)),
                "the key no longer listed",
            )?;
            expect(v.trail(a.id).is_some_and(|t| t.len() == 4), "its event")
        });
    });
}

/// Sets its flag when dropped: on return and on a panic alike.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn expect(condition: bool, what: &str) -> Result<(), String> {
    if condition {
        Ok(())
    } else {
        Err(what.to_string())
    }
}

impl Snapshot {
    fn account(&self, id: crate::AccountId) -> Option<&Option<Account>> {
        self.accounts.iter().find(|(a, _)| *a == id).map(|(_, v)| v)
    }
    fn key(&self, id: crate::KeyId) -> Option<&Option<KeyRecord>> {
        self.keys.iter().find(|(k, _)| *k == id).map(|(_, v)| v)
    }
    fn by_identifier(&self, identifier: &str) -> Option<&Option<KeyRecord>> {
        self.identifiers
            .iter()
            .find(|(i, _)| i == identifier)
            .map(|(_, v)| v)
    }
    fn listing(&self, id: crate::AccountId) -> Option<&Vec<KeyRecord>> {
        self.listings.iter().find(|(a, _)| *a == id).map(|(_, v)| v)
    }
    fn trail(&self, id: crate::AccountId) -> Option<&Vec<crate::AuditEvent>> {
        self.trails.iter().find(|(a, _)| *a == id).map(|(_, v)| v)
    }
}

/// While other threads keep looking a key up, every change (a new secret,
/// a whitelist change, a rename, an upgrade of the hash) is what each of
/// them reads from the first lookup that starts after the change returned:
/// the version and hash the service's verified-secret cache is keyed by,
/// the whitelist it enforces, the identifier it finds the key by.
pub fn lookups_see_each_change_from_the_next_read(store: Arc<DynStore>) {
    let mut ids = Ids::new(72);
    let a = add_master(&*store, &mut ids);
    let first = add_key(&*store, &mut ids, a.id, Channel::Rest, "polled-0");
    let rounds = 40;
    // The record every lookup starting now must see, and a counter of the
    // changes made so far.
    let latest = Mutex::new(first.clone());
    let changes = AtomicUsize::new(0);
    let done = AtomicBool::new(false);
    let stale: Mutex<Option<(String, Option<KeyRecord>, KeyRecord)>> = Mutex::new(None);
    let store: &DynStore = &store;
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !done.load(Ordering::SeqCst) {
                    // What was committed before this lookup started.
                    let before = changes.load(Ordering::SeqCst);
                    let expected = latest
                        .lock()
                        .map(|l| l.clone())
                        .unwrap_or_else(|e| e.into_inner().clone());
                    let got = store.key_by_identifier(&expected.identifier);
                    let after = changes.load(Ordering::SeqCst);
                    // Only judge a lookup no change overlapped.
                    if before != after {
                        continue;
                    }
                    let got = got.ok().flatten();
                    if got.as_ref() != Some(&expected) {
                        let mut slot = stale.lock().unwrap_or_else(|e| e.into_inner());
                        slot.get_or_insert((expected.identifier.clone(), got, expected));
                        break;
                    }
                }
            });
        }
        // The lookups stop when the writer does, even if it fails.
        let _stop = StopOnDrop(&done);
        let mut current = first.clone();
        for round in 0..rounds {
            // Make the change under the lock, so that no lookup reads the
            // expectation while the write is half done.
            let mut latest = latest.lock().unwrap_or_else(|e| e.into_inner());
            changes.fetch_add(1, Ordering::SeqCst);
            let changed = match round % 4 {
                0 => {
                    let v = next(&current, &format!("secret {round}"));
                    update(store, &v, "new secret");
                    v
                }
                1 => {
                    let mut v = next(&current, "same");
                    v.secret_hash = current.secret_hash.clone();
                    v.whitelist =
                        Whitelist::parse(&[format!("10.{round}.0.0/16")], 10).expect("an entry");
                    update(store, &v, "whitelist");
                    v
                }
                2 => {
                    let mut v = next(&current, "same");
                    v.secret_hash = current.secret_hash.clone();
                    v.identifier = format!("polled-{round}");
                    update(store, &v, "renamed");
                    v
                }
                _ => {
                    let upgraded = hash(&format!("upgraded {round}"));
                    same(
                        ok(
                            store.upgrade_secret_hash(current.id, &current.secret_hash, &upgraded),
                            "upgrade succeeds",
                        ),
                        true,
                        "an upgrade from the current hash answers true",
                    );
                    KeyRecord {
                        secret_hash: upgraded,
                        ..current.clone()
                    }
                }
            };
            *latest = changed.clone();
            changes.fetch_add(1, Ordering::SeqCst);
            drop(latest);
            current = changed;
            // Let the lookups run against this state a little.
            for _ in 0..3 {
                let seen = ok(
                    store.key_by_identifier(&current.identifier),
                    "lookup succeeds",
                );
                same(
                    seen.as_ref(),
                    Some(&current),
                    "the writing thread reads its own write",
                );
                std::thread::yield_now();
            }
        }
    });
    let stale = stale.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some((identifier, got, expected)) = stale {
        fail(
            &format!(
                "a lookup that starts after a change returned sees it: version, hash, whitelist, identifier (looking up {identifier:?} from another thread)"
            ),
            got,
            Some(expected),
        );
    }
}
