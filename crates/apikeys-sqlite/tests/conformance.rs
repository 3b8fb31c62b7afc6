//! The storage contract, on an in-memory database and on a file.
// Tests may unwrap and panic (helpers outside `#[test]` functions too).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

mod in_memory {
    apikeys::store_conformance_tests!(apikeys_sqlite::SqliteStore::open_in_memory().unwrap());
}

mod on_file {
    apikeys::store_conformance_tests!(super::common::temp_store());
}
