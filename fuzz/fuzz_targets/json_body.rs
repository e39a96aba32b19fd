//! A route's JSON request body, parsed as the server parses it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| im_http::fuzzing::json_body(data));
