//! The SSE decoder against arbitrary bytes, fed whole and split (properties:
//! `ringmux_core::fuzz::sse`). The first byte picks the split point.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some((&split, rest)) = data.split_first() {
        ringmux_core::fuzz::sse(rest, usize::from(split));
    }
});
