//! `chatterfly`: the server and its administration commands. Every command takes the same
//! configuration flags and environment as `serve`, so `chatterfly keys rotate --data-dir D`
//! works on the data of `chatterfly serve --data-dir D`.

mod inspect;

use std::path::PathBuf;
use std::process::ExitCode;

use chatterfly_server::{App, Config};
use chatterfly_vault::{ExposeSecret, Key};
use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: a tool call allocates and frees a few hundred
/// small objects across two threads, and an import builds a tree of a million nodes; both
/// spent a tenth of their time in glibc's malloc and free (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "chatterfly",
    version,
    about = "Chatterfly Connections: credentialed outbound connections for agents and workflows"
)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server (SQLite in the data dir unless --database-url is given).
    Serve,
    /// Encryption keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Administration without a running server.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// OpenAPI documents.
    #[command(subcommand)]
    Openapi(OpenapiCommand),
}

#[derive(Subcommand)]
enum OpenapiCommand {
    /// Print what importing FILE (OpenAPI 3.0/3.1 or Swagger 2.0, JSON or YAML) would
    /// produce: operations, auth, base URL, warnings. Needs no server.
    Inspect {
        file: PathBuf,
        /// The import endpoint's answer as JSON (`summary`, `draft`, `warnings`).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print a fresh random key, for INTEGRATION_ENCRYPTION_KEY.
    Generate,
    /// Re-seal every stored secret under the current INTEGRATION_ENCRYPTION_KEY, in one
    /// transaction (older keys go in INTEGRATION_ENCRYPTION_PREVIOUS_KEYS).
    Rotate,
    /// Show which keys sealed the stored secrets.
    Status,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Mint an API token for a user, by email or id; prints the token once.
    CreateToken {
        /// The user's email or id.
        #[arg(long, default_value = "admin@localhost")]
        user: String,
        /// What the token is for.
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// Set a user's password (for signing in to the web UI), read from standard input
    /// (the first line); ends the user's web sessions.
    SetPassword {
        /// The user's email or id.
        #[arg(long, default_value = "admin@localhost")]
        user: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // pure computation: no logging, no runtime
    if let Command::Openapi(OpenapiCommand::Inspect { file, json }) = &cli.command {
        return match inspect::run(file, *json, cli.config.max_spec_bytes) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    chatterfly_server::logging::init(cli.config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => chatterfly_server::serve(cli.config).await?,
        Command::Keys(KeysCommand::Generate) => {
            println!("{}", Key::generate().encode().expose_secret());
        }
        Command::Keys(KeysCommand::Rotate) => {
            let app = App::open(cli.config).await?;
            let report = app.rotate_keys().await?;
            let usage = app.key_usage().await?;
            let current = app.keys.current_id().to_string();
            let stale: usize = usage.iter().filter(|(id, _)| **id != current).map(|(_, n)| n).sum();
            println!(
                "re-sealed {} of {} stored secrets under key {current}; {stale} remain sealed with another key",
                report.rewritten, report.examined
            );
            if stale > 0 {
                anyhow::bail!("{stale} secrets are still sealed with an older key");
            }
        }
        Command::Keys(KeysCommand::Status) => {
            let app = App::open(cli.config).await?;
            let current = app.keys.current_id().to_string();
            println!("current key: {current}");
            for (id, n) in app.key_usage().await? {
                let label = if id == current { " (current)" } else { "" };
                println!("{n} sealed with key {id}{label}");
            }
        }
        Command::Openapi(OpenapiCommand::Inspect { file, json }) => {
            inspect::run(&file, json, cli.config.max_spec_bytes)?
        }
        Command::Admin(AdminCommand::SetPassword { user }) => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let password = line.trim_end_matches(['\r', '\n']);
            let app = App::open(cli.config).await?;
            app.set_password(&user, password).await?;
            println!("password set for {user}");
        }
        Command::Admin(AdminCommand::CreateToken { user, name }) => {
            let app = App::open(cli.config).await?;
            let token = app.mint_token(&user, &name).await?;
            println!("{token}");
        }
    }
    Ok(())
}
