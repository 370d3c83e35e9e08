//! Serde helpers that refuse oversized sequences and strings while decoding,
//! before allocating for them.
//!
//! Postcard prefixes every sequence and string with its length; a hostile
//! document could claim billions of elements. These visitors check each
//! claimed or actual length against a named limit first.

use core::fmt;
use core::marker::PhantomData;

use serde::de::{Deserializer, Error as _, SeqAccess, Visitor};
use serde::Deserialize;

struct VecVisitor<T, const N: usize>(PhantomData<T>);

impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for VecVisitor<T, N> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a sequence of at most {N} elements")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        if let Some(claimed) = seq.size_hint() {
            if claimed > N {
                return Err(A::Error::custom(format_args!(
                    "sequence of {claimed} elements exceeds the limit of {N}"
                )));
            }
        }
        // The claim is bounded by N now, but may still be a lie: grow as elements arrive.
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(N).min(64));
        while let Some(item) = seq.next_element()? {
            if out.len() == N {
                return Err(A::Error::custom(format_args!(
                    "sequence exceeds the limit of {N} elements"
                )));
            }
            out.push(item);
        }
        Ok(out)
    }
}

/// Deserializes a `Vec<T>` of at most `N` elements.
pub(crate) fn vec<'de, D, T, const N: usize>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_seq(VecVisitor::<T, N>(PhantomData))
}

struct StrVisitor<const N: usize>;

impl<const N: usize> Visitor<'_> for StrVisitor<N> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a string of at most {N} bytes")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
        if text.len() > N {
            return Err(E::custom(format_args!(
                "string of {} bytes exceeds the limit of {N}",
                text.len()
            )));
        }
        Ok(text.to_owned())
    }
}

/// Deserializes a `String` of at most `N` bytes.
pub(crate) fn string<'de, D, const N: usize>(deserializer: D) -> Result<String, D::Error>
where
    D: Deserializer<'de>,
{
    deserializer.deserialize_str(StrVisitor::<N>)
}

struct OptStrVisitor<const N: usize>;

impl<'de, const N: usize> Visitor<'de> for OptStrVisitor<N> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an optional string of at most {N} bytes")
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        string::<D, N>(deserializer).map(Some)
    }
}

/// Deserializes an `Option<String>` whose string is at most `N` bytes.
pub(crate) fn opt_string<'de, D, const N: usize>(
    deserializer: D,
) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    deserializer.deserialize_option(OptStrVisitor::<N>)
}
