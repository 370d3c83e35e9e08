//! FCP 2.0 messages on the wire: a sans-IO, incremental decoder and an encoder.
//!
//! A message is a line with its name, then `Key=Value` lines, then a line
//! `EndMessage` (or `End`), or a line `Data` after which `DataLength` raw bytes
//! follow. Lines end with `\n` (a `\r` before it is dropped).
//!
//! The decoder never holds more than [`MAX_LINE_BYTES`] of an unfinished line
//! nor more than [`MAX_HEADER_BYTES`] / [`MAX_FIELDS`] of one message: past
//! those the input is refused before anything grows. It does not read the raw
//! bytes after `Data`: it hands back the message with its `DataLength`, and the
//! session streams the payload, so a payload never sits whole in memory.

use bytes::{Buf as _, BytesMut};

/// Longest line accepted (a name, one `Key=Value` pair, a terminator).
/// URIs are at most 4 KiB, file names a few hundred bytes.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Most bytes of one message's lines together (a site insert names many files).
pub const MAX_HEADER_BYTES: usize = 4 * 1024 * 1024;
/// Most fields in one message (a `ClientPutComplexDir` uses ~3 per file).
pub const MAX_FIELDS: usize = 32 * 1024;
/// Longest message name (the longest FCP name is under 40 characters).
pub const MAX_NAME_BYTES: usize = 64;

/// Why bytes from a client are not a message. Each of these ends the
/// connection after a `ProtocolError`: the stream cannot be resynchronised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("a line is longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong,
    #[error("a message is longer than {MAX_HEADER_BYTES} bytes")]
    MessageTooLong,
    #[error("a message has more than {MAX_FIELDS} fields")]
    TooManyFields,
    #[error("a line is not UTF-8")]
    NotUtf8,
    #[error("`{0}` is not a message name")]
    BadName(String),
    #[error("a line in message {0} is not Key=Value")]
    NotAField(String),
    #[error("the DataLength of message {0} is missing or not a number")]
    BadDataLength(String),
}

/// One FCP message, without its payload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    pub name: String,
    /// Fields in the order received; on a repeated key the last one counts.
    pub fields: Vec<(String, String)>,
    /// Set when the message ended with `Data`: this many raw bytes follow.
    pub data_length: Option<u64>,
}

impl Message {
    pub fn new(name: &str) -> Self {
        Message {
            name: name.to_owned(),
            ..Message::default()
        }
    }

    /// Adds a field (builder style).
    #[must_use]
    pub fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.set(key, value);
        self
    }

    /// Sets a field, replacing an earlier one of the same key. (By value,
    /// like [`Message::with`], so numbers and booleans need no `&`.)
    #[allow(clippy::needless_pass_by_value)]
    pub fn set(&mut self, key: &str, value: impl ToString) {
        let value = value.to_string();
        if let Some(slot) = self.fields.iter_mut().find(|(k, _)| k == key) {
            slot.1 = value;
        } else {
            self.fields.push((key.to_owned(), value));
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean field: `true`/`yes` and `false`/`no` in any case (pyfreenet
    /// sends Python's `False`). `None` when absent; `Some(Err)` when not a boolean.
    pub fn get_bool(&self, key: &str) -> Option<Result<bool, NotABool>> {
        self.get(key).map(parse_bool)
    }

    /// The wire form: name, fields, then `Data` (with `DataLength`) when
    /// `data_length` is set, or `EndMessage`. Newlines inside values are
    /// replaced by spaces, so a value can never start a line of its own.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.fields.len() * 32);
        push_clean(&mut out, &self.name);
        out.push(b'\n');
        for (key, value) in &self.fields {
            if self.data_length.is_some() && key == "DataLength" {
                continue;
            }
            push_clean(&mut out, key);
            out.push(b'=');
            push_clean(&mut out, value);
            out.push(b'\n');
        }
        match self.data_length {
            Some(len) => {
                out.extend_from_slice(format!("DataLength={len}\nData\n").as_bytes());
            }
            None => out.extend_from_slice(b"EndMessage\n"),
        }
        out
    }
}

fn push_clean(out: &mut Vec<u8>, text: &str) {
    out.extend(
        text.bytes()
            .map(|b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
    );
}

/// A field that should be a boolean is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a boolean")]
pub struct NotABool;

/// FCP booleans, as Fred reads them.
pub fn parse_bool(text: &str) -> Result<bool, NotABool> {
    if text.eq_ignore_ascii_case("true") || text.eq_ignore_ascii_case("yes") {
        Ok(true)
    } else if text.eq_ignore_ascii_case("false") || text.eq_ignore_ascii_case("no") {
        Ok(false)
    } else {
        Err(NotABool)
    }
}

/// The incremental decoder: feed it the bytes read so far; it consumes whole
/// lines and returns each message once its terminator has arrived.
#[derive(Debug, Default)]
pub struct Decoder {
    partial: Option<Message>,
    header_bytes: usize,
}

impl Decoder {
    pub fn new() -> Self {
        Decoder::default()
    }

    /// The next complete message in `buf`, consuming its lines; `Ok(None)`
    /// when more bytes are needed. After `Ok(Some(m))` with `m.data_length`
    /// set, the next `DataLength` bytes of input are the payload, not lines.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, ParseError> {
        loop {
            let window = &buf[..buf.len().min(MAX_LINE_BYTES + 1)];
            let Some(end) = window.iter().position(|&b| b == b'\n') else {
                if buf.len() > MAX_LINE_BYTES {
                    return Err(ParseError::LineTooLong);
                }
                return Ok(None);
            };
            let raw = buf.split_to(end + 1);
            self.header_bytes += raw.len();
            if self.header_bytes > MAX_HEADER_BYTES {
                return Err(ParseError::MessageTooLong);
            }
            let mut line = &raw[..end];
            if let Some(stripped) = line.strip_suffix(b"\r") {
                line = stripped;
            }
            let line = std::str::from_utf8(line).map_err(|_| ParseError::NotUtf8)?;
            if let Some(done) = self.line(line)? {
                self.header_bytes = 0;
                return Ok(Some(done));
            }
        }
    }

    /// Handles one line; returns the message when this line ended it.
    fn line(&mut self, line: &str) -> Result<Option<Message>, ParseError> {
        let Some(message) = self.partial.as_mut() else {
            let name = line.trim();
            if name.is_empty() {
                // Blank lines between messages are tolerated.
                self.header_bytes = 0;
                return Ok(None);
            }
            if name.len() > MAX_NAME_BYTES || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(ParseError::BadName(truncate(name)));
            }
            self.partial = Some(Message::new(name));
            return Ok(None);
        };
        match line {
            "EndMessage" | "End" => Ok(self.partial.take()),
            "Data" => {
                let mut message = self.partial.take().unwrap_or_default();
                let length = message
                    .get("DataLength")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or_else(|| ParseError::BadDataLength(message.name.clone()))?;
                message.data_length = Some(length);
                Ok(Some(message))
            }
            "" => Ok(None),
            _ => {
                let (key, value) = line
                    .split_once('=')
                    .ok_or_else(|| ParseError::NotAField(message.name.clone()))?;
                if message.fields.len() >= MAX_FIELDS {
                    return Err(ParseError::TooManyFields);
                }
                message.fields.push((key.to_owned(), value.to_owned()));
                Ok(None)
            }
        }
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(MAX_NAME_BYTES).collect()
}

/// Decodes every message in `bytes`, skipping the payloads; for tests and the
/// fuzz target. Stops at the first error or at an incomplete tail.
pub fn decode_all(bytes: &[u8]) -> Result<Vec<Message>, ParseError> {
    let mut buf = BytesMut::from(bytes);
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    while let Some(message) = decoder.decode(&mut buf)? {
        if let Some(len) = message.data_length {
            let skip = usize::try_from(len).unwrap_or(usize::MAX).min(buf.len());
            buf.advance(skip);
        }
        out.push(message);
    }
    Ok(out)
}

/// Like [`decode_all`], but fed `step` bytes at a time, as a socket might.
fn decode_in_steps(bytes: &[u8], step: usize) -> Result<Vec<Message>, ParseError> {
    let mut buf = BytesMut::new();
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    let mut skip: u64 = 0;
    for piece in bytes.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            if skip > 0 {
                let n = usize::try_from(skip).unwrap_or(usize::MAX).min(buf.len());
                buf.advance(n);
                skip -= n as u64;
                if skip > 0 {
                    break;
                }
            }
            match decoder.decode(&mut buf)? {
                Some(message) => {
                    skip = message.data_length.unwrap_or(0);
                    out.push(message);
                }
                None => break,
            }
        }
    }
    Ok(out)
}

/// The fuzz target's body (`fuzz/fuzz_targets/fcp_parse.rs`), also run by the
/// property tests: decoding never panics; the first byte sets how many
/// bytes arrive at a time, and that never changes what decodes; whatever
/// decodes re-encodes to a message that decodes again to the same name.
pub fn fuzz_decode(data: &[u8]) {
    let Some((&step, input)) = data.split_first() else {
        return;
    };
    let whole = decode_all(input);
    let stepped = decode_in_steps(input, usize::from(step % 64) + 1);
    assert_eq!(whole, stepped);
    for message in whole.iter().flatten() {
        let again = decode_all(&message.encode()).expect("an encoded message decodes");
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].name, message.name);
        assert_eq!(again[0].data_length, message.data_length);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_fields_terminators_and_data_without_end_message() {
        let input = b"ClientHello\nName=x\r\nExpectedVersion=2.0\nEndMessage\n\
            ClientPut\nURI=CHK@\nDataLength=3\nData\nabcWatchGlobal\nEnabled=true\nEnd\n";
        let messages = decode_all(input).unwrap();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[0].get("ExpectedVersion"), Some("2.0"));
        assert_eq!(messages[1].data_length, Some(3));
        assert_eq!(messages[2].name, "WatchGlobal");
    }

    #[test]
    fn waits_for_more_bytes_then_finishes() {
        let mut decoder = Decoder::new();
        let mut buf = BytesMut::from(&b"ClientHello\nNa"[..]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        buf.extend_from_slice(b"me=a\nEndMessage\n");
        let message = decoder.decode(&mut buf).unwrap().unwrap();
        assert_eq!(message.get("Name"), Some("a"));
        assert!(buf.is_empty());
    }

    #[test]
    fn refuses_oversized_and_malformed_input() {
        let long = vec![b'a'; MAX_LINE_BYTES + 2];
        assert_eq!(decode_all(&long), Err(ParseError::LineTooLong));
        let mut field = b"ClientPut\nURI=".to_vec();
        field.extend(std::iter::repeat_n(b'x', 10_000_000));
        assert_eq!(decode_all(&field), Err(ParseError::LineTooLong));
        assert!(matches!(
            decode_all(b"Client Put\nEndMessage\n"),
            Err(ParseError::BadName(_))
        ));
        assert!(matches!(
            decode_all(b"ClientPut\nnoequals\nEndMessage\n"),
            Err(ParseError::NotAField(_))
        ));
        for bad in ["-1", "", "x", "99999999999999999999999"] {
            let input = format!("ClientPut\nDataLength={bad}\nData\n");
            assert!(
                matches!(
                    decode_all(input.as_bytes()),
                    Err(ParseError::BadDataLength(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(decode_all(b"X\n\xff=1\n"), Err(ParseError::NotUtf8));
    }

    #[test]
    fn too_many_fields_is_refused_before_growing() {
        let mut input = b"ClientPutComplexDir\n".to_vec();
        for i in 0..=MAX_FIELDS {
            input.extend_from_slice(format!("F{i}=1\n").as_bytes());
        }
        assert_eq!(decode_all(&input), Err(ParseError::TooManyFields));
    }

    #[test]
    fn booleans_in_any_case() {
        for t in ["true", "True", "TRUE", "yes"] {
            assert_eq!(parse_bool(t), Ok(true));
        }
        for f in ["false", "False", "no"] {
            assert_eq!(parse_bool(f), Ok(false));
        }
        assert_eq!(parse_bool("1"), Err(NotABool));
    }

    #[test]
    fn encoding_never_lets_a_value_start_a_line() {
        let message = Message::new("ProtocolError").with("ExtraDescription", "a\nEndMessage\nb");
        let back = decode_all(&message.encode()).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].get("ExtraDescription"), Some("a EndMessage b"));
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        (
            "[A-Za-z][A-Za-z0-9]{0,30}",
            proptest::collection::vec(("[A-Za-z][A-Za-z0-9.]{0,20}", "[^\n\r]{0,40}"), 0..12),
            proptest::option::of(0u64..1000),
        )
            .prop_map(|(name, fields, data_length)| {
                let mut message = Message::new(&name);
                for (k, v) in fields {
                    if k != "DataLength" {
                        message.set(&k, v);
                    }
                }
                if let Some(len) = data_length {
                    message.set("DataLength", len);
                    message.data_length = Some(len);
                }
                message
            })
    }

    proptest! {
        #[test]
        fn round_trip(messages in proptest::collection::vec(arb_message(), 1..5)) {
            let mut wire = Vec::new();
            for m in &messages {
                wire.extend(m.encode());
                wire.extend(std::iter::repeat_n(b'z', m.data_length.unwrap_or(0) as usize));
            }
            prop_assert_eq!(decode_all(&wire).unwrap(), messages);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            fuzz_decode(&bytes);
        }

        #[test]
        fn byte_at_a_time_decodes_the_same(
            messages in proptest::collection::vec(arb_message(), 1..5),
            step in 1usize..40,
        ) {
            let mut wire = Vec::new();
            for m in &messages {
                wire.extend(m.encode());
                wire.extend(std::iter::repeat_n(b'z', m.data_length.unwrap_or(0) as usize));
            }
            prop_assert_eq!(decode_in_steps(&wire, step).unwrap(), messages.clone());
            let mut fuzz_input = vec![step as u8];
            fuzz_input.extend_from_slice(&wire);
            fuzz_decode(&fuzz_input);
        }
    }
}
