//! W3C `traceparent` over arbitrary bytes: no panic, and what it accepts writes back the
//! same (properties: `ringmux_core::fuzz::traceparent`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ringmux_core::fuzz::traceparent(data);
});
