//! `kvctl`: the command line of the sharded key/value store: data commands
//! (get, put, append, delete) through the data client, and admin commands
//! (join, leave, move, query and watch configurations of the shard
//! controller). Output is human text by default, JSON with `--json`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use client::format::{config_json, config_table};
use client::status::{replica_statuses, status_json, status_table};
use client::{Client, ClientError, CtrlerClient, CtrlerClientOptions};
use proto::kv::v1 as pb;

/// Exit code when the controller refused the request (bad input).
const EXIT_REFUSED: u8 = 1;
/// Exit code when no controller replica answered within the timeout.
const EXIT_UNAVAILABLE: u8 = 3;
/// Exit code for any other failure (bad address, server error).
const EXIT_ERROR: u8 = 4;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  refused (invalid input: a key or value past its limit, an unknown gid,
     ...); nothing changed
  2  bad command line
  3  no server answered within --timeout (a write may or may not have
     applied; it never applies twice)
  4  other error (bad address, unexpected server answer)";

/// Data and admin commands of the sharded key/value store.
#[derive(Parser, Debug)]
#[command(name = "kvctl", version, about, after_help = EXIT_CODES)]
struct Cli {
    /// Controller replicas, HOST:PORT,... (any of them; the leader is found).
    #[arg(
        long,
        env = "KV_CTRLER",
        default_value = "127.0.0.1:7001",
        value_delimiter = ',',
        global = true
    )]
    ctrler: Vec<String>,
    /// Print JSON (one object per configuration) instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// Give up after this many seconds, all retries included.
    #[arg(long, env = "KV_TIMEOUT", default_value_t = 10.0, global = true)]
    timeout: f64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print KEY's value (exit 0 with nothing printed and `found: false` in
    /// JSON when it has none).
    Get {
        /// The key.
        key: String,
    },
    /// Set KEY to VALUE (read from standard input when VALUE is omitted).
    Put {
        /// The key.
        key: String,
        /// The value.
        value: Option<String>,
    },
    /// Append VALUE to KEY's value (standard input when VALUE is omitted).
    Append {
        /// The key.
        key: String,
        /// The suffix.
        value: Option<String>,
    },
    /// Remove KEY.
    Delete {
        /// The key.
        key: String,
    },
    /// Show every group's replicas: role, term, applied index, the
    /// configuration each applied, their shards' states and the moves
    /// under way.
    Status,
    /// Add replica groups and rebalance: GID=HOST:PORT[,HOST:PORT...] ...
    Join {
        /// Groups to add, each GID=HOST:PORT[,HOST:PORT...].
        #[arg(required = true, value_parser = parse_group)]
        groups: Vec<(u64, Vec<String>)>,
        /// Join only the groups the latest configuration lacks (none left:
        /// print the latest configuration and succeed), so a bootstrap
        /// script can run again safely.
        #[arg(long)]
        if_absent: bool,
    },
    /// Remove replica groups and rebalance their shards onto the others.
    Leave {
        /// Gids of the groups to remove.
        #[arg(required = true)]
        gids: Vec<u64>,
    },
    /// Give one shard to one group (no rebalancing).
    Move {
        /// The shard to move.
        shard: u32,
        /// The group that will own it.
        gid: u64,
    },
    /// Show configuration NUM, or the latest (also for -1 or a number past it).
    Query {
        /// The configuration number.
        #[arg(allow_negative_numbers = true)]
        num: Option<i64>,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Print each configuration as it commits, until interrupted.
    Watch {
        /// Start at this configuration number (default: the latest).
        #[arg(long)]
        from: Option<u64>,
    },
}

/// Parses `GID=HOST:PORT[,HOST:PORT...]`.
fn parse_group(text: &str) -> Result<(u64, Vec<String>), String> {
    let (gid, servers) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not GID=HOST:PORT[,HOST:PORT...]"))?;
    let gid: u64 = gid
        .trim()
        .parse()
        .map_err(|_| format!("gid `{gid}` is not a number"))?;
    let servers: Vec<String> = servers
        .split(',')
        .map(str::trim)
        .filter(|server| !server.is_empty())
        .map(str::to_string)
        .collect();
    if servers.is_empty() {
        return Err(format!("group {gid} lists no servers"));
    }
    Ok((gid, servers))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Ok(deadline) = Duration::try_from_secs_f64(cli.timeout) else {
        eprintln!("kvctl: --timeout must be a non-negative number of seconds");
        return ExitCode::from(2);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts on a supported OS");
    match runtime.block_on(run(&cli, deadline)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kvctl: {error}");
            ExitCode::from(exit_code(&error))
        }
    }
}

fn exit_code(error: &ClientError) -> u8 {
    match error {
        ClientError::InvalidArgument { .. } => EXIT_REFUSED,
        ClientError::DeadlineExceeded { .. } => EXIT_UNAVAILABLE,
        ClientError::InvalidAddress { .. } | ClientError::Server { .. } => EXIT_ERROR,
    }
}

async fn run(cli: &Cli, deadline: Duration) -> Result<(), ClientError> {
    let options = CtrlerClientOptions {
        deadline,
        attempt_timeout: deadline.min(Duration::from_secs(3)),
        ..CtrlerClientOptions::default()
    };
    if let Some(result) = data_command(cli, &options).await {
        return result;
    }
    let mut client = CtrlerClient::new(&cli.ctrler, options)?;
    let config = match &cli.command {
        Command::Join { groups, if_absent } => {
            let mut by_gid = BTreeMap::new();
            for (gid, servers) in groups {
                if by_gid.insert(*gid, servers.clone()).is_some() {
                    return Err(ClientError::InvalidArgument {
                        message: format!("group {gid} is given more than once"),
                    });
                }
            }
            if *if_absent {
                let latest = client.query(-1).await?;
                by_gid.retain(|gid, _| !latest.groups.contains_key(gid));
                if by_gid.is_empty() {
                    latest
                } else {
                    client.join(by_gid).await?
                }
            } else {
                client.join(by_gid).await?
            }
        }
        Command::Leave { gids } => client.leave(gids.clone()).await?,
        Command::Move { shard, gid } => client.move_shard(*shard, *gid).await?,
        Command::Query { num } => client.query(num.unwrap_or(-1)).await?,
        Command::Status => {
            let config = client.query(-1).await?;
            let groups = replica_statuses(&config, options_timeout(deadline)).await;
            if cli.json {
                emit(status_json(&config, &groups));
            } else {
                emit(status_table(&config, &groups).trim_end());
            }
            return Ok(());
        }
        Command::Config {
            command: ConfigCommand::Watch { from },
        } => return watch(&mut client, *from, cli.json).await,
        Command::Get { .. }
        | Command::Put { .. }
        | Command::Append { .. }
        | Command::Delete { .. } => unreachable!("data commands are run above"),
    };
    print_config(&config, cli.json);
    Ok(())
}

/// Returns how long to wait for one replica's status.
fn options_timeout(deadline: Duration) -> Duration {
    deadline.min(Duration::from_secs(2))
}

/// Runs a data command through the data client; `None` for an admin one.
async fn data_command(cli: &Cli, options: &CtrlerClientOptions) -> Option<Result<(), ClientError>> {
    let (op, key, value) = match &cli.command {
        Command::Get { key } => ("get", key, None),
        Command::Put { key, value } => ("put", key, Some(value)),
        Command::Append { key, value } => ("append", key, Some(value)),
        Command::Delete { key } => ("delete", key, None),
        _ => return None,
    };
    let run = async {
        let value = match value {
            Some(Some(value)) => value.clone().into_bytes(),
            Some(None) => read_stdin()?,
            None => Vec::new(),
        };
        let client = Client::connect(&cli.ctrler, options.clone()).await?;
        let key = key.as_bytes();
        match op {
            "get" => {
                let value = client.get(key).await?;
                print_value(value.as_deref(), cli.json);
            }
            "put" => client.put(key, &value).await?,
            "append" => client.append(key, &value).await?,
            _ => client.delete(key).await?,
        }
        if op != "get" && cli.json {
            emit(serde_json::json!({ "ok": true }));
        }
        Ok(())
    };
    Some(run.await)
}

/// Reads a value from standard input.
fn read_stdin() -> Result<Vec<u8>, ClientError> {
    let mut value = Vec::new();
    std::io::stdin()
        .read_to_end(&mut value)
        .map_err(|error| ClientError::InvalidArgument {
            message: format!("cannot read the value from standard input: {error}"),
        })?;
    Ok(value)
}

/// Prints a value read: its bytes (lossy UTF-8) or, with `--json`, an
/// object with `found` and `value`.
fn print_value(value: Option<&[u8]>, json: bool) {
    if json {
        let text = value.map(|bytes| String::from_utf8_lossy(bytes).into_owned());
        emit(serde_json::json!({ "found": value.is_some(), "value": text }));
    } else if let Some(value) = value {
        emit(String::from_utf8_lossy(value));
    }
}

/// Prints configurations as they commit, from `from` or the latest.
async fn watch(
    client: &mut CtrlerClient,
    from: Option<u64>,
    json: bool,
) -> Result<(), ClientError> {
    let from = match from {
        Some(from) => from,
        None => client.query(-1).await?.num,
    };
    let mut stream = client.watch(from);
    loop {
        let config = stream.next().await?;
        print_config(&config, json);
    }
}

fn print_config(config: &pb::Config, json: bool) {
    if json {
        emit(config_json(config));
    } else {
        emit(config_table(config));
    }
}

/// Writes `text` and a newline to standard output. When the reader has
/// gone away (`kvctl status | head`, a closed `config watch` pipe) kvctl
/// ends quietly with success, as Unix filters do, instead of panicking;
/// any other write error ends it with the error's exit code.
fn emit(text: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    let Err(error) = writeln!(out, "{text}").and_then(|()| out.flush()) else {
        return;
    };
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("kvctl: cannot write to standard output: {error}");
    std::process::exit(i32::from(EXIT_ERROR));
}
