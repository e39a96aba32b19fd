//! User, group and conversation ids, as text and in paths.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| im_http::fuzzing::ids(data));
