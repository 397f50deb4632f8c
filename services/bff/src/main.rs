//! The BFF binary: `bff --listen <addr> --product-url <url> …` (defaults: the spec's
//! local ports; every flag also reads its environment variable: `LISTEN_ADDR`,
//! `PRODUCT_URL`, …).

use clap::Parser;
use keel::server;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    server::init_tracing();
    let config = bff::Config::parse();
    bff::serve(config, server::shutdown_signal()).await
}
