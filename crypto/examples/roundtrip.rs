//! Encodes a small file into one CHK block, prints its URI, and decodes it back.
//!
//! `cargo run -p warren-crypto --example roundtrip -- FILE`

use std::process::ExitCode;

use warren_crypto::{ChkBlock, ChkUri, Extra};

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: roundtrip FILE");
        return ExitCode::FAILURE;
    };
    let data = match std::fs::read(&path) {
        Ok(data) => data,
        Err(err) => {
            eprintln!("cannot read {path}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let (block, key) = match ChkBlock::encode(&data) {
        Ok(pair) => pair,
        Err(err) => {
            eprintln!("cannot encode {path}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let uri = ChkUri::new(key, Extra::DATA);
    println!("{uri}");
    let decoded = ChkBlock::verify(uri.key.routing, block.into_bytes())
        .and_then(|checked| checked.decode(&uri.key.crypto));
    match decoded {
        Ok(back) if back == data => {
            eprintln!("{} bytes encoded, verified and decoded intact", data.len());
            ExitCode::SUCCESS
        }
        Ok(_) => {
            eprintln!("decoded content differs");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("decode failed: {err}");
            ExitCode::FAILURE
        }
    }
}
