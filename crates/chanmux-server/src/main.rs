//! `chanmux-server`: the demo server. See the README.

mod cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cli::serve(
        chanmux_server::demo_router,
        "demo server (page at /, WebSocket at /ws/)",
    )
    .await
}
