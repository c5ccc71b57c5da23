//! Config text, checked at start and as a reload, over arbitrary bytes: no panic, an error's
//! line is in the text, a reload keeps the running backends' indices (properties:
//! `ringmux_core::fuzz::config`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ringmux_core::fuzz::config(data);
});
