//! Fills a SQLite database with keys for load and memory checks, and prints
//! some of their credentials, one JSON object a line.
//!
//! `cargo run --release --example populate -- PATH KEYS [SAMPLES]`

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: populate PATH KEYS [SAMPLES]";
    let path = PathBuf::from(args.next().ok_or(usage)?);
    let keys: usize = args.next().ok_or(usage)?.parse()?;
    let samples: usize = args.next().map_or(Ok(100), |s| s.parse())?;
    let started = Instant::now();
    let kept = apikeys_sqlite::testing::populate(&path, keys, samples, 1)?;
    eprintln!("{keys} keys in {:.1} s", started.elapsed().as_secs_f64());
    for s in kept {
        // Identifiers are UUIDs and secrets letters and digits: no escaping.
        println!(
            "{{\"channel\":\"{}\",\"identifier\":\"{}\",\"secret\":\"{}\"}}",
            s.channel,
            s.identifier,
            s.secret.expose_secret()
        );
    }
    Ok(())
}
