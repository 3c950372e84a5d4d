//! The murmur server binary: a thin bootstrap around `murmur::server::main`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    murmur::server::main().await
}
