//! `MemoryStore` passes the conformance suite, as itself and behind an `Arc`
//! (the forwarding impl every embedder sharing a store relies on).

mod direct {
    apikeys::store_conformance_tests!(apikeys::MemoryStore::new());
}

mod behind_arc {
    apikeys::store_conformance_tests!(std::sync::Arc::new(apikeys::MemoryStore::new()));
}

/// `None` is how a backend without its server skips the suite: the macro's
/// wrapper gets no store and returns before running anything.
#[test]
fn an_absent_store_is_skipped_and_a_present_one_is_not() {
    use apikeys::testing::TestStore;
    assert!(None::<apikeys::MemoryStore>.into_test_store().is_none());
    assert!(
        Some(apikeys::MemoryStore::new())
            .into_test_store()
            .is_some()
    );
    assert!(apikeys::MemoryStore::new().into_test_store().is_some());
}
