//! `apikeys-server import FILE`: a platform's accounts and credentials,
//! streamed into the store.
//!
//! How it runs:
//! 1. A first pass reads every line's external id, kind and master (a few
//!    bytes kept per line: a 128-bit hash and the line number), so that a
//!    repeated external id and a sub-account whose master is in no line are
//!    told apart, and sub-accounts may come before their masters.
//! 2. Then the masters, then the sub-accounts, each in one stream: a reader
//!    hands out units of lines, workers (one per core) parse, check, skip
//!    what is stored already and hash plaintext secrets (argon2), and the
//!    writer commits batches, each account all or nothing.
//!
//! Memory holds the first pass's table, the lines in flight and one batch,
//! whatever the file's size. A killed import leaves whole accounts only; a
//! rerun skips them by external id, so every line goes in exactly once.

use super::format::{self, Head};
use super::private_file;
use apikeys::service::{ImportOptions, ImportOutcome, PreparedAccount};
use apikeys::{Actor, ApiKeys};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::error::Error;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Lines a worker takes at a time.
const UNIT: usize = 32;

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Progress {
    /// A bar on a terminal, lines otherwise.
    Auto,
    /// A bar (with rate and ETA).
    Bar,
    /// A line every few seconds.
    Lines,
    /// Nothing but the summary.
    None,
}

/// What to import, and how.
pub(crate) struct Import {
    pub(crate) file: PathBuf,
    pub(crate) rejects: Option<PathBuf>,
    pub(crate) legacy_defaults: Option<PathBuf>,
    pub(crate) batch: usize,
    pub(crate) threads: usize,
    /// Batches written at once: 1 on SQLite (one writer anyway), more on
    /// PostgreSQL, whose server then inserts on several cores.
    pub(crate) writers: usize,
    pub(crate) progress: Progress,
}

/// What an import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    pub(crate) lines: u64,
    pub(crate) imported: u64,
    pub(crate) keys: u64,
    pub(crate) skipped: u64,
    pub(crate) refused: u64,
    pub(crate) issued: u64,
}

/// What the first pass knows of an external id.
#[derive(Clone, Copy)]
struct Seen {
    /// The first line carrying it.
    line: u64,
    /// Whether that line is a sub-account (else a master, or unreadable).
    sub: bool,
}

/// A 128-bit hash of an external id: two fixed-key SipHashes.
fn id_hash(text: &str) -> u128 {
    let half = |seed: u64| {
        let mut h =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
                .build_hasher();
        h.write_u64(seed);
        h.write(text.as_bytes());
        h.finish()
    };
    (u128::from(half(0x6170_6b73)) << 64) | u128::from(half(0x696d_706f))
}

/// The first pass: every line's external id, and how many lines.
fn scan(file: &Path) -> Result<(HashMap<u128, Seen>, u64), Box<dyn Error>> {
    let mut seen: HashMap<u128, Seen> = HashMap::new();
    let mut lines = 0;
    let reader = BufReader::with_capacity(1 << 20, open_input(file)?);
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        lines += 1;
        if let Ok(head) = serde_json::from_str::<Head>(&line) {
            let number = i as u64 + 1;
            seen.entry(id_hash(&head.external_id)).or_insert(Seen {
                line: number,
                sub: format::is_sub(&head.kind, head.parent_external_id.as_deref()),
            });
        }
    }
    Ok((seen, lines))
}

fn open_input(file: &Path) -> Result<File, Box<dyn Error>> {
    File::open(file).map_err(|e| format!("cannot open {}: {e}", file.display()).into())
}

/// Which accounts a stream takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Masters, and every line that is no account at all (reported once).
    Masters,
    Subs,
}

/// One line's fate, as a worker found it.
enum Worked {
    /// Not this stream's.
    Elsewhere,
    Refused {
        line: u64,
        text: String,
        reason: String,
    },
    Skipped,
    Prepared {
        line: u64,
        text: String,
        account: Box<PreparedAccount>,
    },
}

struct Shared {
    keys: Arc<ApiKeys>,
    seen: HashMap<u128, Seen>,
    options: ImportOptions,
}

impl Shared {
    fn work(&self, phase: Phase, line: u64, text: String) -> Worked {
        let refuse = |text: String, reason: String| Worked::Refused { line, text, reason };
        let parsed = match format::parse_line(&text) {
            Ok(p) => p,
            Err(reason) if phase == Phase::Masters => return refuse(text, reason),
            Err(_) => return Worked::Elsewhere,
        };
        let is_sub = format::is_sub(&parsed.kind, parsed.parent_external_id.as_deref());
        if is_sub != (phase == Phase::Subs) {
            return Worked::Elsewhere;
        }
        if let Some(first) = self.seen.get(&id_hash(&parsed.external_id))
            && first.line != line
        {
            let reason = format!(
                "external_id `{}` is repeated: line {} has it first",
                parsed.external_id.chars().take(64).collect::<String>(),
                first.line
            );
            return refuse(text, reason);
        }
        let account = match format::to_import(parsed) {
            Ok(a) => a,
            Err(reason) => return refuse(text, reason),
        };
        match self
            .keys
            .account_by_external_id(Actor::Operator, &account.external_id)
        {
            Ok(_) => return Worked::Skipped,
            Err(apikeys::Error::ExternalIdNotFound(_)) => {}
            Err(e) => return refuse(text, format!("cannot look the account up: {e}")),
        }
        if let apikeys::service::ImportKind::Sub { parent } = &account.kind
            && let Some(reason) = self.why_no_master(parent)
        {
            return refuse(text, reason);
        }
        match self.keys.prepare_import(account, self.options) {
            Ok(p) => Worked::Prepared {
                line,
                text,
                account: Box::new(p),
            },
            Err(e) => refuse(text, e.to_string()),
        }
    }

    /// Why a sub-account's master cannot be found, if it cannot: in no
    /// line and not stored, or a sub-account's line.
    fn why_no_master(&self, parent: &apikeys::ExternalId) -> Option<String> {
        match self.seen.get(&id_hash(parent.as_str())) {
            Some(s) if s.sub => Some(format!(
                "master `{parent}` is a sub-account (line {}): a sub-account's master must be a master",
                s.line
            )),
            // Its line was imported, skipped or refused in the masters'
            // stream: the commit tells which.
            Some(_) => None,
            None => match self.keys.account_by_external_id(Actor::Operator, parent) {
                Ok(_) => None,
                Err(_) => Some(format!(
                    "master `{parent}` is in no line of the file and was not imported before"
                )),
            },
        }
    }
}

/// Where refused lines go: stderr (line and reason) and the rejects file
/// (the line as it was, so that it can be fixed and imported again).
struct Rejects {
    path: PathBuf,
    file: Option<File>,
}

impl Rejects {
    fn write(&mut self, text: &str) -> Result<(), Box<dyn Error>> {
        if self.file.is_none() {
            self.file = Some(private_file(&self.path, true)?);
        }
        if let Some(f) = &mut self.file {
            writeln!(f, "{text}")?;
        }
        Ok(())
    }
}

/// Shows progress: a bar, or a line every few seconds.
struct Shown {
    bar: Option<ProgressBar>,
    lines: bool,
    total: u64,
    done: u64,
    keys: u64,
    started: Instant,
    last: Instant,
}

impl Shown {
    fn new(progress: Progress, total: u64) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bar = matches!(progress, Progress::Bar) || (progress == Progress::Auto && terminal);
        let bar = bar.then(|| {
            let b = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} lines ({per_sec}, ETA {eta}) {msg}",
            ) {
                b.set_style(style);
            }
            b
        });
        let lines = progress == Progress::Lines || (progress == Progress::Auto && !terminal);
        Shown {
            bar,
            lines,
            total,
            done: 0,
            keys: 0,
            started: Instant::now(),
            last: Instant::now(),
        }
    }

    fn advance(&mut self, lines: u64, keys: u64) {
        self.done += lines;
        self.keys += keys;
        if let Some(b) = &self.bar {
            b.set_position(self.done);
            b.set_message(format!("{} keys", self.keys));
        }
        if self.lines && self.last.elapsed() >= Duration::from_secs(5) {
            self.last = Instant::now();
            let elapsed = self.started.elapsed().as_secs_f64();
            let rate = self.done as f64 / elapsed.max(1e-3);
            let left = self.total.saturating_sub(self.done) as f64 / rate.max(1e-9);
            eprintln!(
                "import: {}/{} lines ({:.0}%), {} keys, {:.0} lines/s, {:.0} keys/s, ETA {:.0} s",
                self.done,
                self.total,
                100.0 * self.done as f64 / (self.total.max(1)) as f64,
                self.keys,
                rate,
                self.keys as f64 / elapsed.max(1e-3),
                left
            );
        }
    }

    fn say(&self, message: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{message}")),
            None => eprintln!("{message}"),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Where issued legacy default keys' secrets go (owner-only file).
struct Issued {
    file: File,
}

/// Runs the import.
pub(crate) fn run(keys: Arc<ApiKeys>, import: &Import) -> Result<Summary, Box<dyn Error>> {
    let (seen, total) = scan(&import.file)?;
    let rejects_path = import.rejects.clone().unwrap_or_else(|| {
        let mut p = import.file.clone().into_os_string();
        p.push(".rejects");
        PathBuf::from(p)
    });
    let mut rejects = Rejects {
        path: rejects_path,
        file: None,
    };
    let mut issued = match &import.legacy_defaults {
        Some(path) => Some(Issued {
            file: private_file(path, false)?,
        }),
        None => None,
    };
    let shared = Arc::new(Shared {
        keys: keys.clone(),
        seen,
        options: ImportOptions {
            issue_legacy_defaults: import.legacy_defaults.is_some(),
        },
    });
    let mut shown = Shown::new(import.progress, total);
    let mut summary = Summary {
        lines: total,
        ..Summary::default()
    };
    for phase in [Phase::Masters, Phase::Subs] {
        stream(
            &shared,
            import,
            phase,
            &mut summary,
            &mut rejects,
            &mut issued,
            &mut shown,
        )?;
    }
    shown.finish();
    if summary.refused > 0 {
        eprintln!(
            "import: {} refused lines written to {}: fix them and import that file",
            summary.refused,
            rejects.path.display()
        );
    }
    Ok(summary)
}

/// Lines handed out together, numbered in the file's order.
type Unit = (u64, Vec<(u64, String)>);

/// One stream over the file: reader, workers, and this thread as writer.
#[allow(clippy::too_many_arguments)]
fn stream(
    shared: &Arc<Shared>,
    import: &Import,
    phase: Phase,
    summary: &mut Summary,
    rejects: &mut Rejects,
    issued: &mut Option<Issued>,
    shown: &mut Shown,
) -> Result<(), Box<dyn Error>> {
    let threads = import.threads.max(1);
    let (unit_tx, unit_rx) = sync_channel::<Unit>(threads * 2);
    let unit_rx = Arc::new(Mutex::new(unit_rx));
    let (done_tx, done_rx) = sync_channel::<(u64, Vec<Worked>)>(threads * 4);
    let file = open_input(&import.file)?;
    let path = import.file.clone();
    let reader = std::thread::spawn(move || read_units(file, &path, &unit_tx));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (rx, tx, shared) = (unit_rx.clone(), done_tx.clone(), shared.clone());
            std::thread::spawn(move || work_units(&rx, &tx, &shared, phase))
        })
        .collect();
    drop(done_tx);
    // The writer commits one batch while the next one is prepared: at most
    // one batch waits for it, one is being written.
    let (batch_tx, batch_rx) = sync_channel::<Batch>(1);
    let batch_rx = Arc::new(Mutex::new(batch_rx));
    let (written_tx, written_rx) = std::sync::mpsc::channel::<Result<Written, String>>();
    let writers: Vec<_> = (0..import.writers.max(1))
        .map(|_| {
            let (keys, rx, tx) = (shared.keys.clone(), batch_rx.clone(), written_tx.clone());
            std::thread::spawn(move || {
                loop {
                    let batch = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    let Ok(batch) = batch else { return };
                    let written = write_batch(&keys, batch);
                    let stop = written.is_err();
                    if tx.send(written).is_err() || stop {
                        return;
                    }
                }
            })
        })
        .collect();
    drop(written_tx);
    let mut batch: Batch = Vec::new();
    let mut failed: Option<Box<dyn Error>> = None;
    // Units come back in any order and are taken in the file's, so that the
    // earlier of two lines claiming one identifier wins, run after run.
    let mut waiting: std::collections::BTreeMap<u64, Vec<Worked>> = Default::default();
    let mut next = 0;
    for (seq, worked) in done_rx.iter() {
        if failed.is_some() {
            continue; // Drain, so that the workers finish.
        }
        waiting.insert(seq, worked);
        while let Some(worked) = waiting.remove(&next) {
            next += 1;
            for w in worked {
                match w {
                    Worked::Elsewhere => {}
                    Worked::Skipped => {
                        summary.skipped += 1;
                        shown.advance(1, 0);
                    }
                    Worked::Refused { line, text, reason } => {
                        if let Err(e) = refuse(summary, rejects, shown, line, &text, &reason) {
                            failed = Some(e);
                        }
                    }
                    Worked::Prepared {
                        line,
                        text,
                        account,
                    } => {
                        batch.push((line, text, *account));
                    }
                }
            }
            if failed.is_none() && batch.len() >= import.batch {
                let full = std::mem::take(&mut batch);
                if batch_tx.send(full).is_err() {
                    failed = Some("the writer stopped".into());
                }
            }
            while let Ok(written) = written_rx.try_recv() {
                if let Err(e) = written
                    .map_err(Into::into)
                    .and_then(|w| report(w, summary, rejects, issued, shown))
                {
                    failed.get_or_insert(e);
                }
            }
        }
    }
    let read = reader.join().map_err(|_| "the reader thread panicked")?;
    for w in workers {
        w.join().map_err(|_| "a worker thread panicked")?;
    }
    if failed.is_none() && !batch.is_empty() {
        let _ = batch_tx.send(batch);
    }
    drop(batch_tx);
    for w in writers {
        w.join().map_err(|_| "a writer thread panicked")?;
    }
    for written in written_rx.try_iter() {
        if let Err(e) = written
            .map_err(Into::into)
            .and_then(|w| report(w, summary, rejects, issued, shown))
        {
            failed.get_or_insert(e);
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    read?;
    Ok(())
}

fn refuse(
    summary: &mut Summary,
    rejects: &mut Rejects,
    shown: &mut Shown,
    line: u64,
    text: &str,
    reason: &str,
) -> Result<(), Box<dyn Error>> {
    summary.refused += 1;
    shown.say(&format!("line {line}: {reason}"));
    shown.advance(1, 0);
    rejects.write(text)
}

fn read_units(file: File, path: &Path, tx: &SyncSender<Unit>) -> Result<(), String> {
    let reader = BufReader::with_capacity(1 << 20, file);
    let mut unit = Vec::with_capacity(UNIT);
    let mut seq = 0;
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        unit.push((i as u64 + 1, line));
        if unit.len() == UNIT {
            if tx.send((seq, std::mem::take(&mut unit))).is_err() {
                return Ok(()); // The writer stopped.
            }
            seq += 1;
            unit.reserve(UNIT);
        }
    }
    if !unit.is_empty() {
        let _ = tx.send((seq, unit));
    }
    Ok(())
}

fn work_units(
    rx: &Mutex<Receiver<Unit>>,
    tx: &SyncSender<(u64, Vec<Worked>)>,
    shared: &Shared,
    phase: Phase,
) {
    loop {
        let unit = match rx.lock() {
            Ok(r) => r.recv(),
            Err(_) => return,
        };
        let Ok((seq, unit)) = unit else { return };
        let worked = unit
            .into_iter()
            .map(|(line, text)| shared.work(phase, line, text))
            .collect();
        if tx.send((seq, worked)).is_err() {
            return;
        }
    }
}

/// Writes a batch and reports each account's outcome.
/// Prepared accounts waiting for the writer, with their lines.
type Batch = Vec<(u64, String, PreparedAccount)>;

/// A written batch: each line with its account's outcome.
type Written = Vec<((u64, String, apikeys::ExternalId), ImportOutcome)>;

/// Writes a batch (on the writer's thread).
fn write_batch(keys: &ApiKeys, batch: Batch) -> Result<Written, String> {
    let mut lines = Vec::with_capacity(batch.len());
    let mut prepared = Vec::with_capacity(batch.len());
    for (line, text, p) in batch {
        lines.push((line, text, p.external_id().clone()));
        prepared.push(p);
    }
    let outcomes = keys
        .commit_imports(prepared)
        .map_err(|e| format!("the store failed; rerun the import to go on: {e}"))?;
    Ok(lines.into_iter().zip(outcomes).collect())
}

/// Reports each account of a written batch.
fn report(
    written: Written,
    summary: &mut Summary,
    rejects: &mut Rejects,
    issued: &mut Option<Issued>,
    shown: &mut Shown,
) -> Result<(), Box<dyn Error>> {
    for ((line, text, external), outcome) in written {
        match outcome {
            ImportOutcome::Imported {
                keys,
                issued: defaults,
                ..
            } => {
                summary.imported += 1;
                summary.keys += keys as u64;
                if let Some(out) = issued {
                    for k in &defaults {
                        let Some(secret) = &k.secret else { continue };
                        let entry = serde_json::json!({
                            "external_id": external.as_str(),
                            "channel": k.key.channel.code(),
                            "identifier": k.key.identifier,
                            "secret": secret.expose_secret(),
                        });
                        writeln!(out.file, "{entry}")?;
                        summary.issued += 1;
                    }
                    if !defaults.is_empty() {
                        out.file.sync_data()?;
                    }
                }
                shown.advance(1, keys as u64);
            }
            ImportOutcome::Skipped { .. } => {
                summary.skipped += 1;
                shown.advance(1, 0);
            }
            ImportOutcome::Refused(e) => {
                refuse(summary, rejects, shown, line, &text, &e.to_string())?;
            }
        }
    }
    Ok(())
}
