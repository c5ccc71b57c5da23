//! A virtual server's edits over arbitrary bytes: fixed arguments always set or the call
//! refused, edited tools JSON without them (properties: `ringmux_core::fuzz::shape`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ringmux_core::fuzz::shape(data);
});
