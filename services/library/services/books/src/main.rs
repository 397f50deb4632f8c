//! `books-service`: see `--help` (settings generated from the spec).

use clap::Parser;
use keel::server;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    server::init_tracing();
    let config = books_service::Config::parse();
    let incoming = server::bind(config.listen)?;
    books_service::run(config, incoming, server::stop_on_signal()).await
}
