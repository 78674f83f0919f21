//! Serves the applications of channelsmultiplexer's test suite for outside
//! conformance suites:
//!
//! - `/ws/`: `echostream`, `altechostream`, `closeafterfirst`, `neveraccept`, `chat`
//! - `/ws/raise/`: `raiseinaccept`, whose consumer fails in connect
//! - `/ws/single/`: `test`, an echo consumer that never accepts
//! - `/ws/lastclose/`: `closeafterfirst` and `closewithcode` (4001, "bye")
//!
//! `cargo run --release --example conformance -- --addr 127.0.0.1:PORT`

#[path = "../src/cli/mod.rs"]
mod cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cli::serve(chanmux_server::conformance_router, "conformance server").await
}
