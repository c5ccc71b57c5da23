//! The masking engine over arbitrary bytes: no panic, JSON out, and masking is idempotent
//! (properties: `ringmux_core::fuzz::mask`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ringmux_core::fuzz::mask(data);
});
