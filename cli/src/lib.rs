//! The library behind the `warren` binary: each command's code, and the
//! typed local-network harness (`testnet`) that the command, the end-to-end
//! tests and the network benchmark all drive, so there is one of each thing.
//!
//! The binary (`src/main.rs`) only parses arguments and prints errors.

pub mod api_client;
pub mod config;
pub mod demo;
pub mod fec_worker;
pub mod fetch;
pub mod insert;
pub mod keys;
pub mod node;
pub mod reinsert;
pub mod runfile;
pub mod sim;
pub mod status;
pub mod testfile;
pub mod testnet;
