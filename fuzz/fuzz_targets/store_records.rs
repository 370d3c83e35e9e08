//! Fuzzes the decoders of the store's on-disk index, LRU and format records;
//! the body is shared with the crate's proptest (`record::decode_any`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    warren_store::record::decode_any(data);
});
