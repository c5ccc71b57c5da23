//! The JSON-RPC envelope parser against arbitrary bytes (properties: `ringmux_core::fuzz::envelope`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringmux_core::fuzz::envelope(data));
