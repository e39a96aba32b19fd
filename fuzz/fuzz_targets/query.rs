//! Query strings: history pages, list limits, long polls, cursors, tokens.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| im_http::fuzzing::query(data));
