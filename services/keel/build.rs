//! With the `auth` feature: the gRPC code of `proto/keel/auth/v1/auth.proto`, compiled
//! with protox (no `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    // The back-office and console pages compiled into the BFF (`bff::web`).
    println!("cargo:rerun-if-changed=web");
    if std::env::var_os("CARGO_FEATURE_AUTH").is_none() {
        return Ok(());
    }
    #[cfg(feature = "auth")]
    {
        let fds = protox::compile(["keel/auth/v1/auth.proto"], ["proto"])?;
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            .compile_fds(fds)?;
    }
    Ok(())
}
