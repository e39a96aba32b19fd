//! The sled store's key layouts: decoding never panics and round-trips.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| im_store_sled::fuzzing::keys(data));
