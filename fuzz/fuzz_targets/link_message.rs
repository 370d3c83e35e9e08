//! One decrypted link plaintext: the padded postcard envelope. Decoding must
//! never panic, and whatever decodes must re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    warren_node::link::message::fuzz_decode(data);
});
