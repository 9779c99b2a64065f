//! Ed25519 keys and signatures (through `ring`).

use std::fmt;
use std::str::FromStr;

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::LedgerError;
use crate::hash::{parse_hex32, write_hex};

/// An Ed25519 public key; it is also the account's address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// Whether `signature` is a valid Ed25519 signature of `message` by this key.
    #[must_use]
    pub fn verify(&self, message: &[u8], signature: &Signature) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.0).verify(message, &signature.0).is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, self.0.iter().copied())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Eight bytes are enough to tell accounts apart in logs and test failures.
        write_hex(f, self.0[..8].iter().copied())?;
        f.write_str("…")
    }
}

/// Error parsing a [`PublicKey`] from hex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid public key {0:?}: expected 64 hex digits")]
pub struct ParseKeyError(pub String);

impl FromStr for PublicKey {
    type Err = ParseKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex32(s).map(PublicKey).ok_or_else(|| ParseKeyError(s.to_owned()))
    }
}

/// A 64-byte Ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signature(")?;
        write_hex(f, self.0[..8].iter().copied())?;
        f.write_str("…)")
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Signature;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Signature, E> {
                <[u8; 64]>::try_from(v).map(Signature).map_err(|_| E::invalid_length(v.len(), &self))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Signature, A::Error> {
                let mut out = [0u8; 64];
                for (i, b) in out.iter_mut().enumerate() {
                    *b = seq.next_element()?.ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
                }
                Ok(Signature(out))
            }
        }
        d.deserialize_bytes(Visitor)
    }
}

/// An Ed25519 key pair that signs transfers.
///
/// Build it from a 32-byte secret seed. Seeds must come from a cryptographically secure
/// source (the node uses the operating system's generator); tests and simulations may
/// derive them from a fixed number with [`Keypair::from_seed`].
pub struct Keypair {
    inner: Ed25519KeyPair,
    public: PublicKey,
}

impl Keypair {
    /// The key pair of the 32-byte secret `seed`.
    ///
    /// # Errors
    /// [`LedgerError::BadKey`] if `ring` rejects the seed.
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self, LedgerError> {
        let inner = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| LedgerError::BadKey)?;
        let public = PublicKey(inner.public_key().as_ref().try_into().map_err(|_| LedgerError::BadKey)?);
        Ok(Keypair { inner, public })
    }

    /// A key pair derived from a small number: for tests, examples and simulations only.
    #[must_use]
    pub fn for_testing(n: u64) -> Self {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&n.to_le_bytes());
        seed[8..16].copy_from_slice(b"ballot-t");
        // ring accepts every 32-byte seed.
        Keypair::from_seed(&seed).unwrap_or_else(|_| unreachable!("ring accepts every Ed25519 seed"))
    }

    /// The public key (the account address).
    #[must_use]
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// Signs `message`.
    #[must_use]
    pub fn sign(&self, message: &[u8]) -> Signature {
        let sig = self.inner.sign(message);
        let mut out = [0u8; 64];
        out.copy_from_slice(sig.as_ref());
        Signature(out)
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair").field("public", &self.public).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies() {
        let k = Keypair::for_testing(1);
        let sig = k.sign(b"msg");
        assert!(k.public().verify(b"msg", &sig));
        assert!(!k.public().verify(b"msh", &sig));
        assert!(!Keypair::for_testing(2).public().verify(b"msg", &sig));
        let mut bad = sig;
        bad.0[3] ^= 1;
        assert!(!k.public().verify(b"msg", &bad));
    }

    #[test]
    fn serde_round_trips() {
        let k = Keypair::for_testing(3);
        let sig = k.sign(b"x");
        let bytes = postcard::to_allocvec(&(k.public(), sig)).unwrap();
        let back: (PublicKey, Signature) = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, (k.public(), sig));
        assert_eq!(k.public().to_string().parse::<PublicKey>(), Ok(k.public()));
    }
}
