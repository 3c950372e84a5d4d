//! The murmur server binary: a thin bootstrap around `murmur::http::main`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    murmur::http::main().await
}
