//! `cart-service [--role command|query|event-handler] [rebuild|repair]`: see `--help`
//! (the settings are generated from the spec: `shop_cart::Config`).

use keel::es::command::NoChecks;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let subscriptions = cart_service::Subscriptions::new;
    shop_cart::main_with::<cart_service::Cart, _, _>(|_| Ok(NoChecks), subscriptions).await
}
