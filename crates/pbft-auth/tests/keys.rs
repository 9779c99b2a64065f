//! Keys from certificates: signed client requests, replica keys, and the refusals.

mod common;

use ballot_core::NodeId;
use ballot_pbft::{RequestAuth, Signer, Verifier};
use ballot_pbft_auth::{AuthError, ClientAuth, ClusterKeys, NodeSigner, RequestSigner, SignedRequest};
use common::Ca;

fn node_name(id: NodeId) -> String {
    format!("n{}.ballot", id.get())
}

#[test]
fn a_request_verifies_only_as_its_client_signed_it() {
    let ca = Ca::new();
    let (cert, key) = ca.issue("client.ballot", false);
    let signer = RequestSigner::new("prod", &cert, &key).unwrap();
    let auth = ClientAuth::new("prod", std::slice::from_ref(&ca.cert)).unwrap();
    let request = signer.sign(b"put x 1");
    assert_eq!(auth.check(&request), Ok(()));
    assert_eq!(auth.body(&request).unwrap(), &b"put x 1"[..]);

    // Any changed byte is refused: header, certificate, signature or body.
    for i in 0..request.len() {
        let mut altered = request.to_vec();
        altered[i] ^= 0x40;
        assert!(!auth.verify(&altered), "byte {i} altered");
    }
    let mut longer = request.to_vec();
    longer.push(0);
    assert_eq!(auth.check(&longer), Err(AuthError::BadSignature), "a body with a byte appended");

    // Signed for another cluster of the same CA.
    let other = RequestSigner::new("staging", &cert, &key).unwrap().sign(b"put x 1");
    assert_eq!(auth.check(&other), Err(AuthError::BadSignature));

    // A client of another CA.
    let stranger = Ca::new();
    let (cert2, key2) = stranger.issue("client.ballot", false);
    let forged = RequestSigner::new("prod", &cert2, &key2).unwrap().sign(b"put x 1");
    assert!(matches!(auth.check(&forged), Err(AuthError::Untrusted { usage: "client authentication", .. })));

    // Another client's signature under this client's certificate.
    let (_, key3) = ca.issue("client.ballot", false);
    assert!(matches!(RequestSigner::new("prod", &cert, &key3), Err(AuthError::KeyMismatch { .. })));
    let parts = SignedRequest::parse(&request).unwrap();
    let other_client = RequestSigner::new("prod", &ca.issue("client.ballot", false).0, &key3);
    assert!(other_client.is_err(), "a fresh certificate does not match an unrelated key either");
    assert_eq!(parts.body, b"put x 1");
}

#[test]
fn malformed_requests_get_a_clear_error_and_no_panic() {
    let ca = Ca::new();
    let (cert, key) = ca.issue("client.ballot", false);
    let request = RequestSigner::new("prod", &cert, &key).unwrap().sign(b"body");
    let auth = ClientAuth::new("prod", std::slice::from_ref(&ca.cert)).unwrap();
    for len in 0..request.len() - 4 {
        let cut = bytes::Bytes::copy_from_slice(&request[..len]);
        assert!(!auth.verify(&cut), "{len} bytes");
        if len < 4 + 2 + cert.len() + 64 {
            assert!(auth.body(&cut).is_err(), "{len} bytes have no body");
        }
    }
    let unsigned = bytes::Bytes::from_static(b"\x00\x01 a plain command");
    let err = auth.body(&unsigned).unwrap_err();
    assert!(err.contains("not a signed request") && err.contains("--consensus pbft"), "{err}");
    let err = auth.check(b"BPR\x07rest").unwrap_err().to_string();
    assert!(err.contains("unknown layout version 7"), "{err}");
    // A certificate field holding garbage.
    let mut garbage = b"BPR\x01\x00\x10".to_vec();
    garbage.extend_from_slice(&[0xab; 16 + 64 + 3]);
    assert!(matches!(auth.check(&garbage), Err(AuthError::BadCertificate { .. })));
}

#[test]
fn a_client_certificate_is_checked_against_the_ca_once() {
    let ca = Ca::new();
    let auth = ClientAuth::new("prod", std::slice::from_ref(&ca.cert)).unwrap();
    let (cert, key) = ca.issue("client.ballot", false);
    let signer = RequestSigner::new("prod", &cert, &key).unwrap();
    for i in 0..10 {
        assert!(auth.verify(&signer.sign(format!("put k{i} v").as_bytes())));
    }
    assert_eq!(auth.cached_certificates(), 1);
    let (cert2, key2) = ca.issue("client.ballot", false);
    assert!(auth.verify(&RequestSigner::new("prod", &cert2, &key2).unwrap().sign(b"x")));
    assert_eq!(auth.cached_certificates(), 2);
    // A refused certificate is not remembered.
    let stranger = Ca::new();
    let (cert3, key3) = stranger.issue("client.ballot", false);
    assert!(!auth.verify(&RequestSigner::new("prod", &cert3, &key3).unwrap().sign(b"x")));
    assert_eq!(auth.cached_certificates(), 2);
}

#[test]
fn replica_keys_come_from_node_certificates_checked_against_the_ca_and_name() {
    let ca = Ca::new();
    let nodes: Vec<_> = (1..=4).map(|i| ca.issue(&node_name(NodeId(i)), true)).collect();
    let keys = ClusterKeys::from_certificates(
        std::slice::from_ref(&ca.cert),
        (1..=4).map(|i| (NodeId(i), nodes[i as usize - 1].0.clone())),
        node_name,
    )
    .unwrap();
    assert_eq!(keys.nodes().collect::<Vec<_>>(), (1..=4).map(NodeId).collect::<Vec<_>>());
    let n2 = NodeSigner::new(&nodes[1].0, &nodes[1].1).unwrap();
    let signature = n2.sign(b"digest");
    assert!(keys.verify(NodeId(2), b"digest", &signature));
    assert!(!keys.verify(NodeId(3), b"digest", &signature), "a signature does not transfer to another node");
    assert!(!keys.verify(NodeId(2), b"other", &signature));
    assert!(!keys.verify(NodeId(9), b"digest", &signature), "an unknown signer");

    // n3's certificate filed as n4's.
    let err =
        ClusterKeys::from_certificates(std::slice::from_ref(&ca.cert), [(NodeId(4), nodes[2].0.clone())], node_name)
            .unwrap_err();
    assert_eq!(err, AuthError::WrongName { what: "the certificate of n4".into(), expected: "n4.ballot".into() });
    // Of another CA.
    let stranger = Ca::new().issue("n1.ballot", true).0;
    let err =
        ClusterKeys::from_certificates(std::slice::from_ref(&ca.cert), [(NodeId(1), stranger)], node_name).unwrap_err();
    assert!(matches!(err, AuthError::Untrusted { .. }), "{err}");
    // A client certificate cannot be a node's.
    let client = ca.issue("n1.ballot", false).0;
    let err =
        ClusterKeys::from_certificates(std::slice::from_ref(&ca.cert), [(NodeId(1), client)], node_name).unwrap_err();
    assert!(matches!(err, AuthError::Untrusted { usage: "node authentication", .. }), "{err}");
    // Not Ed25519.
    let (ecdsa, ecdsa_key) = ca.issue_with("n1.ballot", true, &rcgen::PKCS_ECDSA_P256_SHA256);
    let err = ClusterKeys::from_certificates(std::slice::from_ref(&ca.cert), [(NodeId(1), ecdsa.clone())], node_name)
        .unwrap_err();
    assert!(err.to_string().contains("not an Ed25519 key") && err.to_string().contains("ballot certs"), "{err}");
    assert!(matches!(NodeSigner::new(&ecdsa, &ecdsa_key), Err(AuthError::NotEd25519 { .. })));
    assert!(matches!(NodeSigner::new(&nodes[0].0, &nodes[1].1), Err(AuthError::KeyMismatch { .. })));
}
