//! Fuzzes URI text (`CHK@...`); the body is shared with the crate's proptests.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    warren_crypto::fuzzing::parse_uri(data);
});
