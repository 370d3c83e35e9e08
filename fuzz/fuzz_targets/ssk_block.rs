//! Fuzzes a routing key, a crypto key and SSK block bytes; the body is shared with the crate's proptests.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    warren_crypto::fuzzing::verify_and_decode_ssk_block(data);
});
