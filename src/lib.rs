//! Helpers shared by the workspace's examples and benchmarks: the production
//! clock and generator, which the domain crate never reaches for itself.
//!
//! The workspace README follows; its examples are compiled as tests here.
#![doc = include_str!("../README.md")]

use std::sync::Arc;

/// The system clock, as the domain's [`apikeys::Clock`].
pub fn system_clock() -> Arc<dyn apikeys::Clock> {
    // The one place outside adapters where the wall clock is read, on purpose.
    #[allow(clippy::disallowed_methods)]
    Arc::new(time::OffsetDateTime::now_utc)
}

/// The operating system's CSPRNG, as the domain's generator.
pub fn os_rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}
