//! The HTTP/1.1 head parsers and the chunked decoder against arbitrary bytes (properties:
//! `ringmux_core::fuzz::{request_head, chunked}`). The first byte picks the chunked split point.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ringmux_core::fuzz::request_head(data);
    if let Some((&split, rest)) = data.split_first() {
        ringmux_core::fuzz::chunked(rest, usize::from(split));
    }
});
