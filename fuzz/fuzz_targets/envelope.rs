//! `Envelope::parse` and `wrap` on arbitrary bytes (see `chanmux_fuzz::envelope`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chanmux_fuzz::envelope(data));
