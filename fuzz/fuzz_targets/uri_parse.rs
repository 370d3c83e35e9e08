//! Fuzzes URI text (`CHK@`, `SSK@`, `USK@`, `KSK@`); the body is shared with the crate's proptests.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    warren_crypto::fuzzing::parse_uri(data);
    warren_crypto::fuzzing::parse_any_uri(data);
});
