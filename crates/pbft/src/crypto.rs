//! Authentication: the injected [`Signer`] / [`Verifier`] of replica signatures, the
//! [`RequestAuth`] check of client requests, digests, and the canonical encoding that
//! signatures cover.
//!
//! The crate never holds a key or picks an algorithm: the host supplies Ed25519 (or
//! anything else) behind these traits. [`insecure`] has a fast keyed-hash stand-in for
//! tests and simulations.

use std::fmt;
use std::sync::Arc;

use ballot_core::NodeId;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// A SHA-256 digest: of a batch, of a service state, of a signed body.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Digest(pub [u8; 32]);

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

/// SHA-256 of `data`.
#[must_use]
pub fn sha256(data: &[u8]) -> Digest {
    Digest(Sha256::digest(data).into())
}

/// Signs with this replica's private key.
pub trait Signer: Send + Sync {
    /// A signature of `message` (the protocol passes a 32-byte digest of a canonical
    /// encoding).
    fn sign(&self, message: &[u8]) -> Bytes;
}

/// Checks replica signatures with the cluster's public keys.
pub trait Verifier: Send + Sync {
    /// Whether `signature` is `signer`'s valid signature of `message`. Unknown signers
    /// are invalid.
    fn verify(&self, signer: NodeId, message: &[u8], signature: &[u8]) -> bool;
}

/// Checks that a client request is authentic (signed by its client), before a replica
/// orders it, accepts it in a PRE-PREPARE or executes it. How the command's bytes carry
/// the client's id and signature is the host's choice (see [`insecure::signed_request`]
/// for one layout); a primary cannot invent or alter a request because every correct
/// replica runs this check.
pub trait RequestAuth: Send + Sync {
    /// Whether `command` carries a valid client signature.
    fn verify(&self, command: &[u8]) -> bool;
}

/// The authentication a replica is built with.
#[derive(Clone)]
pub struct Crypto {
    /// This replica's signer.
    pub signer: Arc<dyn Signer>,
    /// The cluster's verifier.
    pub verifier: Arc<dyn Verifier>,
    /// The client request check.
    pub requests: Arc<dyn RequestAuth>,
}

impl fmt::Debug for Crypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Crypto")
    }
}

/// A canonical, unambiguous encoding of signed bodies (fixed-width integers,
/// length-prefixed byte strings, a domain tag first), independent of serde formats.
#[derive(Default)]
pub struct Enc(Vec<u8>);

impl Enc {
    /// An encoder starting with domain `tag`.
    #[must_use]
    pub fn new(tag: &str) -> Self {
        let mut e = Enc(Vec::with_capacity(128));
        e.bytes(tag.as_bytes());
        e
    }
    /// Appends a number.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Appends a length-prefixed byte string.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.u64(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    /// Appends a digest.
    pub fn digest(&mut self, d: &Digest) -> &mut Self {
        self.0.extend_from_slice(&d.0);
        self
    }
    /// The digest of everything appended.
    #[must_use]
    pub fn finish(&self) -> Digest {
        sha256(&self.0)
    }
}

/// A body that can be signed: its canonical encoding.
pub trait Signable {
    /// Appends the canonical encoding (domain tag first) to a fresh encoder.
    fn encode(&self) -> Enc;
}

/// A body with its signer and signature. The signature covers the SHA-256 of the body's
/// canonical encoding and the signer's id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed<T> {
    /// What is signed.
    pub body: T,
    /// Who signed it.
    pub signer: NodeId,
    /// The signature.
    pub signature: Bytes,
}

impl<T: Signable> Signed<T> {
    fn signing_bytes(body: &T, signer: NodeId) -> Digest {
        let mut e = body.encode();
        e.u64(signer.0);
        e.finish()
    }

    /// Signs `body` as `signer_id` with `signer`.
    #[must_use]
    pub fn sign(body: T, signer_id: NodeId, signer: &dyn Signer) -> Self {
        let d = Self::signing_bytes(&body, signer_id);
        Signed { signature: signer.sign(&d.0), body, signer: signer_id }
    }

    /// Whether the signature is valid.
    #[must_use]
    pub fn verify(&self, verifier: &dyn Verifier) -> bool {
        let d = Self::signing_bytes(&self.body, self.signer);
        verifier.verify(self.signer, &d.0, &self.signature)
    }

    /// A digest of body, signer and signature: identifies this signed message.
    #[must_use]
    pub fn digest(&self) -> Digest {
        let mut e = self.body.encode();
        e.u64(self.signer.0).bytes(&self.signature);
        e.finish()
    }
}

/// Fast keyed-hash "signatures" for tests and simulations. **Not secure**: a replica's
/// key is derived from its id, so anyone who knows this scheme can forge. A test's
/// Byzantine replica forges only through the honest paths (its own key), which is
/// what the protocol must withstand.
pub mod insecure {
    use super::{Bytes, Enc, NodeId, RequestAuth, Signer, Verifier};

    fn tag(key: u64, message: &[u8]) -> Bytes {
        let mut e = Enc::new("ballot-pbft-insecure");
        e.u64(key).bytes(message);
        Bytes::copy_from_slice(&e.finish().0)
    }

    /// Signs as replica `id`.
    #[derive(Clone, Copy, Debug)]
    pub struct HashSigner(pub NodeId);

    impl Signer for HashSigner {
        fn sign(&self, message: &[u8]) -> Bytes {
            tag(self.0.0, message)
        }
    }

    /// Verifies [`HashSigner`] signatures of any replica.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct HashVerifier;

    impl Verifier for HashVerifier {
        fn verify(&self, signer: NodeId, message: &[u8], signature: &[u8]) -> bool {
            tag(signer.0, message).as_ref() == signature
        }
    }

    /// A client request: `client` (8 bytes) ‖ `body` ‖ a 32-byte keyed hash of both.
    #[must_use]
    pub fn signed_request(client: u64, body: &[u8]) -> Bytes {
        let mut v = Vec::with_capacity(body.len() + 40);
        v.extend_from_slice(&client.to_be_bytes());
        v.extend_from_slice(body);
        let t = tag(u64::MAX - client, &v);
        v.extend_from_slice(&t);
        Bytes::from(v)
    }

    /// The body of a [`signed_request`], if it is one.
    #[must_use]
    pub fn request_body(command: &[u8]) -> Option<&[u8]> {
        (command.len() >= 40).then(|| &command[8..command.len() - 32])
    }

    /// Accepts exactly the commands made by [`signed_request`].
    #[derive(Clone, Copy, Debug, Default)]
    pub struct HashRequestAuth;

    impl RequestAuth for HashRequestAuth {
        fn verify(&self, command: &[u8]) -> bool {
            if command.len() < 40 {
                return false;
            }
            let (signed, t) = command.split_at(command.len() - 32);
            let client = u64::from_be_bytes(signed[..8].try_into().unwrap_or_default());
            tag(u64::MAX - client, signed).as_ref() == t
        }
    }
}

#[cfg(test)]
mod tests {
    use super::insecure::*;
    use super::*;

    #[test]
    fn hash_signatures_and_requests() {
        let body = crate::PrePrepare { view: 1, seq: 2, digest: sha256(b"x") };
        let s = Signed::sign(body, NodeId(3), &HashSigner(NodeId(3)));
        assert!(s.verify(&HashVerifier));
        let mut forged = s.clone();
        forged.signer = NodeId(2);
        assert!(!forged.verify(&HashVerifier), "a signature does not transfer to another signer");
        let mut altered = s;
        altered.body.seq = 3;
        assert!(!altered.verify(&HashVerifier));
        let r = signed_request(7, b"put a");
        assert!(HashRequestAuth.verify(&r));
        assert_eq!(request_body(&r), Some(&b"put a"[..]));
        let mut bad = r.to_vec();
        bad[9] ^= 1;
        assert!(!HashRequestAuth.verify(&bad));
    }
}
