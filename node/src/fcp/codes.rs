//! Freenet's numeric error codes and their descriptions, as FCP 2.0 clients
//! expect them in `ProtocolError`, `GetFailed` and `PutFailed`.

use super::message::Message;

/// `ProtocolError` codes (a problem with the client's message, not the network).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    ClientHelloMustBeFirst = 1,
    NoLateClientHellos = 2,
    MessageParseError = 3,
    UriParseError = 4,
    MissingField = 5,
    ErrorParsingNumber = 6,
    InvalidMessage = 7,
    InvalidField = 8,
    FileNotFound = 9,
    DiskTargetExists = 10,
    CouldNotCreateFile = 12,
    CouldNotWriteFile = 13,
    NoSuchIdentifier = 15,
    NotSupported = 16,
    InternalError = 17,
    ShuttingDown = 18,
    AccessDenied = 24,
    DirectDiskAccessDenied = 25,
    CouldNotReadFile = 26,
    TooManyFilesInInsert = 34,
    WrongReturnType = 36,
}

impl Protocol {
    pub fn description(self) -> &'static str {
        match self {
            Protocol::ClientHelloMustBeFirst => "ClientHello must be first message",
            Protocol::NoLateClientHellos => "No late ClientHello's accepted",
            Protocol::MessageParseError => "Unknown message parsing error",
            Protocol::UriParseError => "Error parsing freenet URI",
            Protocol::MissingField => "Missing field",
            Protocol::ErrorParsingNumber => "Error parsing a numeric field",
            Protocol::InvalidMessage => "Don't know what to do with message",
            Protocol::InvalidField => "Invalid field value",
            Protocol::FileNotFound => "File not found, not a file or not readable",
            Protocol::DiskTargetExists => {
                "Disk target exists, refusing to overwrite for security reasons"
            }
            Protocol::CouldNotCreateFile => "Could not create file",
            Protocol::CouldNotWriteFile => "Could not write file",
            Protocol::NoSuchIdentifier => "No such identifier",
            Protocol::NotSupported => "Not supported",
            Protocol::InternalError => "Internal error",
            Protocol::ShuttingDown => "Shutting down",
            Protocol::AccessDenied => "Access denied",
            Protocol::DirectDiskAccessDenied => {
                "Direct Disk Access operation denied: did you send a FileHash field? Did you use TestDDA?"
            }
            Protocol::CouldNotReadFile => "Could not read file",
            Protocol::TooManyFilesInInsert => "Too many files in a single folder on a freesite insert",
            Protocol::WrongReturnType => "Not supported for that return type",
        }
    }
}

/// A `ProtocolError` to send: code, extra words, whether the connection closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    pub code: Protocol,
    pub extra: String,
    pub fatal: bool,
    pub identifier: Option<String>,
    pub global: bool,
}

impl ProtocolError {
    pub fn new(code: Protocol, extra: impl Into<String>) -> Self {
        ProtocolError {
            code,
            extra: extra.into(),
            fatal: false,
            identifier: None,
            global: false,
        }
    }

    #[must_use]
    pub fn fatal(mut self) -> Self {
        self.fatal = true;
        self
    }

    #[must_use]
    pub fn for_request(mut self, identifier: Option<&str>, global: bool) -> Self {
        self.identifier = identifier.map(str::to_owned);
        self.global = global;
        self
    }

    pub fn to_message(&self) -> Message {
        let mut m = Message::new("ProtocolError");
        if let Some(id) = &self.identifier {
            m.set("Identifier", id);
        }
        m.set("Code", self.code as u32);
        m.set("CodeDescription", self.code.description());
        if !self.extra.is_empty() {
            m.set("ExtraDescription", &self.extra);
        }
        m.set("Fatal", self.fatal);
        m.set("Global", self.global);
        m
    }
}

/// `GetFailed` codes (Freenet's `FetchException` modes used here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fetch {
    NotInArchive = 10,
    BucketError = 12,
    DataNotFound = 13,
    RejectedOverload = 15,
    InternalError = 17,
    InvalidUri = 20,
    TooBig = 21,
    NotEnoughPathComponents = 24,
    Cancelled = 25,
    AllDataNotFound = 28,
}

impl Fetch {
    pub fn short(self) -> &'static str {
        match self {
            Fetch::NotInArchive => "Not in archive",
            Fetch::BucketError => "Temporary files error",
            Fetch::DataNotFound => "Data not found",
            Fetch::RejectedOverload => "Timeout or overload",
            Fetch::InternalError => "Internal error",
            Fetch::InvalidUri => "Invalid URI",
            Fetch::TooBig => "Too big",
            Fetch::NotEnoughPathComponents => "Not enough path components",
            Fetch::Cancelled => "Cancelled",
            Fetch::AllDataNotFound => "All data not found",
        }
    }

    pub fn fatal(self) -> bool {
        !matches!(self, Fetch::RejectedOverload | Fetch::DataNotFound)
    }
}

/// `PutFailed` codes (Freenet's `InsertException` modes used here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Insert {
    InvalidUri = 1,
    BucketError = 2,
    InternalError = 3,
    RejectedOverload = 4,
    RouteNotFound = 5,
    Collision = 9,
    Cancelled = 10,
}

impl Insert {
    pub fn short(self) -> &'static str {
        match self {
            Insert::InvalidUri => "Invalid URI",
            Insert::BucketError => "Temp files error",
            Insert::InternalError => "Internal error",
            Insert::RejectedOverload => "Timeout or overload",
            Insert::RouteNotFound => "Route not found",
            Insert::Collision => "Collision",
            Insert::Cancelled => "Cancelled",
        }
    }

    pub fn fatal(self) -> bool {
        !matches!(self, Insert::RejectedOverload | Insert::RouteNotFound)
    }
}

/// A `GetFailed` message.
pub fn get_failed(identifier: &str, global: bool, code: Fetch, extra: &str) -> Message {
    Message::new("GetFailed")
        .with("Identifier", identifier)
        .with("Global", global)
        .with("Code", code as u32)
        .with("CodeDescription", extra)
        .with("ShortCodeDescription", code.short())
        .with("ExtraDescription", extra)
        .with("Fatal", code.fatal())
}

/// A `PutFailed` message.
pub fn put_failed(identifier: &str, global: bool, code: Insert, extra: &str) -> Message {
    Message::new("PutFailed")
        .with("Identifier", identifier)
        .with("Global", global)
        .with("Code", code as u32)
        .with("CodeDescription", extra)
        .with("ShortCodeDescription", code.short())
        .with("ExtraDescription", extra)
        .with("Fatal", code.fatal())
}
