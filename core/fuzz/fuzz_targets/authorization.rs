//! The `Authorization` header reader and the challenge writer against arbitrary bytes
//! (properties: `ringmux_core::fuzz::authorization`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ringmux_core::fuzz::authorization(data);
});
