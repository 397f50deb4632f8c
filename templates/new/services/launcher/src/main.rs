//! `{{system}} up`: the whole system on this machine, nothing to install. See `--help`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    keel::embedded::main(&{{crate}}_launcher::SYSTEM).await
}
