//! Development certificates: a cluster CA, node certificates and a client certificate,
//! generated with rcgen, in memory ([`DevCa`]) or as PEM files ([`generate_dev_certs`]).
//!
//! # Identity scheme
//!
//! Node `n{id}`'s certificate carries the DNS subject alternative name `n{id}.ballot`
//! (its identity, see [`node_dns_name`]) plus the host names and IP addresses it is
//! reached at; it is valid for both TLS server and client authentication, since a node
//! both accepts and dials. The client certificate carries `client.ballot` and is valid
//! for client authentication only, so it cannot pose as a node. Names ending in
//! `.ballot` are identities and need not resolve.
//!
//! Keys are Ed25519, so that PBFT replicas and clients can sign with them too (see
//! `ballot-pbft-auth`); TLS 1.3 with the ring provider authenticates with them as with
//! any other key.
//!
//! These certificates are for development and tests: the CA key sits next to the
//! certificates and the validity is ten years. Production clusters should issue
//! certificates with the same names from their own CA.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ballot_core::NodeId;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::tls::{CA_FILE, CA_KEY_FILE, CLIENT_FILE, CLIENT_KEY_FILE, node_files};
use crate::{CLIENT_DNS_NAME, Error, IDENTITY_SUFFIX, TlsConfig, node_dns_name};

/// A development certificate authority held in memory.
///
/// ```
/// use ballot_core::NodeId;
/// use ballot_quic::DevCa;
///
/// let ca = DevCa::generate()?;
/// let n1 = ca.issue_node(NodeId(1), &["localhost".into(), "127.0.0.1".into()])?;
/// let tls = ca.tls_config(&n1)?;
/// assert_eq!(tls.identity().node, Some(NodeId(1)));
/// # Ok::<(), ballot_quic::Error>(())
/// ```
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    cert: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa").finish_non_exhaustive()
    }
}

/// A certificate issued by a [`DevCa`], with its private key.
#[derive(Clone)]
pub struct IssuedCert {
    /// The certificate, DER.
    pub cert: CertificateDer<'static>,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    key_der: Vec<u8>,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

impl IssuedCert {
    /// The private key, DER.
    #[must_use]
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// Years since 1970 of `now`, good to a day: enough for a validity window.
fn current_year() -> i32 {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    1970 + i32::try_from(secs / 31_556_952).unwrap_or(0)
}

fn gen_err(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> Error {
    let what = what.into();
    move |source| Error::CertGen { what, source }
}

fn base_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let year = current_year();
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + 10, 1, 1);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "ballot");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.use_authority_key_identifier_extension = true;
    params
}

impl DevCa {
    /// Generates a new CA (Ed25519).
    ///
    /// # Errors
    /// [`Error::CertGen`] when key or certificate generation fails.
    pub fn generate() -> Result<Self, Error> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(gen_err("CA key"))?;
        // A name unique to this CA (from its key), so that certificates of another
        // development CA are reported as "unknown CA", not as a bad signature.
        let key_id: String =
            CertificateParams::default().key_identifier(&key).iter().take(4).map(|b| format!("{b:02x}")).collect();
        let mut params = base_params(&format!("ballot development CA {key_id}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = false;
        let cert = params.self_signed(&key).map_err(gen_err("CA certificate"))?;
        let key_pem = key.serialize_pem();
        Ok(DevCa { cert: cert.der().clone(), cert_pem: cert.pem(), key_pem, issuer: Issuer::new(params, key) })
    }

    /// The CA certificate, DER.
    #[must_use]
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The CA certificate, PEM.
    #[must_use]
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PEM. Keep it secret: it can issue node identities.
    #[must_use]
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Issues node `id`'s certificate: DNS name `n{id}.ballot` plus `hosts` (DNS names
    /// or IP addresses the node is reached at), valid for server and client auth.
    ///
    /// # Errors
    /// [`Error::Config`] for node id 0, a host that is itself a `.ballot` identity, or
    /// a host that is neither a DNS name nor an IP address; [`Error::CertGen`] when
    /// generation fails.
    pub fn issue_node(&self, id: NodeId, hosts: &[String]) -> Result<IssuedCert, Error> {
        if id.get() == 0 {
            return Err(Error::Config("node ids start at 1".into()));
        }
        let mut names = vec![node_dns_name(id)];
        for host in hosts {
            if host.to_ascii_lowercase().ends_with(IDENTITY_SUFFIX) {
                return Err(Error::Config(format!(
                    "host {host:?} ends in {IDENTITY_SUFFIX:?}, which is reserved for node and client identities"
                )));
            }
            if !names.contains(host) {
                names.push(host.clone());
            }
        }
        let what = format!("certificate for {id}");
        let mut params = base_params(&id.to_string());
        params.subject_alt_names = names.iter().map(|n| san(n, &what)).collect::<Result<_, _>>()?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, &what)
    }

    /// Issues a client certificate with DNS name `name` (use [`CLIENT_DNS_NAME`] unless
    /// clients need telling apart), valid for client auth only.
    ///
    /// # Errors
    /// [`Error::Config`] when `name` would identify a node or is not a DNS name;
    /// [`Error::CertGen`] when generation fails.
    pub fn issue_client(&self, name: &str) -> Result<IssuedCert, Error> {
        if crate::tls::parse_node_name(name).is_some() {
            return Err(Error::Config(format!("client name {name:?} is a node identity")));
        }
        let what = format!("client certificate {name}");
        let mut params = base_params(name);
        params.subject_alt_names = vec![san(name, &what)?];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, &what)
    }

    fn issue(&self, params: CertificateParams, what: &str) -> Result<IssuedCert, Error> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(gen_err(format!("key for {what}")))?;
        let cert = params.signed_by(&key, &self.issuer).map_err(gen_err(what))?;
        Ok(IssuedCert {
            cert: cert.der().clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        })
    }

    /// A [`TlsConfig`] trusting this CA and presenting `issued`.
    ///
    /// # Errors
    /// As [`TlsConfig::new`].
    pub fn tls_config(&self, issued: &IssuedCert) -> Result<TlsConfig, Error> {
        TlsConfig::new(vec![self.cert.clone()], vec![issued.cert.clone()], issued.key())
    }
}

fn san(name: &str, what: &str) -> Result<SanType, Error> {
    match name.parse::<IpAddr>() {
        Ok(ip) => Ok(SanType::IpAddress(ip)),
        Err(_) => {
            if rustls_pki_types::DnsName::try_from(name).is_err() {
                return Err(Error::Config(format!("{what}: {name:?} is neither a DNS name nor an IP address")));
            }
            Ok(SanType::DnsName(name.try_into().map_err(gen_err(format!("{what}: name {name:?}")))?))
        }
    }
}

/// The files [`generate_dev_certs`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevCertFiles {
    /// `ca.pem`.
    pub ca: PathBuf,
    /// `ca-key.pem`.
    pub ca_key: PathBuf,
    /// Per node: id, `n{id}.pem`, `n{id}-key.pem`.
    pub nodes: Vec<(NodeId, PathBuf, PathBuf)>,
    /// `client.pem`.
    pub client: PathBuf,
    /// `client-key.pem`.
    pub client_key: PathBuf,
}

/// Writes a development CA (`ca.pem`, `ca-key.pem`), a certificate and key per node
/// (`n1.pem`, `n1-key.pem`, …; DNS name `n{id}.ballot` plus `hosts`) and a client
/// certificate (`client.pem`, `client-key.pem`; DNS name `client.ballot`) into `dir`,
/// creating it if needed. Key files are readable by the owner only (on Unix).
///
/// Refuses to overwrite existing files: a new CA would invalidate every certificate
/// already handed out. Load the results with [`TlsConfig::load_node`] and
/// [`TlsConfig::load_client`].
///
/// # Errors
/// [`Error::AlreadyExists`] when a file is present, [`Error::WriteFile`] on I/O errors,
/// and the errors of [`DevCa::issue_node`].
pub fn generate_dev_certs(dir: &Path, node_ids: &[NodeId], hosts: &[String]) -> Result<DevCertFiles, Error> {
    let files = DevCertFiles {
        ca: dir.join(CA_FILE),
        ca_key: dir.join(CA_KEY_FILE),
        nodes: node_ids
            .iter()
            .map(|&id| {
                let (cert, key) = node_files(dir, id);
                (id, cert, key)
            })
            .collect(),
        client: dir.join(CLIENT_FILE),
        client_key: dir.join(CLIENT_KEY_FILE),
    };
    let mut all: Vec<&Path> = vec![&files.ca, &files.ca_key, &files.client, &files.client_key];
    for (_, cert, key) in &files.nodes {
        all.push(cert);
        all.push(key);
    }
    if let Some(existing) = all.iter().find(|p| p.exists()) {
        return Err(Error::AlreadyExists { path: existing.to_path_buf() });
    }
    // Issue everything before writing anything, so a bad host name leaves no files.
    let ca = DevCa::generate()?;
    let nodes = node_ids.iter().map(|&id| ca.issue_node(id, hosts)).collect::<Result<Vec<_>, _>>()?;
    let client = ca.issue_client(CLIENT_DNS_NAME)?;

    std::fs::create_dir_all(dir).map_err(|source| Error::WriteFile { path: dir.into(), source })?;
    write_file(&files.ca, ca.cert_pem(), false)?;
    write_file(&files.ca_key, ca.key_pem(), true)?;
    for ((_, cert_path, key_path), issued) in files.nodes.iter().zip(&nodes) {
        write_file(cert_path, &issued.cert_pem, false)?;
        write_file(key_path, &issued.key_pem, true)?;
    }
    write_file(&files.client, &client.cert_pem, false)?;
    write_file(&files.client_key, &client.key_pem, true)?;
    tracing::info!(dir = %dir.display(), nodes = node_ids.len(), "wrote development certificates");
    Ok(files)
}

fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), Error> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let err = |source| Error::WriteFile { path: path.into(), source };
    let mut file = options.open(path).map_err(err)?;
    file.write_all(contents.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_certificates_carry_the_identity_and_hosts() {
        let ca = DevCa::generate().unwrap();
        let n7 = ca.issue_node(NodeId(7), &["db7.example.com".into(), "10.1.2.3".into()]).unwrap();
        let id = crate::PeerIdentity::of(&n7.cert).unwrap();
        assert_eq!(id.node, Some(NodeId(7)));
        assert_eq!(id.dns_names, vec!["n7.ballot".to_owned(), "db7.example.com".to_owned()]);
        let client = ca.issue_client(CLIENT_DNS_NAME).unwrap();
        assert_eq!(crate::PeerIdentity::of(&client.cert).unwrap().node, None);
    }

    #[test]
    fn reserved_and_invalid_names_are_refused() {
        let ca = DevCa::generate().unwrap();
        assert!(matches!(ca.issue_node(NodeId(1), &["n2.ballot".into()]), Err(Error::Config(_))));
        assert!(matches!(ca.issue_node(NodeId(0), &[]), Err(Error::Config(_))));
        assert!(matches!(ca.issue_client("n1.ballot"), Err(Error::Config(_))));
        assert!(matches!(ca.issue_node(NodeId(1), &["bad name!".into()]), Err(Error::Config(_))));
    }
}
