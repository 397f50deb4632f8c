//! `user-service [serve|relay]`: see `--help` (the settings are generated from the spec:
//! `shop_user::Config`). Relays in several processes are safe: one holds the lease and
//! publishes, the others stand by.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shop_user::main_with::<user_service::Customer>().await
}
