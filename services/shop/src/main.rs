//! `shop up`: the whole shop on this machine, nothing to install.
//! `cargo run --release -p shop -- up` from the repository root.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "shop", about = "The shop generated from spec/shop.yaml")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run every service and the GraphQL API in this process, on embedded storage
    /// (SQLite files in the data folder, no Kafka). Ctrl-C stops it.
    Up(Up),
}

#[derive(Args, Debug)]
struct Up {
    /// Folder for the shop's data; kept across restarts.
    #[arg(long, env = "SHOP_DATA", default_value = "shop-data")]
    data: PathBuf,
    /// Where GraphQL (/graphql) and GraphiQL (/) are served.
    #[arg(long, env = "SHOP_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Do not add the demo products on the first start.
    #[arg(long)]
    no_demo: bool,
}

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    init_logs();
    match run().await {
        Ok(()) => {
            println!("The shop stopped cleanly.");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let Command::Up(up) = Cli::parse().command;
    let options = shop::UpOptions {
        data: up.data,
        listen: up.listen,
        demo: !up.no_demo,
    };
    shop::up(options, keel::server::shutdown_signal(), |a, data| {
        println!("The shop is up. Embedded storage in {}", data.display());
        println!("  GraphiQL  http://{}/", a.graphql);
        println!("  GraphQL   http://{}/graphql", a.graphql);
        for (name, addr) in &a.grpc {
            println!("  gRPC      {name:<19} http://{addr}");
        }
        println!("Ctrl-C stops it.");
    })
    .await
}
