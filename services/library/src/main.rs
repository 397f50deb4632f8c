//! `library up`: the lending library on this machine, nothing to install. See `--help`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    keel::embedded::main(&library_launcher::SYSTEM).await
}
