//! The storage conformance suite, on PostgreSQL: each test in a schema of its
//! own (skipped, saying so, when `APIKEYS_TEST_POSTGRES_URL` is unset).

apikeys::store_conformance_tests!(apikeys_postgres::testing::test_store());
