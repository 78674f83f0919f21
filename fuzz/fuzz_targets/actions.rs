//! Client action sequences through the communicator (see `chanmux_fuzz::actions`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chanmux_fuzz::actions(data));
