//! PBFT's keys, taken from the cluster's certificates: the host-side crypto that
//! `ballot-pbft` leaves to its host, shared by the server (`ballot-server`) and the
//! client (`ballot-client`).
//!
//! Signatures are Ed25519 (ring). A replica signs with the private key of its TLS
//! certificate ([`NodeSigner`]) and checks the other replicas' signatures with the public
//! keys of their certificates, each checked against the cluster CA and the replica's
//! name ([`ClusterKeys`]). A client signs every request with the key of its client
//! certificate ([`RequestSigner`]); the request carries that certificate, so that any
//! replica — a backup receiving it inside the primary's PRE-PREPARE included — checks the
//! certificate against the CA (once per certificate: verified keys are cached by the
//! certificate's SHA-256) and the signature against it ([`ClientAuth`]). A Byzantine
//! primary can therefore neither alter a request nor invent a client.
//!
//! # A signed request
//!
//! ```text
//! "BPR" 0x01 ‖ certificate length (u16, big endian) ‖ client certificate (DER)
//!            ‖ Ed25519 signature (64 bytes) ‖ body (the service command)
//! ```
//!
//! The signature covers the SHA-256 of a canonical encoding of the domain
//! `ballot-pbft-request/1`, the cluster name (a request signed for one cluster is
//! refused by another that shares the CA), the certificate's SHA-256 and the body.
//!
//! ```
//! use ballot_pbft::RequestAuth;
//! use ballot_pbft_auth::{ClientAuth, RequestSigner};
//! use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
//!
//! // An Ed25519 CA and client certificate, as `ballot certs` makes them.
//! let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
//! let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
//! ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
//! let ca = ca_params.self_signed(&ca_key).unwrap().der().clone();
//! let issuer = rcgen::Issuer::new(ca_params, ca_key);
//! let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
//! let mut params = rcgen::CertificateParams::new(vec!["client.ballot".to_owned()]).unwrap();
//! params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
//! let cert = params.signed_by(&key, &issuer).unwrap().der().clone();
//! let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
//!
//! let signer = RequestSigner::new("prod", &cert, &key)?;
//! let request = signer.sign(b"put x 1");
//! let auth = ClientAuth::new("prod", &[ca])?;
//! assert!(auth.verify(&request));
//! assert_eq!(auth.body(&request).unwrap(), &b"put x 1"[..]);
//! let mut altered = request.to_vec();
//! *altered.last_mut().unwrap() ^= 1;
//! assert!(!auth.verify(&altered));
//! # Ok::<(), ballot_pbft_auth::AuthError>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use ballot_core::NodeId;
use ballot_pbft::{Digest, Enc, RequestAuth, Signer, Verifier, sha256};
use bytes::Bytes;
use ring::signature::{ED25519, Ed25519KeyPair, UnparsedPublicKey};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, TrustAnchor, UnixTime};

/// The first bytes of a signed request: "BPR" and the layout's version.
pub const MAGIC: [u8; 4] = *b"BPR\x01";

/// The largest client certificate a signed request may carry.
pub const MAX_CERTIFICATE: usize = 16 * 1024;

/// Length of an Ed25519 signature.
const SIGNATURE: usize = 64;

/// How many verified client certificates [`ClientAuth`] remembers (it forgets them all
/// when full: a cache, not a registry).
const CACHE_LIMIT: usize = 4096;

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE { SEQUENCE {
/// OID 1.3.101.112 }, BIT STRING (32 bytes) }.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// Why a key, certificate or signed request is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A certificate or key is not Ed25519.
    #[error(
        "{what} is not an Ed25519 key: PBFT signs with Ed25519 (`ballot certs` issues Ed25519 keys; issue yours with one)"
    )]
    NotEd25519 {
        /// Which certificate or key.
        what: String,
    },
    /// A certificate does not parse.
    #[error("{what} is not a valid certificate: {reason}")]
    BadCertificate {
        /// Which certificate.
        what: String,
        /// Why.
        reason: String,
    },
    /// A certificate is not one the cluster CA issued (for this use).
    #[error("{what} is not issued by the cluster CA for {usage}: {reason}")]
    Untrusted {
        /// Which certificate.
        what: String,
        /// Client or node authentication.
        usage: &'static str,
        /// Why (webpki's verdict).
        reason: String,
    },
    /// A node's certificate names another identity.
    #[error("{what} does not name {expected}")]
    WrongName {
        /// Which certificate.
        what: String,
        /// The identity it must name.
        expected: String,
    },
    /// A private key does not belong to the certificate it is used with.
    #[error("the private key does not belong to {what}")]
    KeyMismatch {
        /// The certificate.
        what: String,
    },
    /// A command is not a signed request.
    #[error(
        "not a signed request ({0}): clients of a PBFT cluster sign every request with their certificate's key (`ballot --consensus pbft`, or `consensus` in the client's configuration)"
    )]
    Malformed(String),
    /// The signature does not verify.
    #[error("the request's signature does not match its certificate and body")]
    BadSignature,
}

/// The Ed25519 public key of a DER certificate.
fn ed25519_key(cert: &webpki::EndEntityCert<'_>, what: &str) -> Result<[u8; 32], AuthError> {
    let spki = cert.subject_public_key_info();
    let raw = spki.as_ref();
    match raw.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
        Some(key) if key.len() == 32 => {
            let mut out = [0u8; 32];
            out.copy_from_slice(key);
            Ok(out)
        }
        _ => Err(AuthError::NotEd25519 { what: what.to_owned() }),
    }
}

fn parse_cert<'a>(cert: &'a CertificateDer<'a>, what: &str) -> Result<webpki::EndEntityCert<'a>, AuthError> {
    webpki::EndEntityCert::try_from(cert)
        .map_err(|e| AuthError::BadCertificate { what: what.to_owned(), reason: e.to_string() })
}

/// The cluster CA certificates as trust anchors.
fn anchors(ca: &[CertificateDer<'_>]) -> Result<Vec<TrustAnchor<'static>>, AuthError> {
    if ca.is_empty() {
        return Err(AuthError::BadCertificate { what: "the CA".into(), reason: "no CA certificate given".into() });
    }
    ca.iter()
        .enumerate()
        .map(|(i, c)| {
            webpki::anchor_from_trusted_cert(c).map(|a| a.to_owned()).map_err(|e| AuthError::BadCertificate {
                what: format!("CA certificate #{}", i + 1),
                reason: e.to_string(),
            })
        })
        .collect()
}

/// Checks that `cert` chains to one of `anchors` for `usage`, now.
fn check_chain(
    cert: &webpki::EndEntityCert<'_>,
    anchors: &[TrustAnchor<'_>],
    usage: webpki::KeyUsage,
    usage_name: &'static str,
    what: &str,
) -> Result<(), AuthError> {
    cert.verify_for_usage(webpki::ALL_VERIFICATION_ALGS, anchors, &[], UnixTime::now(), usage, None, None)
        .map(|_| ())
        .map_err(|e| AuthError::Untrusted { what: what.to_owned(), usage: usage_name, reason: e.to_string() })
}

fn key_pair(key: &PrivateKeyDer<'_>, what: &str) -> Result<Ed25519KeyPair, AuthError> {
    match key {
        PrivateKeyDer::Pkcs8(pkcs8) => Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8.secret_pkcs8_der())
            .map_err(|_| AuthError::NotEd25519 { what: what.to_owned() }),
        _ => Err(AuthError::NotEd25519 { what: what.to_owned() }),
    }
}

/// Signs as one replica, with the private key of its TLS certificate.
pub struct NodeSigner(Ed25519KeyPair);

impl std::fmt::Debug for NodeSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeSigner")
    }
}

impl NodeSigner {
    /// The signer of the node whose certificate is `cert` and private key `key`.
    ///
    /// # Errors
    /// [`AuthError::NotEd25519`] for another kind of key, [`AuthError::KeyMismatch`] when
    /// the key is not the certificate's.
    pub fn new(cert: &CertificateDer<'_>, key: &PrivateKeyDer<'_>) -> Result<Self, AuthError> {
        let pair = matching_pair(cert, key, "this node's certificate")?;
        Ok(NodeSigner(pair))
    }
}

/// The certificate's key pair: `key`, checked to be the private half of `cert`'s key.
fn matching_pair(cert: &CertificateDer<'_>, key: &PrivateKeyDer<'_>, what: &str) -> Result<Ed25519KeyPair, AuthError> {
    use ring::signature::KeyPair as _;
    let public = ed25519_key(&parse_cert(cert, what)?, what)?;
    let pair = key_pair(key, &format!("the private key of {what}"))?;
    if pair.public_key().as_ref() != public {
        return Err(AuthError::KeyMismatch { what: what.to_owned() });
    }
    Ok(pair)
}

impl Signer for NodeSigner {
    fn sign(&self, message: &[u8]) -> Bytes {
        Bytes::copy_from_slice(self.0.sign(message).as_ref())
    }
}

/// The replicas' public keys, from their certificates: PBFT's [`Verifier`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterKeys {
    keys: BTreeMap<NodeId, [u8; 32]>,
}

impl ClusterKeys {
    /// The keys of `nodes`' certificates, each checked against the CA `ca` (for node
    /// authentication, server and client) and to name `node_name(id)`.
    ///
    /// # Errors
    /// The first certificate that is refused, and why.
    pub fn from_certificates<'a>(
        ca: &[CertificateDer<'_>],
        nodes: impl IntoIterator<Item = (NodeId, CertificateDer<'a>)>,
        node_name: impl Fn(NodeId) -> String,
    ) -> Result<Self, AuthError> {
        let anchors = anchors(ca)?;
        let mut keys = BTreeMap::new();
        for (id, der) in nodes {
            let what = format!("the certificate of {id}");
            let cert = parse_cert(&der, &what)?;
            check_chain(&cert, &anchors, webpki::KeyUsage::server_auth(), "node authentication", &what)?;
            let expected = node_name(id);
            if !cert.valid_dns_names().any(|n| n.eq_ignore_ascii_case(&expected)) {
                return Err(AuthError::WrongName { what, expected });
            }
            keys.insert(id, ed25519_key(&cert, &what)?);
        }
        Ok(ClusterKeys { keys })
    }

    /// The nodes with a key.
    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.keys.keys().copied()
    }
}

impl Verifier for ClusterKeys {
    fn verify(&self, signer: NodeId, message: &[u8], signature: &[u8]) -> bool {
        self.keys.get(&signer).is_some_and(|k| UnparsedPublicKey::new(&ED25519, k).verify(message, signature).is_ok())
    }
}

/// What a client's signature covers.
fn request_digest(cluster: &str, cert_hash: &Digest, body: &[u8]) -> Digest {
    let mut e = Enc::new("ballot-pbft-request/1");
    e.bytes(cluster.as_bytes()).digest(cert_hash).bytes(body);
    e.finish()
}

/// Signs a client's requests with the key of its client certificate.
pub struct RequestSigner {
    key: Ed25519KeyPair,
    cert: Vec<u8>,
    cert_hash: Digest,
    cluster: String,
}

impl std::fmt::Debug for RequestSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestSigner").field("cluster", &self.cluster).finish_non_exhaustive()
    }
}

impl RequestSigner {
    /// A signer for cluster `cluster`, with the client certificate `cert` and its key.
    ///
    /// # Errors
    /// [`AuthError::NotEd25519`], [`AuthError::KeyMismatch`], or a certificate larger
    /// than [`MAX_CERTIFICATE`].
    pub fn new(cluster: &str, cert: &CertificateDer<'_>, key: &PrivateKeyDer<'_>) -> Result<Self, AuthError> {
        let what = "the client certificate";
        if cert.len() > MAX_CERTIFICATE {
            return Err(AuthError::BadCertificate {
                what: what.into(),
                reason: format!("{} bytes; a signed request carries at most {MAX_CERTIFICATE}", cert.len()),
            });
        }
        let key = matching_pair(cert, key, what)?;
        Ok(RequestSigner { key, cert: cert.to_vec(), cert_hash: sha256(cert), cluster: cluster.to_owned() })
    }

    /// `body` (an encoded service command), signed: see the [crate docs](crate).
    #[must_use]
    pub fn sign(&self, body: &[u8]) -> Bytes {
        let digest = request_digest(&self.cluster, &self.cert_hash, body);
        let signature = self.key.sign(&digest.0);
        let mut out = Vec::with_capacity(MAGIC.len() + 2 + self.cert.len() + SIGNATURE + body.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&u16::try_from(self.cert.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(&self.cert);
        out.extend_from_slice(signature.as_ref());
        out.extend_from_slice(body);
        Bytes::from(out)
    }
}

/// The parts of a signed request, borrowed from its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedRequest<'a> {
    /// The client's certificate, DER.
    pub cert: &'a [u8],
    /// The Ed25519 signature.
    pub signature: &'a [u8],
    /// The service command.
    pub body: &'a [u8],
}

impl<'a> SignedRequest<'a> {
    /// Splits `bytes` into its parts (checks the layout, not the signature).
    ///
    /// # Errors
    /// [`AuthError::Malformed`] naming what is wrong.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, AuthError> {
        let rest = bytes.strip_prefix(&MAGIC[..]).ok_or_else(|| {
            AuthError::Malformed(if bytes.starts_with(b"BPR") {
                format!("unknown layout version {}", bytes.get(3).copied().unwrap_or_default())
            } else {
                "it does not start with the signed-request marker".into()
            })
        })?;
        let (len, rest) = rest.split_at_checked(2).ok_or_else(|| AuthError::Malformed("truncated header".into()))?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        if len == 0 || len > MAX_CERTIFICATE {
            return Err(AuthError::Malformed(format!("a certificate of {len} bytes")));
        }
        let (cert, rest) =
            rest.split_at_checked(len).ok_or_else(|| AuthError::Malformed("truncated certificate".into()))?;
        let (signature, body) =
            rest.split_at_checked(SIGNATURE).ok_or_else(|| AuthError::Malformed("truncated signature".into()))?;
        Ok(SignedRequest { cert, signature, body })
    }
}

/// Checks client-signed requests: PBFT's [`RequestAuth`] (see the [crate docs](crate)).
#[derive(Debug)]
pub struct ClientAuth {
    cluster: String,
    anchors: Vec<TrustAnchor<'static>>,
    /// Public keys of verified client certificates, by the certificate's SHA-256.
    verified: Mutex<HashMap<Digest, [u8; 32]>>,
}

impl ClientAuth {
    /// Accepts requests signed for cluster `cluster` by clients whose certificates the CA
    /// `ca` issued for client authentication.
    ///
    /// # Errors
    /// [`AuthError::BadCertificate`] when a CA certificate does not parse.
    pub fn new(cluster: &str, ca: &[CertificateDer<'_>]) -> Result<Self, AuthError> {
        Ok(ClientAuth { cluster: cluster.to_owned(), anchors: anchors(ca)?, verified: Mutex::new(HashMap::new()) })
    }

    /// Checks `command`: its layout, its certificate (the first time it is seen), its
    /// signature.
    ///
    /// # Errors
    /// Why it is refused.
    pub fn check(&self, command: &[u8]) -> Result<(), AuthError> {
        let request = SignedRequest::parse(command)?;
        let cert_hash = sha256(request.cert);
        let key = self.client_key(&cert_hash, request.cert)?;
        let digest = request_digest(&self.cluster, &cert_hash, request.body);
        UnparsedPublicKey::new(&ED25519, key).verify(&digest.0, request.signature).map_err(|_| AuthError::BadSignature)
    }

    /// The key of a client certificate, verified against the CA once.
    fn client_key(&self, hash: &Digest, cert: &[u8]) -> Result<[u8; 32], AuthError> {
        if let Some(key) = self.verified.lock().unwrap_or_else(PoisonError::into_inner).get(hash) {
            return Ok(*key);
        }
        let what = "the request's client certificate";
        let der = CertificateDer::from(cert);
        let parsed = parse_cert(&der, what)?;
        check_chain(&parsed, &self.anchors, webpki::KeyUsage::client_auth(), "client authentication", what)?;
        let key = ed25519_key(&parsed, what)?;
        let mut cache = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(*hash, key);
        Ok(key)
    }

    /// How many client certificates are verified and cached.
    #[must_use]
    pub fn cached_certificates(&self) -> usize {
        self.verified.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

impl RequestAuth for ClientAuth {
    fn verify(&self, command: &[u8]) -> bool {
        self.check(command).is_ok()
    }

    fn body(&self, command: &Bytes) -> Result<Bytes, String> {
        let request = SignedRequest::parse(command).map_err(|e| e.to_string())?;
        let start = command.len() - request.body.len();
        Ok(command.slice(start..))
    }
}
