//! `lahja`: look at the endpoints of a lahja bus from outside.
//!
//! It finds endpoints by their socket files (the folder of
//! `ConnectionConfig::from_name`) and asks each for a report as an
//! observer, which is never a peer: observing changes nothing on the bus.

mod commands;
mod live;
mod probe;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Look at the endpoints of a lahja bus: who is alive, who subscribes to
/// what, what flows, and what is stuck.
#[derive(Parser, Debug)]
#[command(
    name = "lahja",
    version,
    after_help = "Example:\n  lahja list\n  lahja info trinity --json"
)]
struct Cli {
    /// The folder of the socket files [default: that of
    /// `ConnectionConfig::from_name`, `$XDG_RUNTIME_DIR/lahja`].
    #[arg(long, global = true, value_name = "PATH")]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// How a command prints.
#[derive(clap::Args, Debug, Clone, Copy)]
struct Format {
    /// Machine-readable output: JSON Lines for lists and live streams, one
    /// object for `info` and `check`.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the endpoints in the folder: alive or stale, pid, uptime, peers.
    #[command(after_help = "Example:\n  lahja list --json")]
    List {
        #[command(flatten)]
        format: Format,
    },
    /// Everything one endpoint says of itself: peers, queues,
    /// subscriptions, traffic per type, pending requests.
    #[command(after_help = "Example:\n  lahja info trinity")]
    Info {
        #[command(flatten)]
        format: Format,
        /// The endpoint's name.
        name: String,
    },
    /// Every event type seen on the bus: who subscribes, who sent it, rate.
    #[command(after_help = "Example:\n  lahja events --window 2")]
    Events {
        #[command(flatten)]
        format: Format,
        /// Seconds between the two reports a rate is measured over (0: no
        /// rates).
        #[arg(long, default_value_t = 1.0, value_name = "SECONDS", value_parser = seconds)]
        window: f64,
    },
    /// Live copies of what endpoints send and receive: time, origin,
    /// targets, type, size and value; requests paired with responses.
    #[command(
        after_help = "Example:\n  lahja tap my_app.Ping my_app.Pong --endpoint server --count 10"
    )]
    Tap {
        #[command(flatten)]
        format: Format,
        /// Wire names of the types to show (default: every type).
        types: Vec<String>,
        /// Tap only this endpoint (default: every endpoint; a frame
        /// between two of them shows once).
        #[arg(long, value_name = "NAME")]
        endpoint: Option<String>,
        /// Stop after this many frames.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// The rate of one event type on the bus, per sender.
    #[command(after_help = "Example:\n  lahja hz my_app.BlockImported --once")]
    Hz {
        #[command(flatten)]
        format: Format,
        /// The type's wire name.
        r#type: String,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 1.0, value_name = "SECONDS", value_parser = seconds)]
        window: f64,
        /// Print one measurement and exit.
        #[arg(long)]
        once: bool,
    },
    /// Rates, queues and pending requests per endpoint, refreshing in place.
    #[command(after_help = "Example:\n  lahja top --once")]
    Top {
        #[command(flatten)]
        format: Format,
        /// Seconds per refresh.
        #[arg(long, default_value_t = 1.0, value_name = "SECONDS", value_parser = seconds)]
        window: f64,
        /// Print one snapshot and exit.
        #[arg(long)]
        once: bool,
    },
    /// Broadcast an event written as JSON, sent by an endpoint that knows
    /// its type (as that endpoint).
    #[command(
        after_help = "Example:\n  lahja send demo.BlockImported --json '{\"number\": 7, \"hash\": [1, 2, 3, 4]}'"
    )]
    Send {
        /// The type's wire name.
        r#type: String,
        /// The value, in serde's JSON form of the type.
        #[arg(long = "json", value_name = "JSON")]
        value: String,
        /// The endpoint that sends it (default: the first that knows the type).
        #[arg(long, value_name = "NAME")]
        endpoint: Option<String>,
    },
    /// Send a request written as JSON and print its response as JSON.
    #[command(after_help = "Example:\n  lahja request demo.GetHeight --json 'null'")]
    Request {
        /// The request type's wire name.
        r#type: String,
        /// The request, in serde's JSON form of the type.
        #[arg(long = "json", value_name = "JSON")]
        value: String,
        /// The endpoint that sends it (default: the first that knows the type).
        #[arg(long, value_name = "NAME")]
        endpoint: Option<String>,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 5.0, value_name = "SECONDS", value_parser = seconds)]
        timeout: f64,
    },
    /// Exit 0 if healthy, 1 if degraded (stale sockets, unreachable
    /// endpoints, queues at 90% of their bound), 2 if down (no endpoint, or a named one is
    /// not alive); prints a one-line reason.
    #[command(after_help = "Example:\n  lahja check trinity networking || echo unhealthy")]
    Check {
        #[command(flatten)]
        format: Format,
        /// Endpoints that must be alive (default: any one).
        names: Vec<String>,
    },
    /// Remove the socket files of endpoints that are gone. Never removes
    /// a live socket or a file that is not a socket.
    #[command(after_help = "Example:\n  lahja clean")]
    Clean {
        #[command(flatten)]
        format: Format,
    },
}

/// Seconds as a duration can hold them (`inf`, `NaN`, negatives refused).
fn seconds(text: &str) -> Result<f64, String> {
    let value: f64 = text.parse().map_err(|e| format!("{e}"))?;
    std::time::Duration::try_from_secs_f64(value)
        .map(|_| value)
        .map_err(|_| format!("{text} is not a number of seconds"))
}

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader of our output
    // goes away (`lahja tap | head`), instead of panicking in println!.
    // SAFETY: setting a signal's disposition to the default at start-up.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let dir = cli
        .dir
        .or_else(|| {
            lahja::ConnectionConfig::from_name("x")
                .path
                .parent()
                .map(PathBuf::from)
        })
        .unwrap_or_default();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("lahja: cannot start: {error}");
            return ExitCode::from(2);
        }
    };
    let out = |format: Format| commands::Output { json: format.json };
    runtime.block_on(async {
        match cli.command {
            Command::List { format } => commands::list(&dir, out(format)).await,
            Command::Info { format, name } => commands::info(&dir, &name, out(format)).await,
            Command::Events { format, window } => commands::events(&dir, window, out(format)).await,
            Command::Tap {
                format,
                types,
                endpoint,
                count,
            } => live::tap(&dir, &types, endpoint.as_deref(), count, out(format)).await,
            Command::Hz {
                format,
                r#type,
                window,
                once,
            } => live::hz(&dir, &r#type, window, once, out(format)).await,
            Command::Top {
                format,
                window,
                once,
            } => live::top(&dir, window, once, out(format)).await,
            Command::Send {
                r#type,
                value,
                endpoint,
            } => live::send(&dir, &r#type, &value, endpoint.as_deref(), 5.0, false).await,
            Command::Request {
                r#type,
                value,
                endpoint,
                timeout,
            } => {
                let endpoint = endpoint.as_deref();
                live::send(&dir, &r#type, &value, endpoint, timeout, true).await
            }
            Command::Check { format, names } => commands::check(&dir, &names, out(format)).await,
            Command::Clean { format } => commands::clean(&dir, out(format)),
        }
    })
}
