//! Certificates for the tests: a throwaway Ed25519 CA issuing node and client
//! certificates, as `ballot certs` does.

#![allow(dead_code)]

use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A throwaway CA.
pub struct Ca {
    /// Its certificate.
    pub cert: CertificateDer<'static>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Ca {
    /// A new Ed25519 CA.
    pub fn new() -> Self {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca { cert: cert.der().clone(), issuer: rcgen::Issuer::new(params, key) }
    }

    /// An Ed25519 certificate naming `name`, for client authentication (and server
    /// authentication too if `node`).
    pub fn issue(&self, name: &str, node: bool) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        self.issue_with(name, node, &rcgen::PKCS_ED25519)
    }

    /// Like [`issue`](Self::issue), with a key of `alg`.
    pub fn issue_with(
        &self,
        name: &str,
        node: bool,
        alg: &'static rcgen::SignatureAlgorithm,
    ) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = rcgen::KeyPair::generate_for(alg).expect("key");
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).expect("params");
        params.extended_key_usages = if node {
            vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth]
        } else {
            vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth]
        };
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        (cert.der().clone(), PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())))
    }
}
