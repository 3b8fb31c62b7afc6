//! `MemoryStore` passes the conformance suite, as itself and behind an `Arc`
//! (the forwarding impl every embedder sharing a store relies on).

mod direct {
    apikeys::store_conformance_tests!(apikeys::MemoryStore::new());
}

mod behind_arc {
    apikeys::store_conformance_tests!(std::sync::Arc::new(apikeys::MemoryStore::new()));
}

mod skipped {
    // `None` skips every test: what a backend without its server does.
    apikeys::store_conformance_tests!(None::<apikeys::MemoryStore>);
}
