//! `members-service [serve|relay]`: see `--help` (settings generated from the spec).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    library_members::main_with::<members_service::Member>().await
}
