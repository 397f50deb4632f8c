//! `loans-service [--role command|query|event-handler] [rebuild|repair]`: see `--help`.

use keel::es::command::NoChecks;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let subscriptions = loans_service::Subscriptions::new;
    library_loans::main_with::<loans_service::Card, _, _>(|_| Ok(NoChecks), subscriptions).await
}
