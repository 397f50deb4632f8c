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
    /// Where the storefront (/), the back-office (/back-office/), the GraphQL console
    /// (/graphiql) and GraphQL (/graphql) are served.
    #[arg(long, env = "SHOP_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Do not add the demo products on the first start.
    #[arg(long)]
    no_demo: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    keel::embedded::init_logs();
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
    use anyhow::Context;
    let Command::Up(up) = Cli::parse().command;
    let shutdown = keel::server::shutdown_signal();
    keel::embedded::up(
        &shop::SYSTEM,
        &up.data,
        up.listen,
        shutdown,
        async |a, data| {
            if !up.no_demo {
                let product = format!("http://{}", a.grpc["product"]);
                shop::demo::seed_once(data, &product)
                    .await
                    .context("adding the demo products")?;
            }
            keel::embedded::print_banner("shop", a, data);
            Ok(())
        },
    )
    .await
}
