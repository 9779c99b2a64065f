//! Identities and rustls configurations: who a certificate names, and the TLS settings
//! peers and clients use (TLS 1.3 only, ring crypto, mutual authentication).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ballot_core::NodeId;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::Error;

/// ALPN protocol of peer (node-to-node) connections.
pub const ALPN_PEER: &[u8] = b"ballot-peer/1";
/// ALPN protocol of client connections.
pub const ALPN_CLIENT: &[u8] = b"ballot-client/1";

/// The DNS-name suffix of ballot identities: node `n3`'s certificate carries the
/// subject alternative name `n3.ballot`. These names identify; they need not resolve.
pub const IDENTITY_SUFFIX: &str = ".ballot";

/// The subject alternative name of the development client certificate.
pub const CLIENT_DNS_NAME: &str = "client.ballot";

/// The largest PEM file the loaders read.
const MAX_PEM_FILE: u64 = 1024 * 1024;

/// The DNS name that identifies node `id` in certificates: `n{id}.ballot`.
///
/// ```
/// use ballot_core::NodeId;
/// assert_eq!(ballot_quic::node_dns_name(NodeId(3)), "n3.ballot");
/// ```
#[must_use]
pub fn node_dns_name(id: NodeId) -> String {
    format!("n{}{IDENTITY_SUFFIX}", id.get())
}

/// The node a DNS name identifies: `n<digits>.ballot` (ASCII case-insensitive), with a
/// positive number without leading zeros.
pub(crate) fn parse_node_name(name: &str) -> Option<NodeId> {
    let lower = name.to_ascii_lowercase();
    let digits = lower.strip_prefix('n')?.strip_suffix(IDENTITY_SUFFIX)?;
    if digits.is_empty() || digits.len() > 20 || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    digits.parse::<u64>().ok().map(NodeId)
}

/// Who a verified certificate names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// The node the certificate identifies (`n{id}.ballot`), if any.
    pub node: Option<NodeId>,
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.node {
            Some(node) => write!(f, "{node}"),
            None => write!(f, "{}", self.dns_names.first().map_or("(unnamed)", String::as_str)),
        }
    }
}

impl PeerIdentity {
    /// Reads the names of a DER certificate. A certificate naming two different nodes is
    /// refused: an identity must be unambiguous.
    ///
    /// # Errors
    /// [`Error::BadCertificate`] when the certificate cannot be parsed or names
    /// several nodes.
    pub fn of(cert: &CertificateDer<'_>) -> Result<PeerIdentity, Error> {
        let parsed = webpki::EndEntityCert::try_from(cert)
            .map_err(|e| Error::BadCertificate { what: "end-entity certificate".into(), reason: e.to_string() })?;
        let dns_names: Vec<String> = parsed.valid_dns_names().map(str::to_owned).collect();
        let mut node = None;
        for id in dns_names.iter().filter_map(|n| parse_node_name(n)) {
            match node {
                Some(seen) if seen != id => {
                    return Err(Error::BadCertificate {
                        what: "end-entity certificate".into(),
                        reason: format!("it names several nodes ({seen} and {id})"),
                    });
                }
                _ => node = Some(id),
            }
        }
        Ok(PeerIdentity { dns_names, node })
    }

    /// The identity of the peer of an established connection (its verified leaf
    /// certificate), if it presented one.
    pub(crate) fn of_connection(conn: &quinn::Connection) -> Option<Result<PeerIdentity, Error>> {
        let certs = conn.peer_identity()?.downcast::<Vec<CertificateDer<'static>>>().ok()?;
        certs.first().map(PeerIdentity::of)
    }
}

/// The trust anchors and own identity of a node or client: the cluster CA and a
/// certificate chain with its private key. Cheap to clone.
///
/// Built from PEM files ([`load`](TlsConfig::load), [`load_node`](TlsConfig::load_node),
/// [`load_client`](TlsConfig::load_client)), PEM bytes, or DER values. Construction
/// checks that the CA certificates parse and that the key belongs to the certificate,
/// so a misconfiguration is reported at startup, not at the first connection.
#[derive(Clone)]
pub struct TlsConfig {
    inner: Arc<TlsInner>,
}

struct TlsInner {
    ca: Vec<CertificateDer<'static>>,
    roots: Arc<RootCertStore>,
    certified: Arc<CertifiedKey>,
    key: PrivateKeyDer<'static>,
    identity: PeerIdentity,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca_certificates", &self.inner.ca.len())
            .field("identity", &self.inner.identity)
            .finish_non_exhaustive()
    }
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsConfig {
    /// A configuration from DER values: the CA certificates to trust, this end's
    /// certificate chain (leaf first) and its private key.
    ///
    /// # Errors
    /// [`Error::BadCertificate`] when a CA certificate or the leaf does not parse or
    /// the chain is empty; [`Error::KeyMismatch`] when the key does not belong to the
    /// leaf certificate.
    pub fn new(
        ca: Vec<CertificateDer<'static>>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, Error> {
        Self::with_sources(ca, chain, key, "the certificate", "the private key")
    }

    fn with_sources(
        ca: Vec<CertificateDer<'static>>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        cert_source: &str,
        key_source: &str,
    ) -> Result<Self, Error> {
        if ca.is_empty() {
            return Err(Error::BadCertificate { what: "CA".into(), reason: "no CA certificate given".into() });
        }
        let mut roots = RootCertStore::empty();
        for (i, cert) in ca.iter().enumerate() {
            roots.add(cert.clone()).map_err(|e| Error::BadCertificate {
                what: format!("CA certificate #{}", i + 1),
                reason: e.to_string(),
            })?;
        }
        let leaf = chain.first().ok_or_else(|| Error::BadCertificate {
            what: cert_source.to_owned(),
            reason: "the chain holds no certificate".into(),
        })?;
        let identity = PeerIdentity::of(leaf)?;
        let provider = provider();
        let certified = CertifiedKey::from_der(chain, key.clone_key(), &provider).map_err(|e| Error::KeyMismatch {
            cert: cert_source.to_owned(),
            key: key_source.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(TlsConfig {
            inner: Arc::new(TlsInner {
                ca,
                roots: Arc::new(roots),
                certified: Arc::new(certified),
                key,
                identity,
                provider,
            }),
        })
    }

    /// A configuration from PEM text: the CA certificate(s), this end's certificate
    /// chain and its private key (PKCS#8, PKCS#1 or SEC1).
    ///
    /// # Errors
    /// [`Error::BadPem`] for text that is not PEM or lacks the expected section; the
    /// errors of [`new`](TlsConfig::new).
    pub fn from_pem(ca: &[u8], cert: &[u8], key: &[u8]) -> Result<Self, Error> {
        let ca = parse_certs(ca, "CA certificate", Path::new("(memory)"))?;
        let chain = parse_certs(cert, "certificate", Path::new("(memory)"))?;
        let key = parse_key(key, Path::new("(memory)"))?;
        Self::new(ca, chain, key)
    }

    /// Loads the CA certificate(s), the certificate chain and the private key from PEM
    /// files.
    ///
    /// # Errors
    /// [`Error::ReadFile`] for a missing or unreadable file, [`Error::BadPem`] for a
    /// file that is not PEM or lacks the expected section, [`Error::KeyMismatch`] for a
    /// key that does not belong to the certificate.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<Self, Error> {
        let ca_certs = parse_certs(&read_pem(ca, "CA certificate")?, "CA certificate", ca)?;
        let chain = parse_certs(&read_pem(cert, "certificate")?, "certificate", cert)?;
        let private = parse_key(&read_pem(key, "private key")?, key)?;
        Self::with_sources(ca_certs, chain, private, &cert.display().to_string(), &key.display().to_string())
    }

    /// Loads node `id`'s files from a directory written by
    /// [`generate_dev_certs`](crate::generate_dev_certs): `ca.pem`, `n{id}.pem`,
    /// `n{id}-key.pem`.
    ///
    /// # Errors
    /// As [`load`](TlsConfig::load).
    pub fn load_node(dir: &Path, id: NodeId) -> Result<Self, Error> {
        let (cert, key) = node_files(dir, id);
        Self::load(&dir.join(CA_FILE), &cert, &key)
    }

    /// Loads the client files from a directory written by
    /// [`generate_dev_certs`](crate::generate_dev_certs): `ca.pem`, `client.pem`,
    /// `client-key.pem`.
    ///
    /// # Errors
    /// As [`load`](TlsConfig::load).
    pub fn load_client(dir: &Path) -> Result<Self, Error> {
        Self::load(&dir.join(CA_FILE), &dir.join(CLIENT_FILE), &dir.join(CLIENT_KEY_FILE))
    }

    /// Who this end's certificate names.
    #[must_use]
    pub fn identity(&self) -> &PeerIdentity {
        &self.inner.identity
    }

    /// The trusted CA certificates.
    #[must_use]
    pub fn ca_certificates(&self) -> &[CertificateDer<'static>] {
        &self.inner.ca
    }

    /// This end's certificate (the leaf of its chain).
    #[must_use]
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.inner.certified.cert[0]
    }

    /// This end's private key (PBFT replicas and clients sign with it too).
    #[must_use]
    pub fn private_key(&self) -> &PrivateKeyDer<'static> {
        &self.inner.key
    }

    /// A secret derived from the private key and `label`, stable across restarts (used
    /// to key QUIC stateless resets).
    pub(crate) fn derive_secret(&self, label: &[u8]) -> [u8; 32] {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.inner.key.secret_der());
        let tag = ring::hmac::sign(&key, label);
        let mut out = [0u8; 32];
        out.copy_from_slice(&tag.as_ref()[..32]);
        out
    }

    /// The rustls server configuration of a node's endpoint: TLS 1.3, both ALPNs
    /// ([`ALPN_PEER`], [`ALPN_CLIENT`]), client certificates required and verified
    /// against the CA.
    ///
    /// # Errors
    /// [`Error::Tls`] when rustls refuses the configuration.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, Error> {
        let verifier =
            WebPkiClientVerifier::builder_with_provider(self.inner.roots.clone(), self.inner.provider.clone())
                .build()
                .map_err(|e| Error::Config(format!("client certificate verifier: {e}")))?;
        let mut config = rustls::ServerConfig::builder_with_provider(self.inner.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(SingleCert(self.inner.certified.clone())));
        config.alpn_protocols = vec![ALPN_PEER.to_vec(), ALPN_CLIENT.to_vec()];
        Ok(config)
    }

    /// The rustls client configuration for dialing a peer: ALPN [`ALPN_PEER`], the
    /// server verified against the CA and the server name passed to `connect`
    /// (`n{id}.ballot`), this end's certificate presented.
    ///
    /// # Errors
    /// [`Error::Tls`] when rustls refuses the configuration.
    pub fn peer_client_config(&self) -> Result<rustls::ClientConfig, Error> {
        self.client_config_with(ALPN_PEER, self.webpki_server_verifier()?)
    }

    /// The rustls client configuration for the client protocol: ALPN [`ALPN_CLIENT`],
    /// this end's certificate presented. With `any_node`, the server must present a
    /// certificate of the CA that names some node (the name passed to `connect` is
    /// ignored); otherwise it must match the name passed to `connect`.
    ///
    /// # Errors
    /// [`Error::Tls`] when rustls refuses the configuration.
    pub fn client_config(&self, any_node: bool) -> Result<rustls::ClientConfig, Error> {
        let webpki = self.webpki_server_verifier()?;
        if any_node {
            self.client_config_with(ALPN_CLIENT, Arc::new(AnyNodeVerifier { inner: webpki }))
        } else {
            self.client_config_with(ALPN_CLIENT, webpki)
        }
    }

    fn webpki_server_verifier(&self) -> Result<Arc<WebPkiServerVerifier>, Error> {
        WebPkiServerVerifier::builder_with_provider(self.inner.roots.clone(), self.inner.provider.clone())
            .build()
            .map_err(|e| Error::Config(format!("server certificate verifier: {e}")))
    }

    fn client_config_with(
        &self,
        alpn: &[u8],
        verifier: Arc<dyn ServerCertVerifier>,
    ) -> Result<rustls::ClientConfig, Error> {
        let mut config = rustls::ClientConfig::builder_with_provider(self.inner.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(Arc::new(SingleCert(self.inner.certified.clone())));
        config.alpn_protocols = vec![alpn.to_vec()];
        Ok(config)
    }
}

/// Presents one certificate, as server and as client.
#[derive(Debug)]
struct SingleCert(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for SingleCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl rustls::client::ResolvesClientCert for SingleCert {
    fn resolve(&self, _root_hint_subjects: &[&[u8]], _sigschemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Verifies a server against the CA and whichever node name its certificate carries:
/// for clients that know an address but not which node answers there.
#[derive(Debug)]
struct AnyNodeVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for AnyNodeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let node = PeerIdentity::of(end_entity)
            .map_err(|e| {
                rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(Arc::new(
                    std::io::Error::other(e.to_string()),
                ))))
            })?
            .node
            .ok_or(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))?;
        let name = ServerName::try_from(node_dns_name(node))
            .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))?;
        self.inner.verify_server_cert(end_entity, intermediates, &name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// File names written by [`generate_dev_certs`](crate::generate_dev_certs).
pub(crate) const CA_FILE: &str = "ca.pem";
pub(crate) const CA_KEY_FILE: &str = "ca-key.pem";
pub(crate) const CLIENT_FILE: &str = "client.pem";
pub(crate) const CLIENT_KEY_FILE: &str = "client-key.pem";

/// `n{id}.pem` and `n{id}-key.pem` in `dir`.
pub(crate) fn node_files(dir: &Path, id: NodeId) -> (PathBuf, PathBuf) {
    (dir.join(format!("n{}.pem", id.get())), dir.join(format!("n{}-key.pem", id.get())))
}

fn read_pem(path: &Path, what: &'static str) -> Result<Vec<u8>, Error> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|source| Error::ReadFile { what, path: path.into(), source })?;
    let size = file.metadata().map_err(|source| Error::ReadFile { what, path: path.into(), source })?.len();
    if size > MAX_PEM_FILE {
        return Err(Error::FileTooLarge { what, path: path.into(), size, max: MAX_PEM_FILE });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(MAX_PEM_FILE + 1).read_to_end(&mut bytes).map_err(|source| Error::ReadFile {
        what,
        path: path.into(),
        source,
    })?;
    if bytes.len() as u64 > MAX_PEM_FILE {
        return Err(Error::FileTooLarge { what, path: path.into(), size: bytes.len() as u64, max: MAX_PEM_FILE });
    }
    Ok(bytes)
}

/// Loads the certificate of a PEM file (the first, if it holds a chain).
///
/// # Errors
/// [`Error::ReadFile`] for a missing or unreadable file, [`Error::BadPem`] for a file
/// that is not PEM or holds no certificate.
pub fn load_certificate(path: &Path) -> Result<CertificateDer<'static>, Error> {
    let mut certs = parse_certs(&read_pem(path, "certificate")?, "certificate", path)?;
    Ok(certs.swap_remove(0))
}

fn parse_certs(pem: &[u8], what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|e| Error::BadPem {
        what,
        path: path.into(),
        reason: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(Error::BadPem {
            what,
            path: path.into(),
            reason: "it contains no `BEGIN CERTIFICATE` section".into(),
        });
    }
    Ok(certs)
}

fn parse_key(pem: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| Error::BadPem {
        what: "private key",
        path: path.into(),
        reason: match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "it contains no `BEGIN PRIVATE KEY` (or EC/RSA PRIVATE KEY) section; is it a certificate?".into()
            }
            other => other.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_parse_strictly() {
        assert_eq!(parse_node_name("n3.ballot"), Some(NodeId(3)));
        assert_eq!(parse_node_name("N12.Ballot"), Some(NodeId(12)));
        for bad in ["n0.ballot", "n03.ballot", "n.ballot", "n3.ballot.evil", "x3.ballot", "n3x.ballot", "client.ballot"]
        {
            assert_eq!(parse_node_name(bad), None, "{bad}");
        }
        assert_eq!(parse_node_name("n99999999999999999999999.ballot"), None, "overflow is not an identity");
        assert_eq!(parse_node_name(&node_dns_name(NodeId(42))), Some(NodeId(42)));
    }
}
