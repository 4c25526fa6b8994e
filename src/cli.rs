//! The command line: `serve` (default), `migrate`, and `token`.

use std::{process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};

use crate::{
    app::{Application, db_settings, random_secret},
    auth::mint_hs256,
    config::{Config, MIN_SECRET_LEN, Secret},
    db,
};

/// Command-line interface of `tasks-api`.
#[derive(Debug, Parser)]
#[command(
    name = "tasks-api",
    version,
    about = "Multi-user task API for Better Auth front ends"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (the default).
    Serve {
        /// Development mode: with no BETTER_AUTH_SECRET, use a random one for
        /// this run, and print a working token and curl line.
        #[arg(long)]
        dev: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Print the OpenAPI document (as served at /openapi.json) and exit.
    Openapi,
    /// Print an HS256 token signed with BETTER_AUTH_SECRET.
    Token {
        /// The user id (`sub` claim).
        #[arg(long)]
        sub: String,
        /// The `email` claim.
        #[arg(long)]
        email: Option<String>,
        /// The `name` claim.
        #[arg(long)]
        name: Option<String>,
        /// Lifetime, such as 900s, 15m, 1h or 7d.
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        ttl: Duration,
    },
}

/// Parses `90`, `90s`, `15m`, `1h` or `7d`.
fn parse_ttl(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let (digits, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration such as 900s, 15m, 1h or 7d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("{raw:?} has an unknown unit; use s, m, h or d")),
    };
    if secs == 0 {
        return Err("the lifetime must be positive".to_owned());
    }
    Ok(Duration::from_secs(secs))
}

/// Runs the parsed command; the process exit code says how it went.
pub fn main(cli: Cli) -> ExitCode {
    // A missing .env is normal; a malformed one is worth saying.
    if let Err(err) = dotenvy::dotenv()
        && !err.not_found()
    {
        eprintln!("error: could not read .env: {err}");
        return ExitCode::from(2);
    }
    init_tracing(std::env::var("LOG_FORMAT").is_ok_and(|f| f.trim() == "json"));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: could not start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Serve { dev: false });
    match command {
        Command::Openapi => {
            println!("{}", crate::api::openapi::document_json());
            ExitCode::SUCCESS
        }
        Command::Token {
            sub,
            email,
            name,
            ttl,
        } => token(&sub, email.as_deref(), name.as_deref(), ttl),
        Command::Migrate => match load_config(false) {
            Some(config) => report(runtime.block_on(db::migrate(&db_settings(&config))).map(
                |()| {
                    println!("migrations applied");
                },
            )),
            None => ExitCode::from(2),
        },
        Command::Serve { dev } => match load_config(dev) {
            Some(config) => report(runtime.block_on(serve(config, dev))),
            None => ExitCode::from(2),
        },
    }
}

/// Human-readable logs by default; one JSON object per line with
/// `LOG_FORMAT=json` (the request span, with its `request_id`, is on every
/// line either way).
fn init_tracing(json: bool) {
    // rmcp logs three `info` lines for every `/mcp` request it serves; our
    // own request line already says what happened.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rmcp=warn"));
    // Logs go to stderr; stdout carries only what a command prints (a
    // token, the OpenAPI document, the dev banner).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        builder.init();
    }
}

fn load_config(dev: bool) -> Option<Config> {
    match Config::from_env(dev) {
        Ok(config) => Some(config),
        Err(problems) => {
            for problem in problems {
                eprintln!("error: {problem}");
            }
            None
        }
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(mut config: Config, dev: bool) -> anyhow::Result<()> {
    let random = dev && config.auth_secret.is_none();
    if random {
        config.auth_secret = Some(Secret::new(random_secret()));
    }
    let secret = config.auth_secret.clone();
    let app = Application::build(config).await?;
    let addr = app.local_addr();
    tracing::info!(%addr, "listening");
    if dev && let Some(secret) = &secret {
        print_dev_banner(secret, addr, random)?;
    }
    app.run_until(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Dev mode's welcome: a token for a demo user and a curl line that works.
fn print_dev_banner(
    secret: &Secret,
    addr: std::net::SocketAddr,
    random: bool,
) -> anyhow::Result<()> {
    let token = mint_hs256(
        secret,
        "dev-user",
        Some("dev@example.com"),
        Some("Dev User"),
        Duration::from_secs(24 * 3600),
    )?;
    if random {
        println!("dev mode: BETTER_AUTH_SECRET is not set; using a random secret for this run.");
    }
    println!("dev mode: a token for user \"dev-user\", valid 24 hours:\n\n  {token}\n");
    println!("try it:\n");
    println!(
        "  curl -s -X POST http://{addr}/api/v1/tasks -H \"Authorization: Bearer {token}\" -H 'Content-Type: application/json' -d '{{\"title\":\"Buy milk\"}}'\n"
    );
    println!("  curl -s http://{addr}/api/v1/tasks -H \"Authorization: Bearer {token}\"\n");
    Ok(())
}

fn token(sub: &str, email: Option<&str>, name: Option<&str>, ttl: Duration) -> ExitCode {
    let Some(secret) = std::env::var("BETTER_AUTH_SECRET")
        .ok()
        .filter(|s| !s.trim().is_empty())
    else {
        eprintln!(
            "error: BETTER_AUTH_SECRET is not set (in the environment or .env); the token is signed with it."
        );
        return ExitCode::from(2);
    };
    let secret = Secret::new(secret.trim());
    if secret.expose().len() < MIN_SECRET_LEN {
        eprintln!("error: BETTER_AUTH_SECRET must be at least {MIN_SECRET_LEN} bytes.");
        return ExitCode::from(2);
    }
    match mint_hs256(&secret, sub, email, name, ttl) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: could not sign the token: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::parse_ttl;
    use std::time::Duration;

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("900").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_ttl("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_ttl("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_ttl("1w").is_err());
        assert!(parse_ttl("0s").is_err());
    }
}
