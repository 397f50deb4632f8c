//! The BFF binary: `bff --listen 127.0.0.1:20100 --product-url http://127.0.0.1:20201 …`
//! (every flag also reads its environment variable: `LISTEN_ADDR`, `PRODUCT_URL`, …).

use clap::Parser;
use shop_kit::server;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    server::init_tracing();
    let config = bff::Config::parse();
    bff::serve(config, server::shutdown_signal()).await
}
