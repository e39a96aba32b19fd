//! Bearer tokens: text, signed claims, signed headers.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| im_http::fuzzing::token(data));
