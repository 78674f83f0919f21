//! `chanmux-load`'s engine: a load generator for WebSocket servers that
//! speak `{"stream", "payload"}` (or plain echo, for a ceiling).
//!
//! - [`echo`]: closed-loop echo with every reply checked ([`verify`]).
//! - [`idle`]: many held connections, spread over 127.0.0.x source addresses.
//! - [`churn`]: connections subscribing to and unsubscribing from many streams.
//! - [`fanout`]: N members of one room; time until the last has each message,
//!   and the server's CPU per delivery ([`cpu`]).
//! - [`chaos`]: many actors misbehaving at once, then health and leak checks.
//!
//! [`ceiling`] holds what the ceiling servers share with chanmux.
//!
//! The figures it prints are measurements, not tests: nothing here asserts a time.

pub mod ceiling;
pub mod chaos;
pub mod churn;
pub mod cpu;
pub mod echo;
pub mod fanout;
pub mod idle;
pub mod stats;
pub mod verify;

use std::io;

/// Explains an error that means the process is out of file descriptors.
pub fn fd_limit_hint(error: &io::Error) -> Option<String> {
    (error.raw_os_error() == Some(24)).then(|| {
        "out of file descriptors: raise the limit with `ulimit -n <N>` (up to the hard limit, \
         `ulimit -Hn`), or split the connections over several load-generator processes"
            .to_owned()
    })
}
