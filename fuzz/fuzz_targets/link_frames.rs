//! A byte stream from a peer: split by the link's `u16` length codec (with
//! its frame size cap), each frame then decoded as a link plaintext.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    warren_node::link::frame::fuzz_frames(data);
});
