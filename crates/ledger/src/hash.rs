//! 32-byte hashes: transaction ids, block hashes, Merkle nodes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A 32-byte SHA-256d digest, stored in the byte order the hash function produced it.
///
/// Displayed and parsed like Bitcoin displays ids: as hex of the bytes in *reverse*
/// order, so a proof-of-work hash shows its leading zeros first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Hash(pub [u8; 32]);

/// A transaction id: the SHA-256d of the transaction's canonical encoding.
pub type TxId = Hash;

impl Hash {
    /// All zero bytes (the "previous block" of a genesis block).
    pub const ZERO: Hash = Hash([0; 32]);

    /// The raw bytes, in hash-function order.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// SHA-256 of `data`.
#[must_use]
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// SHA-256 of SHA-256 of `data` (Bitcoin's "hash256").
#[must_use]
pub fn sha256d(data: &[u8]) -> Hash {
    Hash(sha256(&sha256(data)))
}

/// Lower-case hex of `bytes` in the given order.
pub(crate) fn write_hex(f: &mut fmt::Formatter<'_>, bytes: impl Iterator<Item = u8>) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, self.0.iter().rev().copied())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Error parsing a [`Hash`](struct@Hash) from hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid hash {0:?}: expected 64 hex digits")]
pub struct ParseHashError(pub String);

/// Parses 64 hex digits into 32 bytes in the order written.
pub(crate) fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let digits = s.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        out[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

impl FromStr for Hash {
    type Err = ParseHashError;

    /// Parses the display form (reversed byte order).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = parse_hex32(s).ok_or_else(|| ParseHashError(s.to_owned()))?;
        bytes.reverse();
        Ok(Hash(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256d_matches_known_vector() {
        // hash256("hello"), displayed in natural byte order by most tools.
        let h = sha256d(b"hello");
        let natural: String = h.0.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(natural, "9595c9df90075148eb06860365df33584b75bff782a510c6cd4883a419833d50");
    }

    #[test]
    fn display_reverses_and_parses_back() {
        let mut bytes = [0u8; 32];
        bytes[31] = 0xab;
        bytes[0] = 0x01;
        let h = Hash(bytes);
        let s = h.to_string();
        assert!(s.starts_with("ab00"), "{s}");
        assert!(s.ends_with("01"), "{s}");
        assert_eq!(s.parse::<Hash>(), Ok(h));
        assert!("xyz".parse::<Hash>().is_err());
        assert!("g".repeat(64).parse::<Hash>().is_err());
    }
}
