//! Serializing values to postcard bytes and back, with a size limit on both sides.

use std::any::type_name;

use bytes::{BufMut as _, Bytes, BytesMut};
use postcard::ser_flavors::{Flavor, Size};
use serde::{Deserialize, Serialize};

use crate::WireError;

/// The default limit on one encoded value (and one frame's payload): 4 MiB.
pub const DEFAULT_MAX_SIZE: usize = 4 * 1024 * 1024;

/// The largest limit a [`Codec`] accepts: what a frame's 32-bit length field can
/// describe, less the header, so that a whole frame's size fits in 32 bits.
pub const MAX_SIZE_LIMIT: usize = u32::MAX as usize - crate::HEADER_LEN;

/// Encodes and decodes values in ballot's binary format (postcard), refusing any
/// encoding larger than [`max_size`](Codec::max_size) bytes.
///
/// Encoding stops as soon as the output passes the limit, so an oversized value never
/// allocates more than the limit; decoding refuses oversized input before reading it,
/// and garbage input yields [`WireError::Malformed`] or [`WireError::TrailingBytes`]:
/// the input must be exactly one value.
///
/// ```
/// use ballot_wire::{Codec, WireError};
///
/// let codec = Codec::new(16);
/// let bytes = codec.encode(&(7u64, "seven"))?;
/// assert_eq!(codec.decode::<(u64, String)>(&bytes)?, (7, "seven".to_owned()));
/// assert!(matches!(codec.encode(&"x".repeat(100)), Err(WireError::TooLarge { size: 101, max: 16 })));
/// assert!(matches!(codec.decode::<u64>(&[0xff]), Err(WireError::Malformed { .. })));
/// # Ok::<(), WireError>(())
/// ```
///
/// # Limits of the format
///
/// Postcard is not self-describing: `#[serde(flatten)]`, `#[serde(untagged)]`,
/// `skip_serializing_if` and `deserialize_any` do not work, and types must match on
/// both ends (see [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION)). Decoding allocates at
/// most a small multiple of the input size, except that serde pre-allocates up to 1 MiB
/// for a declared map length. Two shapes are unsafe to decode from untrusted input and
/// must not appear in wire types: sequences of zero-sized elements (`Vec<()>`: a
/// declared length costs no input bytes, so decoding loops that many times) and
/// unboundedly recursive types (deep nesting exhausts the stack).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Codec {
    max_size: usize,
}

impl Default for Codec {
    fn default() -> Self {
        Codec::new(DEFAULT_MAX_SIZE)
    }
}

impl Codec {
    /// A codec refusing encodings over `max_size` bytes (capped at [`MAX_SIZE_LIMIT`]).
    #[must_use]
    pub const fn new(max_size: usize) -> Self {
        Codec { max_size: if max_size > MAX_SIZE_LIMIT { MAX_SIZE_LIMIT } else { max_size } }
    }

    /// The limit, in bytes.
    #[must_use]
    pub const fn max_size(&self) -> usize {
        self.max_size
    }

    /// Encodes `value` into a new buffer.
    ///
    /// # Errors
    /// [`WireError::TooLarge`] when the encoding exceeds the limit;
    /// [`WireError::Unencodable`] when postcard cannot represent the value.
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Bytes, WireError> {
        let mut buf = BytesMut::new();
        self.encode_into(value, &mut buf)?;
        Ok(buf.freeze())
    }

    /// Appends the encoding of `value` to `dst` and returns its length. On error `dst`
    /// is left as it was.
    ///
    /// # Errors
    /// As for [`encode`](Codec::encode).
    pub fn encode_into<T: Serialize + ?Sized>(&self, value: &T, dst: &mut BytesMut) -> Result<usize, WireError> {
        let start = dst.len();
        let flavor = Bounded { end: start.saturating_add(self.max_size), buf: dst };
        match postcard::serialize_with_flavor(value, flavor) {
            Ok(()) => Ok(dst.len() - start),
            Err(e) => {
                dst.truncate(start);
                Err(match e {
                    postcard::Error::SerializeBufferFull => {
                        WireError::TooLarge { size: self.measure(value)?, max: self.max_size as u64 }
                    }
                    other => unencodable::<T>(&other),
                })
            }
        }
    }

    /// The length of `value`'s encoding, computed without allocating.
    ///
    /// # Errors
    /// As for [`encode`](Codec::encode).
    pub fn encoded_len<T: Serialize + ?Sized>(&self, value: &T) -> Result<usize, WireError> {
        let size = self.measure(value)?;
        if size > self.max_size as u64 {
            return Err(WireError::TooLarge { size, max: self.max_size as u64 });
        }
        // Fits in usize: it is at most `max_size`.
        Ok(size as usize)
    }

    fn measure<T: Serialize + ?Sized>(&self, value: &T) -> Result<u64, WireError> {
        postcard::serialize_with_flavor(value, Size::default()).map(|n| n as u64).map_err(|e| unencodable::<T>(&e))
    }

    /// Decodes exactly one `T` from `bytes`.
    ///
    /// Accepts any `T: Deserialize<'de>`, so both owned types and types borrowing from
    /// `bytes` (`&str`, `&[u8]`) work.
    ///
    /// # Errors
    /// [`WireError::TooLarge`] when `bytes` exceeds the limit (checked first);
    /// [`WireError::Malformed`] when `bytes` is not a valid encoding of `T`;
    /// [`WireError::TrailingBytes`] when bytes are left after the value.
    pub fn decode<'de, T: Deserialize<'de>>(&self, bytes: &'de [u8]) -> Result<T, WireError> {
        if bytes.len() > self.max_size {
            return Err(WireError::TooLarge { size: bytes.len() as u64, max: self.max_size as u64 });
        }
        let (value, rest) = decode_prefix::<T>(bytes)?;
        if !rest.is_empty() {
            return Err(WireError::TrailingBytes { what: type_name::<T>(), count: rest.len() });
        }
        Ok(value)
    }
}

/// Decodes one `T` from the front of `bytes` and returns it with the bytes after it.
pub(crate) fn decode_prefix<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<(T, &'de [u8]), WireError> {
    postcard::take_from_bytes(bytes)
        .map_err(|e| WireError::Malformed { what: type_name::<T>(), reason: postcard_reason(&e) })
}

fn unencodable<T: ?Sized>(e: &postcard::Error) -> WireError {
    WireError::Unencodable { what: type_name::<T>(), reason: postcard_reason(e) }
}

fn postcard_reason(e: &postcard::Error) -> String {
    match e {
        postcard::Error::DeserializeUnexpectedEnd => "input ends inside the value".to_owned(),
        postcard::Error::SerdeDeCustom => "invalid value for the type (unknown enum variant or field value)".to_owned(),
        other => other.to_string(),
    }
}

/// [`Codec::default().encode(value)`](Codec::encode): encodes with the default 4 MiB limit.
///
/// # Errors
/// As for [`Codec::encode`].
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, WireError> {
    Codec::default().encode(value)
}

/// [`Codec::default().decode(bytes)`](Codec::decode): decodes with the default 4 MiB limit.
///
/// # Errors
/// As for [`Codec::decode`].
pub fn decode<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, WireError> {
    Codec::default().decode(bytes)
}

/// A postcard output that appends to a `BytesMut` and fails once it would grow past `end`.
struct Bounded<'a> {
    buf: &'a mut BytesMut,
    end: usize,
}

impl Flavor for Bounded<'_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if data.len() > self.end - self.buf.len() {
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        if self.buf.len() >= self.end {
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.buf.put_u8(byte);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serializer;

    use super::*;

    #[test]
    fn round_trips_and_borrows() {
        let codec = Codec::default();
        let value: BTreeMap<String, Vec<u64>> = [("a".to_owned(), vec![1, u64::MAX]), ("b".into(), vec![])].into();
        let bytes = codec.encode(&value).unwrap();
        assert_eq!(codec.decode::<BTreeMap<String, Vec<u64>>>(&bytes).unwrap(), value);
        let text = codec.encode("borrowed").unwrap();
        let s: &str = codec.decode(&text).unwrap();
        assert_eq!(s, "borrowed");
        assert_eq!(codec.encoded_len(&value).unwrap(), bytes.len());
    }

    #[test]
    fn oversized_encoding_is_refused_and_leaves_dst_untouched() {
        let codec = Codec::new(100);
        let mut dst = BytesMut::from(&b"prefix"[..]);
        let big = vec![7u8; 1_000];
        // A u8 sequence: varint length (2 bytes) + 1000 bytes.
        let err = codec.encode_into(&big, &mut dst).unwrap_err();
        assert_eq!(err, WireError::TooLarge { size: 1_002, max: 100 });
        assert_eq!(&dst[..], b"prefix", "a failed encode must not leave partial output");
        assert_eq!(codec.encoded_len(&big), Err(WireError::TooLarge { size: 1_002, max: 100 }));
        // Exactly at the limit is fine.
        let fits = vec![1u8; 99];
        assert_eq!(codec.encode_into(&fits, &mut dst).unwrap(), 100);
        assert_eq!(dst.len(), 106);
    }

    #[test]
    fn oversized_input_is_refused_before_decoding() {
        let codec = Codec::new(4);
        assert_eq!(codec.decode::<u8>(&[0; 5]), Err(WireError::TooLarge { size: 5, max: 4 }));
    }

    #[test]
    fn garbage_and_trailing_bytes_are_errors() {
        assert!(matches!(decode::<bool>(&[2]), Err(WireError::Malformed { .. })));
        assert!(matches!(decode::<u64>(&[]), Err(WireError::Malformed { .. })));
        assert!(matches!(decode::<String>(&[2, 0xff, 0xfe]), Err(WireError::Malformed { .. })));
        assert_eq!(decode::<u8>(&[1, 2, 3]), Err(WireError::TrailingBytes { what: "u8", count: 2 }));
    }

    #[test]
    fn hostile_sequence_lengths_fail_without_allocating_them() {
        // A varint declaring u64::MAX elements, then nothing.
        let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert!(matches!(decode::<Vec<u64>>(&huge), Err(WireError::Malformed { .. })));
        assert!(matches!(decode::<String>(&huge), Err(WireError::Malformed { .. })));
        assert!(matches!(decode::<Bytes>(&huge), Err(WireError::Malformed { .. })));
        assert!(matches!(decode::<BTreeMap<u64, u64>>(&huge), Err(WireError::Malformed { .. })));
    }

    #[test]
    fn unencodable_values_are_reported() {
        struct Unknown;
        impl Serialize for Unknown {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeSeq as _;
                let seq = s.serialize_seq(None)?;
                seq.end()
            }
        }
        assert!(matches!(encode(&Unknown), Err(WireError::Unencodable { .. })));
    }
}
