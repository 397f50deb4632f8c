//! `cart-service [--role command|query|event-handler] [rebuild|repair]`: see `--help`
//! (the settings are generated from the spec: `shop_cart::Config`).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let checks = cart_service::ProductExists::from_config;
    shop_cart::main_with::<cart_service::Cart, _, _>(checks, cart_service::Subscriptions::new).await
}
