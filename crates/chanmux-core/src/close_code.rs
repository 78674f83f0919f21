//! WebSocket close codes used by the multiplexer (RFC 6455, section 7.4.1).

/// The peer closed normally.
pub const NORMAL: u16 = 1000;
/// The server is going away (shutdown).
pub const AWAY: u16 = 1001;
/// The peer broke the WebSocket protocol (a bad opcode, an oversized or
/// fragmented control frame).
pub const PROTOCOL: u16 = 1002;
/// The peer closed without a status code.
pub const NO_STATUS: u16 = 1005;
/// The connection dropped without a closing handshake.
pub const ABNORMAL: u16 = 1006;
/// A text message was not valid UTF-8.
pub const INVALID_DATA: u16 = 1007;
/// A frame broke the protocol: used by `strict` mode for invalid frames,
/// and when a message does not complete within the message timeout.
pub const POLICY: u16 = 1008;
/// A message exceeded the transport's hard size limit.
pub const SIZE: u16 = 1009;
/// A consumer failed (returned an error or panicked) and no stream was left.
pub const ERROR: u16 = 1011;
/// The client did not read what it was sent in time ("slow client").
pub const AGAIN: u16 = 1013;
