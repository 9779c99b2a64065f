//! How records are serialized on disk: ballot-wire's codec (postcard), without its
//! network size limit: the store's records are bounded by what the protocol wrote.

use ballot_wire::{Codec, MAX_SIZE_LIMIT};
use bytes::BytesMut;
use serde::Serialize;
use serde::de::DeserializeOwned;

const CODEC: Codec = Codec::new(MAX_SIZE_LIMIT);

/// Serializes `value` into `buf` (cleared first), reusing its allocation.
pub(crate) fn encode_into<T: Serialize>(value: &T, buf: &mut BytesMut, what: &'static str) -> crate::Result<()> {
    buf.clear();
    CODEC.encode_into(value, buf).map_err(|e| crate::Error::Encode { what, detail: e.to_string() })?;
    Ok(())
}

/// Serializes `value` into a new buffer.
pub(crate) fn encode<T: Serialize>(value: &T, what: &'static str) -> crate::Result<BytesMut> {
    let mut buf = BytesMut::new();
    encode_into(value, &mut buf, what)?;
    Ok(buf)
}

/// Deserializes exactly one record; trailing bytes are an error. The message says what
/// was wrong; the caller turns it into [`Error::Corrupt`](crate::Error::Corrupt).
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    CODEC.decode(bytes).map_err(|e| e.to_string())
}
