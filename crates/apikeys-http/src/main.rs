//! `apikeys-server`: the HTTP API on the SQLite store.
//!
//! ```sh
//! cargo run -p apikeys-http              # 127.0.0.1:8080, ./apikeys.sqlite3
//! cargo run -p apikeys-http -- --help
//! ```

use apikeys::{ApiKeys, Policy};
use apikeys_http::sqlite_vault::SqliteVault;
use apikeys_http::{Config, resolve_admin_token, router, serve};
use apikeys_sqlite::SqliteStore;
use clap::Parser;
use std::error::Error;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

/// The apikeys HTTP API on a SQLite file.
///
/// The management API needs `Authorization: Bearer <admin token>`. The
/// token comes from APIKEYS_ADMIN_TOKEN (16 to 256 printable ASCII
/// characters); without it, the first start generates one, prints it once
/// and keeps only its SHA-256 digest in the database, and later starts use
/// that. Logs go to stderr (RUST_LOG, default `info`).
#[derive(Debug, Parser)]
#[command(name = "apikeys-server", version)]
struct Args {
    /// Address and port to listen on.
    #[arg(long, env = "APIKEYS_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// SQLite database file, created if absent.
    #[arg(long, env = "APIKEYS_DB", default_value = "apikeys.sqlite3")]
    db: PathBuf,
    /// Take the client address of authentication requests from the first
    /// X-Forwarded-For entry. Only behind a proxy that sets it: otherwise
    /// anyone could claim any address and pass the IP whitelists.
    #[arg(long, env = "APIKEYS_TRUST_PROXY")]
    trust_proxy: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e.as_ref()),
    }
}

fn fail(e: &(dyn Error + 'static)) -> ExitCode {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    tracing::error!("{message}");
    ExitCode::FAILURE
}

async fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let store = SqliteStore::open(&args.db)?;
    let vault = SqliteVault::open(&args.db)?;
    let chosen = std::env::var("APIKEYS_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let admin = resolve_admin_token(&vault, chosen.as_deref(), &mut os_rng())?;
    drop(vault);

    // The one place the wall clock is read: the domain takes it as a parameter.
    #[allow(clippy::disallowed_methods)]
    let clock = Arc::new(time::OffsetDateTime::now_utc);
    let keys = ApiKeys::new(Arc::new(store), Policy::default(), clock, os_rng())?;

    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    let config = Config {
        trust_proxy: args.trust_proxy,
        // SQLite answers a lookup from a local file in microseconds.
        inline_checks: true,
        ..Config::default()
    };
    let app = router(Arc::new(keys), admin.token, config);

    // On stdout, not in the log: the generated token is shown this once.
    if let Some(token) = &admin.generated {
        println!(
            "Generated admin token (shown once; only its hash is kept): {}",
            token.expose_secret()
        );
    }
    drop(admin.generated);
    println!("apikeys-server listening on http://{addr}");
    tracing::info!(%addr, db = %args.db.display(), trust_proxy = args.trust_proxy, "listening");

    serve(listener, app, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
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
