#![doc = include_str!("../README.md")]

mod admin_token;
mod transfer;

use admin_token::{
    PostgresAdminTokenStore, ResolvedToken, SqliteAdminTokenStore, resolve_admin_token,
};
use apikeys::{ApiKeys, DynStore, Policy};
use apikeys_http::ui::UiConfig;
use apikeys_http::{
    Config, ForwardedHeader, Lanes, ServeOptions, StoreCalls, TrustedProxies, router, serve,
};
use apikeys_postgres::{Options, PostgresStore};
use apikeys_sqlite::SqliteStore;
use clap::Parser;
use ipnet::IpNet;
use std::convert::Infallible;
use std::error::Error;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The apikeys HTTP API on a SQLite file, or on PostgreSQL.
///
/// The management API needs `Authorization: Bearer <admin token>`. The
/// token comes from APIKEYS_ADMIN_TOKEN (32 to 256 printable ASCII
/// characters); without it, the first start generates one, prints it once
/// and keeps only its SHA-256 digest in the database (the SQLite file, or
/// PostgreSQL with --postgres), and later starts use that. Logs go to stderr
/// (RUST_LOG, default `info`).
#[derive(Debug, Parser)]
#[command(name = "apikeys-server", version)]
struct Args {
    /// Import or export accounts instead of serving (see each one's --help).
    #[command(subcommand)]
    command: Option<Command>,
    /// Address and port to listen on.
    #[arg(long, env = "APIKEYS_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// SQLite database file, created if absent. Ignored with --postgres.
    #[arg(
        long,
        env = "APIKEYS_DB",
        default_value = "apikeys.sqlite3",
        global = true
    )]
    db: PathBuf,
    /// Use PostgreSQL at this URL instead of SQLite (e.g.
    /// postgres://apikeys:PASSWORD@db.internal:5432/platform, or the
    /// key=value form); --db is then ignored. The tables are created or
    /// upgraded at start. The URL (and its password) is never printed. An
    /// empty value counts as unset.
    #[arg(
        long,
        env = "APIKEYS_POSTGRES_URL",
        hide_env_values = true,
        value_name = "URL",
        global = true
    )]
    postgres: Option<DatabaseUrl>,
    /// With --postgres: how many connections the pool opens at most.
    #[arg(
        long,
        env = "APIKEYS_POSTGRES_POOL",
        default_value_t = 16,
        value_name = "N",
        global = true,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    postgres_pool: u32,
    /// With --postgres: keep the tables in this schema, created if needed,
    /// so that several deployments (or test runs) can share one database.
    /// 1 to 63 lowercase ASCII letters, digits and underscores. Default: the
    /// connection's default schema (usually `public`).
    #[arg(
        long,
        env = "APIKEYS_POSTGRES_SCHEMA",
        value_name = "NAME",
        requires = "postgres",
        global = true
    )]
    postgres_schema: Option<String>,
    /// A reverse proxy whose forwarding header is believed: an address or a
    /// network in CIDR notation; repeat the flag for several (the variable
    /// takes them comma-separated). Behind it, the client address is the
    /// right-most forwarding entry that is not a trusted proxy. Without any,
    /// the client address is the TCP peer's and forwarding headers are
    /// ignored.
    #[arg(
        long = "trusted-proxy",
        env = "APIKEYS_TRUSTED_PROXIES",
        value_name = "CIDR",
        value_delimiter = ',',
        value_parser = parse_proxy
    )]
    trusted_proxies: Vec<IpNet>,
    /// Which header the trusted proxies write: x-forwarded-for, or forwarded
    /// (RFC 7239). The other is ignored.
    #[arg(
        long,
        env = "APIKEYS_FORWARDED_HEADER",
        value_name = "HEADER",
        default_value = "x-forwarded-for",
        value_parser = parse_forwarded_header
    )]
    forwarded_header: ForwardedHeader,
    /// The origin the page's one-time links are given under, as customers
    /// reach this server (e.g. https://keys.example.com). Unset: the Host of
    /// the request that asks for the link. An https origin also marks the
    /// session cookie Secure.
    #[arg(long, env = "APIKEYS_PUBLIC_ORIGIN", value_name = "URL", value_parser = parse_origin)]
    public_origin: Option<String>,
    /// The page's CSP frame-ancestors: which sites may frame it ('none':
    /// none; 'self'; or origins such as https://platform.example).
    #[arg(
        long,
        env = "APIKEYS_FRAME_ANCESTORS",
        value_name = "SOURCES",
        default_value = "'none'",
        value_parser = parse_frame_ancestors
    )]
    frame_ancestors: String,
    /// Mark the page's session cookie Secure: the server is reached over
    /// TLS (through a proxy that terminates it).
    #[arg(long, env = "APIKEYS_SECURE_COOKIES")]
    secure_cookies: bool,
    /// How often last use (the instant and address of each key's last
    /// successful authentication) is written to the database, in seconds.
    /// A crash loses at most this much last-use data, and nothing else.
    #[arg(
        long,
        env = "APIKEYS_LAST_USE_INTERVAL",
        value_name = "SECONDS",
        default_value = "60",
        value_parser = parse_interval
    )]
    last_use_interval: std::time::Duration,
    /// The longest lifetime of a new key, in days (default: none). A key
    /// created without an expiry then expires that long after its creation.
    #[arg(long, env = "APIKEYS_MAX_KEY_LIFETIME_DAYS", value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500), global = true)]
    max_key_lifetime_days: Option<u32>,
    /// Disables, at start and then hourly, every legacy default key (the
    /// channels a pre-cutover master got without asking) never used and
    /// issued more than this many days ago (default: never). Each key is
    /// audited; `POST /v1/dormant-keys/disable` with `dry_run` lists them first.
    #[arg(long, env = "APIKEYS_DISABLE_DORMANT_LEGACY_AFTER_DAYS", value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500))]
    disable_dormant_legacy_after_days: Option<u32>,
}

/// What to do instead of serving.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Import accounts and their keys from a JSON Lines file (one account
    /// per line; see examples/import.jsonl), into the SQLite file or
    /// PostgreSQL. Each account goes in whole or not at all; a bad line is
    /// reported (line number and reason) on stderr and copied to the rejects
    /// file, and never stops the run. Safe to stop and rerun: accounts whose
    /// external id is stored are skipped. Exit status: 0 when every line is
    /// in (imported now or before), 1 when some were refused, 2 when the
    /// import could not run.
    Import {
        /// The JSON Lines file.
        file: PathBuf,
        /// Where refused lines are copied, as they were (0600; replaced
        /// on each run). Default: FILE.rejects.
        #[arg(long, value_name = "FILE")]
        rejects: Option<PathBuf>,
        /// Issue legacy masters (created before 2023-06-06) the default keys
        /// of the legacy channels they do not bring, and write their secrets
        /// to this new file, readable by its owner only. Without it they get
        /// none: their old system never issued them.
        #[arg(long, value_name = "FILE")]
        issue_legacy_defaults: Option<PathBuf>,
        /// Accounts written per transaction (default 20000 on SQLite, 5000
        /// on PostgreSQL).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        batch: Option<u32>,
        /// Worker threads parsing and hashing (default: one per core).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
        threads: Option<u32>,
        /// Progress: a bar with rate and ETA on a terminal, else a line every
        /// few seconds (auto); or bar, lines, none.
        #[arg(long, value_enum, default_value = "auto")]
        progress: transfer::import::Progress,
    },
    /// Export every account and its keys' metadata in the import's format,
    /// without secrets (none is kept) and without hashes unless asked.
    Export {
        /// Write here (created 0600) instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Include each key's stored hash, so that the file imports into
        /// another store with every credential working. Keep such a file as
        /// safe as the database itself.
        #[arg(long)]
        with_hashes: bool,
    },
}

/// Seconds, fractions allowed, from 1 ms to a day.
fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(0.001..=86_400.0).contains(&seconds) {
        return Err(format!(
            "{seconds} s is out of range: give 0.001 to 86400 seconds"
        ));
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

impl Args {
    /// The policy the flags ask for.
    fn policy(&self) -> Policy {
        let day = |d: u32| time::Duration::days(i64::from(d));
        let usage = apikeys::UsagePolicy {
            interval: time::Duration::try_from(self.last_use_interval)
                .unwrap_or(time::Duration::seconds(60)),
            ..apikeys::UsagePolicy::default()
        };
        Policy::default()
            .usage(usage)
            .max_key_lifetime(self.max_key_lifetime_days.map(day))
            .disable_dormant_legacy_defaults_after(self.disable_dormant_legacy_after_days.map(day))
    }
}

/// An http(s) origin: scheme and host, no path.
fn parse_origin(text: &str) -> Result<String, String> {
    let text = text.trim().trim_end_matches('/');
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or_else(|| format!("`{text}` is not an http:// or https:// origin"))?;
    if rest.is_empty()
        || !rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]/_".contains(c))
    {
        return Err(format!(
            "`{text}` is not an origin: give the scheme and host, e.g. https://keys.example.com"
        ));
    }
    Ok(text.to_owned())
}

fn parse_frame_ancestors(text: &str) -> Result<String, String> {
    apikeys_http::ui::valid_frame_ancestors(text)
        .map(str::to_owned)
        .ok_or_else(|| {
            format!("`{text}` is not a frame-ancestors value: sources separated by spaces, no `;` or `,`")
        })
}

/// An address or a network, as a trusted proxy.
fn parse_proxy(text: &str) -> Result<IpNet, String> {
    apikeys::whitelist::parse_entry(text.trim()).map_err(|e| e.to_string())
}

fn parse_forwarded_header(text: &str) -> Result<ForwardedHeader, String> {
    match text.to_ascii_lowercase().as_str() {
        "x-forwarded-for" => Ok(ForwardedHeader::XForwardedFor),
        "forwarded" => Ok(ForwardedHeader::Forwarded),
        other => Err(format!(
            "`{other}` is not a forwarding header: use x-forwarded-for or forwarded"
        )),
    }
}

/// A database URL: it may hold a password, so it prints as hidden.
#[derive(Clone)]
struct DatabaseUrl(String);

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DatabaseUrl([hidden])")
    }
}

impl FromStr for DatabaseUrl {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(DatabaseUrl(s.to_owned()))
    }
}

/// Where the keys live, as decided from the flags.
enum Backend {
    Sqlite(PathBuf),
    Postgres {
        url: DatabaseUrl,
        pool: u32,
        schema: Option<String>,
    },
}

impl Args {
    fn backend(&self) -> Backend {
        match self.postgres.as_ref().filter(|u| !u.0.trim().is_empty()) {
            None => Backend::Sqlite(self.db.clone()),
            Some(url) => Backend::Postgres {
                url: url.clone(),
                pool: self.postgres_pool,
                schema: self.postgres_schema.clone().filter(|s| !s.is_empty()),
            },
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let mut args = Args::parse();
    let backend = args.backend();
    // Errors are scrubbed of the URL's password, whatever produced them.
    let url = match &backend {
        Backend::Postgres { url, .. } => Some(url.clone()),
        Backend::Sqlite(_) => None,
    };
    let fail = |e: &(dyn Error + 'static)| fail(e, url.as_ref());
    if let Some(command) = args.command.take() {
        return match transfer_command(command, backend, args.policy()) {
            Ok(code) => code,
            Err(e) => {
                fail(e.as_ref());
                ExitCode::from(2)
            }
        };
    }

    // The port first: if it is taken, nothing is generated or stored, so a
    // first start that fails here loses no admin token.
    let listener = match bind(args.listen) {
        Ok(l) => l,
        Err(e) => return fail(e.as_ref()),
    };
    // Opening the stores blocks, and the PostgreSQL client runs a small
    // runtime of its own, which cannot start inside ours: so this happens
    // before ours starts.
    let opened = match open(backend, args.policy()) {
        Ok(o) => o,
        Err(e) => return fail(e.as_ref()),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let keys = opened.keys.clone();
    // Last use is written behind, by a thread of its own (outside the
    // runtime, like every PostgreSQL call that may block).
    let flusher = match apikeys::UsageFlusher::start(keys.clone()) {
        Ok(f) => f,
        Err(e) => return fail(&e),
    };
    let result = runtime.block_on(run(args, listener, opened));
    // Likewise, PostgreSQL connections cannot close inside our runtime: the
    // service, which owns the pool, is dropped last, after the runtime and
    // every task holding a clone of it. The last uses noted since the last
    // flush are written first.
    drop(runtime);
    flusher.stop();
    tracing::info!("last use flushed");
    drop(keys);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e.as_ref()),
    }
}

/// Runs `import` or `export`.
fn transfer_command(
    command: Command,
    backend: Backend,
    policy: Policy,
) -> Result<ExitCode, Box<dyn Error>> {
    let (batch_default, writers) = match backend {
        Backend::Sqlite(_) => (20_000, 1),
        Backend::Postgres { .. } => (5_000, 2),
    };
    // A bulk import touches index pages all over the file: a bigger write
    // cache than a server's (the import is the only writer meanwhile).
    let store = open_store(backend, matches!(command, Command::Import { .. }))?;
    match command {
        Command::Import {
            file,
            rejects,
            issue_legacy_defaults,
            batch,
            threads,
            progress,
        } => {
            let keys = Arc::new(ApiKeys::production(store, policy)?);
            let threads = threads.map_or_else(
                || std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
                |t| t as usize,
            );
            let import = transfer::import::Import {
                file,
                rejects,
                legacy_defaults: issue_legacy_defaults,
                batch: batch.map_or(batch_default, |b| b as usize),
                threads,
                writers,
                progress,
            };
            let started = std::time::Instant::now();
            let s = transfer::import::run(keys, &import)?;
            let seconds = started.elapsed().as_secs_f64();
            eprintln!(
                "import: {} lines: {} accounts imported with {} keys ({:.0} keys/s), {} skipped (imported before), {} refused{}; {:.1} s",
                s.lines,
                s.imported,
                s.keys,
                s.keys as f64 / seconds.max(1e-3),
                s.skipped,
                s.refused,
                if s.issued > 0 {
                    format!("; {} legacy default keys issued", s.issued)
                } else {
                    String::new()
                },
                seconds
            );
            Ok(if s.refused == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Export {
            output,
            with_hashes,
        } => {
            if with_hashes {
                tracing::warn!(
                    "THE EXPORT HOLDS EVERY KEY'S HASH: keep it as safe as the database, and delete it once imported"
                );
            }
            let done = match &output {
                Some(path) => {
                    let file = transfer::private_file(path, false)?;
                    let mut out = std::io::BufWriter::new(file);
                    transfer::export::run(&*store, &mut out, with_hashes)?
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut out = std::io::BufWriter::new(stdout.lock());
                    transfer::export::run(&*store, &mut out, with_hashes)?
                }
            };
            eprintln!(
                "export: {} accounts, {} keys{}",
                done.accounts,
                done.keys,
                if with_hashes { ", with hashes" } else { "" }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The store alone, for `import` and `export` (no admin token, no port).
fn open_store(backend: Backend, bulk: bool) -> Result<Arc<DynStore>, Box<dyn Error>> {
    Ok(match backend {
        Backend::Sqlite(path) => {
            create_private_directory(&path)?;
            let options = apikeys_sqlite::Options::default();
            let options = if bulk {
                options.writer_cache_kib(512 * 1024)
            } else {
                options
            };
            Arc::new(SqliteStore::open_with(&path, options)?)
        }
        Backend::Postgres { url, pool, schema } => {
            let mut options = Options::default().pool_size(pool);
            options.schema.clone_from(&schema);
            Arc::new(PostgresStore::connect_with(&url.0, options)?)
        }
    })
}

/// Binds the listening socket, naming the address if it cannot.
fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, Box<dyn Error>> {
    let listener =
        std::net::TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

fn fail(e: &(dyn Error + 'static), url: Option<&DatabaseUrl>) -> ExitCode {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        // Some errors (apikeys-postgres') already spell out their cause.
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    if let Some(url) = url {
        message = apikeys_postgres::redact_password(&message, &url.0);
    }
    tracing::error!("{message}");
    ExitCode::FAILURE
}

/// What the server runs on, opened.
struct Opened {
    keys: Arc<ApiKeys>,
    admin: ResolvedToken,
    /// Where authentication's store calls run: inline over a local file.
    store_calls: StoreCalls,
    /// For the log: the file, or the server and schema (never a password).
    store: String,
}

fn open(backend: Backend, policy: Policy) -> Result<Opened, Box<dyn Error>> {
    let chosen = std::env::var("APIKEYS_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let (store, admin, store_calls, description): (Arc<DynStore>, _, _, _) = match backend {
        Backend::Sqlite(path) => {
            create_private_directory(&path)?;
            let store = SqliteStore::open(&path)?;
            for (file, mode) in store.readable_by_others() {
                tracing::warn!(
                    file = %file.display(),
                    mode = format!("{mode:o}"),
                    "THE KEY DATABASE IS READABLE BY OTHER USERS: it holds every key's hash and every account; run `chmod 600` on it"
                );
            }
            let tokens = SqliteAdminTokenStore::open(&path)?;
            let admin = resolve_admin_token(&tokens, chosen.as_deref(), &mut apikeys::os_rng())?;
            // SQLite answers a lookup from a local file in microseconds.
            let description = format!("sqlite {}", path.display());
            (Arc::new(store), admin, StoreCalls::Inline, description)
        }
        Backend::Postgres { url, pool, schema } => {
            let mut options = Options::default().pool_size(pool);
            options.schema.clone_from(&schema);
            // First the key store: it creates the schema the token's table
            // goes in.
            let store = PostgresStore::connect_with(&url.0, options)?;
            let tokens = PostgresAdminTokenStore::connect(&url.0, store.schema())?;
            let admin = resolve_admin_token(&tokens, chosen.as_deref(), &mut apikeys::os_rng())?;
            drop(tokens);
            let description = describe_postgres(&url.0, schema.as_deref(), pool);
            // A lookup is a network round trip: never on an async worker.
            (
                Arc::new(store),
                admin,
                StoreCalls::BlockingPool,
                description,
            )
        }
    };
    let keys = ApiKeys::production(store, policy)?;
    Ok(Opened {
        keys: Arc::new(keys),
        admin,
        store_calls,
        store: description,
    })
}

/// Creates the database's directory if it is missing, readable by its
/// owner only (0700, whatever the umask). An existing directory is left
/// alone.
fn create_private_directory(db: &std::path::Path) -> Result<(), Box<dyn Error>> {
    let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    if dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the directory {}: {e}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

async fn run(
    args: Args,
    listener: std::net::TcpListener,
    opened: Opened,
) -> Result<(), Box<dyn Error>> {
    let Opened {
        keys,
        admin,
        store_calls,
        store,
    } = opened;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let addr = listener.local_addr()?;
    let proxies = TrustedProxies {
        networks: args.trusted_proxies.clone(),
        header: args.forwarded_header,
    };
    let mut ui = UiConfig::default()
        .frame_ancestors(args.frame_ancestors.clone())
        .secure_cookies(args.secure_cookies);
    if let Some(origin) = &args.public_origin {
        ui = ui.public_origin(origin.clone());
    }
    let config = Config::default()
        .trusted_proxies(proxies)
        .lanes(Lanes::default().store_calls(store_calls))
        .ui(ui);
    spawn_token_purge(keys.clone());
    if keys
        .policy()
        .disable_dormant_legacy_defaults_after
        .is_some()
    {
        spawn_dormancy_action(keys.clone());
    }
    let app = router(keys, admin.token, config);

    // On stdout, not in the log: the generated token is shown this once.
    if let Some(token) = &admin.generated {
        println!(
            "Generated admin token (shown once; only its hash is kept): {}",
            token.expose_secret()
        );
    }
    drop(admin.generated);
    println!("apikeys-server listening on http://{addr}");
    let trusted: Vec<String> = args
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    tracing::info!(%addr, %store, trusted_proxies = ?trusted, "listening");

    serve(listener, app, ServeOptions::default(), shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Every ten minutes, deletes the expired REST tokens of every key (issuing
/// a token also clears its own key's), so that the table holds live tokens
/// only.
fn spawn_token_purge(keys: Arc<ApiKeys>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            every.tick().await;
            let keys = keys.clone();
            match tokio::task::spawn_blocking(move || keys.purge_expired_tokens()).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(tokens = n, "expired tokens purged"),
                Ok(Err(e)) => tracing::warn!(error = %e, "purging expired tokens failed"),
                Err(e) => tracing::warn!(error = %e, "the token purge task failed"),
            }
        }
    });
}

/// At start and then hourly, disables the dormant legacy default keys the
/// policy names (see `--disable-dormant-legacy-after-days`).
fn spawn_dormancy_action(keys: Arc<ApiKeys>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every.tick().await;
            let keys = keys.clone();
            let run = move || keys.disable_dormant_legacy_defaults(apikeys::Actor::Operator, false);
            match tokio::task::spawn_blocking(run).await {
                Ok(Ok(disabled)) if disabled.is_empty() => {}
                Ok(Ok(disabled)) => {
                    tracing::info!(
                        keys = disabled.len(),
                        "dormant legacy default keys disabled"
                    );
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "disabling dormant keys failed"),
                Err(e) => tracing::warn!(error = %e, "the dormancy task failed"),
            }
        }
    });
}

/// `postgres host=… port=… dbname=… user=… schema=… pool=…`, from the parsed
/// URL: never its password.
fn describe_postgres(url: &str, schema: Option<&str>, pool: u32) -> String {
    let Ok(config) = url.parse::<postgres::Config>() else {
        return "postgres".to_owned();
    };
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            postgres::config::Host::Tcp(h) => h.clone(),
            #[cfg(unix)]
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "postgres host={} port={} dbname={} user={} schema={} pool={pool}",
        hosts.join(","),
        ports.join(","),
        config.get_dbname().unwrap_or("(default)"),
        config.get_user().unwrap_or("(default)"),
        schema.unwrap_or("(default)"),
    )
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_never_shows_in_debug() {
        let args = Args::parse_from([
            "apikeys-server",
            "--postgres",
            "postgres://app:s3cret-pw@db/x",
        ]);
        assert!(!format!("{args:?}").contains("s3cret"));
        assert!(matches!(args.backend(), Backend::Postgres { .. }));
    }
}
