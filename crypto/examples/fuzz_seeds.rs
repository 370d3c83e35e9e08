//! Writes the seed corpora of the `block_decode` and `ssk_block` fuzz
//! targets: whole blocks with their keys (CHK blocks; KSK blocks, signed),
//! so the fuzzer starts from inputs that reach the decoders (random bytes
//! almost never get past verification).
//!
//! `cargo run -p warren-crypto --example fuzz_seeds -- fuzz/corpus`

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: fuzz_seeds <corpus root, e.g. fuzz/corpus>")?,
    );
    let chk_dir = dir.join("block_decode");
    let ssk_dir = dir.join("ssk_block");
    std::fs::create_dir_all(&chk_dir)?;
    std::fs::create_dir_all(&ssk_dir)?;
    let payload = warren_crypto::BLOCK_PAYLOAD;
    let contents: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("one-byte", vec![0x41]),
        ("text", b"hello warren, a small document".to_vec()),
        ("half", (0..payload / 2).map(|i| (i % 251) as u8).collect()),
        ("full-less-one", vec![0x5a; payload - 1]),
        ("full", (0..payload).map(|i| (i * 7 % 256) as u8).collect()),
    ];
    for (name, content) in contents {
        let seed = warren_crypto::fuzzing::block_seed(&content)?;
        std::fs::write(chk_dir.join(format!("seed-{name}")), seed)?;
    }
    let inline = warren_crypto::ssk::SSK_PAYLOAD;
    let signed: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("text", b"a keyword note".to_vec()),
        ("most", vec![0x33; inline / 2]),
    ];
    for (name, content) in signed {
        let seed = warren_crypto::fuzzing::ssk_block_seed(&format!("fuzz-seed-{name}"), &content)?;
        std::fs::write(ssk_dir.join(format!("seed-{name}")), seed)?;
    }
    Ok(())
}
