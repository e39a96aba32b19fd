//! The `Last-Event-ID` header of a resuming event stream.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| im_http::fuzzing::last_event_id(data));
