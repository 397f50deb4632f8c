//! `cart-service --role command|query|event-handler` (or `ROLE=…`), and
//! `cart-service rebuild`.
//!
//! - `command`: `CartCommandService` over the event store, plus the
//!   relay to the bus (unless `RELAY=false`) and the `user.events` subscriber (unless
//!   `SUBSCRIBER=false`).
//! - `query`: `CartQueryService` over the read model.
//! - `event-handler`: projects `cart.events` into the read model; gRPC health only.
//!   With `--events-from store` (`EVENTS_FROM=store`) it needs no bus: it tails the
//!   event store from its own checkpoint (see `tail`).
//!
//! Each role listens on its deployable's local port (`cart-command`, … in
//! `shop_system`, generated from the spec) unless `--listen` says otherwise.
//! - `rebuild`: replays the event store into the read model and prints the events per
//!   second.
//! - `repair`: applies the parked events (see `projection`) that can be applied now.
//!
//! Backends by URL (see `cart_service::app`): `EVENT_STORE_URL` (else `MONGO_URL`),
//! `DATABASE_URL`, `BUS_URL` (else `KAFKA_BROKERS`).

use clap::Parser;
use shop_kit::server;

use cart_service::{Config, Task};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    server::init_tracing();
    let config = Config::parse();

    if let Some(Task::Repair) = config.task {
        let (repaired, left) = cart_service::app::repair(&config).await?;
        println!("parked events: {repaired} applied, {left} still parked");
        anyhow::ensure!(left == 0, "{left} parked events could not be applied yet");
        return Ok(());
    }
    if let Some(Task::Rebuild) = config.task {
        let report = cart_service::app::rebuild(&config).await?;
        println!(
            "rebuilt the read model: {} events in {} commits, {} carts, up to position {}, in {:.3} s: {:.0} events/s",
            report.events,
            report.commits,
            report.streams,
            report.position,
            report.elapsed.as_secs_f64(),
            report.events_per_second()
        );
        return Ok(());
    }

    let incoming = server::bind(config.listen())?;
    cart_service::run(config, incoming, server::stop_on_signal()).await
}
