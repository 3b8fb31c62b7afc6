//! The storage conformance suite, on PostgreSQL: each test in a schema of its
//! own (skipped, saying so, when no PostgreSQL server answers: see
//! `apikeys_postgres::testing`).

apikeys::store_conformance_tests!(apikeys_postgres::testing::test_store());
