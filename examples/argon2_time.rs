//! Prints the time of one argon2id hash under the production policy, in
//! milliseconds (the median of 31, after a warm-up): the unit of the
//! plaintext import's limit, `cores / this`, in `benches/import.sh`.
//!
//! ```text
//! cargo run --release --example argon2_time
//! ```

use apikeys::HashingPolicy;
use apikeys::Secret;
use apikeys::hashing::{SALT_LEN, SecretOrigin, hash_secret};
use std::time::Instant;

fn main() {
    let policy = HashingPolicy::default();
    let secret = Secret::new("Bench-Secret-0-0");
    let mut times = Vec::new();
    for i in 0..34u8 {
        let salt = [i; SALT_LEN];
        let started = Instant::now();
        if hash_secret(&policy, &secret, SecretOrigin::Chosen, &salt).is_err() {
            eprintln!("argon2 refused the production parameters");
            std::process::exit(1);
        }
        if i >= 3 {
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    println!("{:.3}", times[times.len() / 2]);
}
