//! A raw FCP 2.0 client for the tests that speak the protocol byte by byte
//! (pyfreenet's own client is driven from `tests/fcp/`).

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

/// Generous: a read that takes this long means the node hung.
pub const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// One message from the node: its name, fields and trailing data (if any).
#[derive(Debug, Default)]
pub struct Reply {
    pub name: String,
    pub fields: HashMap<String, String>,
    pub data: Vec<u8>,
}

pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// A connection that has not said `ClientHello` yet.
    pub fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        Client {
            writer: stream.try_clone().expect("clone"),
            reader: BufReader::new(stream),
        }
    }

    /// A connection that said `ClientHello` with `name` and got `NodeHello`.
    pub fn hello_as(port: u16, name: &str) -> Client {
        let mut client = Client::connect(port);
        client.say_hello(name);
        client
    }

    /// `ClientHello` with `name` on this connection; checks the `NodeHello`.
    pub fn say_hello(&mut self, name: &str) {
        self.send(
            format!("ClientHello\nName={name}\nExpectedVersion=2.0\nEndMessage\n").as_bytes(),
        );
        let hello = self.read().expect("NodeHello");
        assert_eq!(hello.name, "NodeHello");
        assert!(hello.fields.contains_key("ConnectionIdentifier"));
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("send");
    }

    /// Sends `bytes` where the node may close the connection part way.
    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// The next message, or `None` once the node closed the connection.
    pub fn read(&mut self) -> Option<Reply> {
        let mut reply = Reply::default();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).expect("read") == 0 {
                return None;
            }
            let line = line.trim_end_matches('\n');
            if reply.name.is_empty() {
                line.clone_into(&mut reply.name);
            } else if line == "EndMessage" {
                return Some(reply);
            } else if line == "Data" {
                let len: usize = reply.fields["DataLength"].parse().expect("length");
                reply.data = vec![0; len];
                self.reader.read_exact(&mut reply.data).expect("data");
                return Some(reply);
            } else {
                let (k, v) = line.split_once('=').expect("field");
                reply.fields.insert(k.to_owned(), v.to_owned());
            }
        }
    }

    /// Reads until a message named one of `names` for `identifier`.
    pub fn until(&mut self, identifier: &str, names: &[&str]) -> Reply {
        loop {
            let reply = self.read().expect("connection closed while waiting");
            if reply.fields.get("Identifier").map(String::as_str) == Some(identifier)
                && names.contains(&reply.name.as_str())
            {
                return reply;
            }
        }
    }

    /// Reads until the node closes the connection.
    pub fn closed(&mut self) -> bool {
        while self.read().is_some() {}
        true
    }

    /// The messages `ListPersistentRequests` gives for `identifier`.
    pub fn listed(&mut self, identifier: &str) -> Vec<Reply> {
        self.send(b"ListPersistentRequests\nEndMessage\n");
        let mut seen = Vec::new();
        loop {
            let reply = self.read().expect("listing");
            if reply.name == "EndListPersistentRequests" {
                return seen;
            }
            if reply.fields.get("Identifier").map(String::as_str) == Some(identifier) {
                seen.push(reply);
            }
        }
    }
}
