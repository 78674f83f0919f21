//! What the ceiling servers (`chanmux-bare-echo`, `chanmux-bare-broadcast`)
//! share: chanmux's own connection defaults, read from
//! [`ConnectionConfig::default`] so a same-run ratio always compares the same
//! buffers and queues, and the way they listen.

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use chanmux::ConnectionConfig;

/// chanmux's initial read buffer per connection (1 KiB).
pub fn default_read_buffer() -> usize {
    ConnectionConfig::default().read_buffer_size
}

/// How many frames chanmux queues for one client (64) before a group
/// frame for it is dropped.
pub fn outbound_capacity() -> usize {
    ConnectionConfig::default().outbound_capacity
}

/// `ws` with chanmux's write buffer and message limit, and `read_buffer`.
pub fn configure(ws: WebSocketUpgrade, read_buffer: usize) -> WebSocketUpgrade {
    let defaults = ConnectionConfig::default();
    ws.read_buffer_size(read_buffer)
        .write_buffer_size(defaults.write_buffer_size)
        .max_message_size(defaults.max_message_size)
}

/// Binds `addr`, prints `listening on http://ADDR` (what the bench scripts
/// wait for), and serves `app` until the process ends.
///
/// # Errors
///
/// When `addr` cannot be bound or serving fails.
pub async fn serve(addr: SocketAddr, app: Router) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await.context("serving")
}
