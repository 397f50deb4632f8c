//! `tasks-service [serve|relay]`: see `--help` (the settings are generated from the spec).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    {{crate}}_tasks::main_with::<tasks_service::Task>().await
}
