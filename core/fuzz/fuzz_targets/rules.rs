//! Authorization rules (CEL) over arbitrary claims and arguments: evaluation never panics and
//! the decision split between list time and call time equals the one made at once
//! (properties: `ringmux_core::fuzz::rules`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ringmux_core::fuzz::rules(data);
});
