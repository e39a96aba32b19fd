//! Command sequences on the engine, checked against the reference model.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| im_http::fuzzing::commands(data));
