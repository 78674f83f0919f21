//! Telling the one panic the fuzz consumers cause on purpose from any other.
//!
//! A consumer panic is contained by the library, but the panic hook still
//! runs first: libFuzzer's hook aborts the process on every panic, which
//! would report the deliberate one as a crash. This hook stays silent for it
//! and counts every other panic on the thread (a panic inside a Tokio task
//! would otherwise only surface as a `JoinError` the communicator ignores)
//! before handing it to the previous hook.

use std::cell::Cell;
use std::panic::{self, PanicHookInfo};
use std::sync::Once;

/// The message of the deliberate panic of the `panicker` stream.
pub(crate) const DELIBERATE: &str = "chanmux-fuzz: deliberate panic in receive_text";

thread_local! {
    static UNEXPECTED: Cell<usize> = const { Cell::new(0) };
}

/// Installs the hook once per process, wrapping whatever hook was there.
pub(crate) fn install_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if is_deliberate(info) {
                return;
            }
            UNEXPECTED.with(|n| n.set(n.get() + 1));
            previous(info);
        }));
    });
}

/// How many panics other than the deliberate one this thread has seen.
pub(crate) fn unexpected() -> usize {
    UNEXPECTED.with(Cell::get)
}

fn is_deliberate(info: &PanicHookInfo<'_>) -> bool {
    info.payload_as_str() == Some(DELIBERATE)
}
