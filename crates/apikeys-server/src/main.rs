#![doc = include_str!("../README.md")]

mod admin_token;

use admin_token::{
    PostgresAdminTokenStore, ResolvedToken, SqliteAdminTokenStore, resolve_admin_token,
};
use apikeys::{ApiKeys, DynStore, Policy};
use apikeys_http::{Config, router, serve};
use apikeys_postgres::{Options, PostgresStore};
use apikeys_sqlite::SqliteStore;
use clap::Parser;
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
/// token comes from APIKEYS_ADMIN_TOKEN (16 to 256 printable ASCII
/// characters); without it, the first start generates one, prints it once
/// and keeps only its SHA-256 digest in the database (the SQLite file, or
/// PostgreSQL with --postgres), and later starts use that. Logs go to stderr
/// (RUST_LOG, default `info`).
#[derive(Debug, Parser)]
#[command(name = "apikeys-server", version)]
struct Args {
    /// Address and port to listen on.
    #[arg(long, env = "APIKEYS_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// SQLite database file, created if absent. Ignored with --postgres.
    #[arg(long, env = "APIKEYS_DB", default_value = "apikeys.sqlite3")]
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
        value_name = "URL"
    )]
    postgres: Option<DatabaseUrl>,
    /// With --postgres: how many connections the pool opens at most.
    #[arg(
        long,
        env = "APIKEYS_POSTGRES_POOL",
        default_value_t = 16,
        value_name = "N",
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
        requires = "postgres"
    )]
    postgres_schema: Option<String>,
    /// Take the client address of authentication requests from the first
    /// X-Forwarded-For entry. Only behind a proxy that sets it: otherwise
    /// anyone could claim any address and pass the IP whitelists.
    #[arg(long, env = "APIKEYS_TRUST_PROXY")]
    trust_proxy: bool,
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
    let args = Args::parse();
    let backend = args.backend();
    // Errors are scrubbed of the URL's password, whatever produced them.
    let url = match &backend {
        Backend::Postgres { url, .. } => Some(url.clone()),
        Backend::Sqlite(_) => None,
    };
    let fail = |e: &(dyn Error + 'static)| fail(e, url.as_ref());

    // Opening the stores blocks, and the PostgreSQL client runs
    // a small runtime of its own, which cannot start inside ours: so this
    // happens before ours starts.
    let opened = match open(backend) {
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
    let result = runtime.block_on(run(args, opened));
    // Likewise, PostgreSQL connections cannot close inside our runtime: the
    // service, which owns the pool, is dropped last, after the runtime and
    // every task holding a clone of it.
    drop(runtime);
    drop(keys);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e.as_ref()),
    }
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
    /// See `Config::inline_checks`.
    inline_checks: bool,
    /// For the log: the file, or the server and schema (never a password).
    store: String,
}

fn open(backend: Backend) -> Result<Opened, Box<dyn Error>> {
    let chosen = std::env::var("APIKEYS_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let (store, admin, inline_checks, description): (Arc<DynStore>, _, _, _) = match backend {
        Backend::Sqlite(path) => {
            let store = SqliteStore::open(&path)?;
            let tokens = SqliteAdminTokenStore::open(&path)?;
            let admin = resolve_admin_token(&tokens, chosen.as_deref(), &mut os_rng())?;
            // SQLite answers a lookup from a local file in microseconds.
            let description = format!("sqlite {}", path.display());
            (Arc::new(store), admin, true, description)
        }
        Backend::Postgres { url, pool, schema } => {
            let mut options = Options::default().pool_size(pool);
            options.schema.clone_from(&schema);
            // First the key store: it creates the schema the token's table
            // goes in.
            let store = PostgresStore::connect_with(&url.0, options)?;
            let tokens = PostgresAdminTokenStore::connect(&url.0, store.schema())?;
            let admin = resolve_admin_token(&tokens, chosen.as_deref(), &mut os_rng())?;
            drop(tokens);
            let description = describe_postgres(&url.0, schema.as_deref(), pool);
            // A lookup is a network round trip: never on an async worker.
            (Arc::new(store), admin, false, description)
        }
    };
    // The one place the wall clock is read: the domain takes it as a parameter.
    #[allow(clippy::disallowed_methods)]
    let clock = Arc::new(time::OffsetDateTime::now_utc);
    let keys = ApiKeys::new(store, Policy::default(), clock, os_rng())?;
    Ok(Opened {
        keys: Arc::new(keys),
        admin,
        inline_checks,
        store: description,
    })
}

async fn run(args: Args, opened: Opened) -> Result<(), Box<dyn Error>> {
    let Opened {
        keys,
        admin,
        inline_checks,
        store,
    } = opened;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    let config = Config::default()
        .trust_proxy(args.trust_proxy)
        .inline_checks(inline_checks);
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
    tracing::info!(%addr, %store, trust_proxy = args.trust_proxy, "listening");

    serve(listener, app, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
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

fn os_rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
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
