//! Development certificate files: generation, loading, and clear errors for bad files.

mod common;

use std::time::Duration;

use ballot_core::{NodeId, Transport};
use ballot_quic::{ClientConnector, ClientOptions, Error, QuicConfig, QuicTransport, TlsConfig, generate_dev_certs};
use bytes::Bytes;

fn hosts() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into()]
}

#[tokio::test]
async fn generated_files_load_and_secure_a_cluster() {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let files = generate_dev_certs(dir.path(), &[NodeId(1), NodeId(2), NodeId(3)], &hosts()).unwrap();
    for name in ["ca.pem", "ca-key.pem", "n1.pem", "n1-key.pem", "n3.pem", "n3-key.pem", "client.pem", "client-key.pem"]
    {
        assert!(dir.path().join(name).is_file(), "{name} must be written");
    }
    assert_eq!(files.nodes.len(), 3);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&files.ca_key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "keys must not be readable by others: {mode:o}");
    }
    // Generating again would replace the CA: refused.
    assert!(matches!(generate_dev_certs(dir.path(), &[NodeId(1)], &[]), Err(Error::AlreadyExists { .. })));

    let n1 = TlsConfig::load_node(dir.path(), NodeId(1)).unwrap();
    assert_eq!(n1.identity().node, Some(NodeId(1)));
    assert!(n1.identity().dns_names.contains(&"localhost".to_owned()));
    let n2 = TlsConfig::load_node(dir.path(), NodeId(2)).unwrap();
    let client = TlsConfig::load_client(dir.path()).unwrap();
    assert_eq!(client.identity().node, None);

    let a = QuicTransport::bind(common::config(1, n1)).unwrap();
    let b =
        QuicTransport::bind(common::config(2, n2).with_peer(NodeId(1), format!("localhost:{}", a.local_addr().port())))
            .unwrap();
    common::send_retrying(&b, NodeId(1), Bytes::from_static(b"over dev certs")).await;
    let got = common::recv_within(&a, Duration::from_secs(10)).await.expect("frame via a host name");
    assert_eq!((got.from, &got.frame[..]), (NodeId(2), &b"over dev certs"[..]));

    let listener = a.client_listener();
    let connector = ClientConnector::new(&client, common::CLUSTER, ClientOptions::default()).unwrap();
    let (session, accepted) = tokio::join!(connector.connect(a.local_addr()), listener.accept());
    assert_eq!(session.unwrap().node_id(), NodeId(1));
    assert_eq!(accepted.unwrap().identity().dns_names, vec!["client.ballot".to_owned()]);
    a.close().await;
    b.close().await;
}

#[test]
fn bad_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    generate_dev_certs(dir.path(), &[NodeId(1), NodeId(2)], &hosts()).unwrap();
    let p = |name: &str| dir.path().join(name);

    let err = TlsConfig::load(&p("missing.pem"), &p("n1.pem"), &p("n1-key.pem")).unwrap_err();
    assert!(matches!(err, Error::ReadFile { what: "CA certificate", .. }), "{err:?}");
    assert!(err.to_string().contains("missing.pem"), "the message names the file: {err}");

    std::fs::write(p("garbage.pem"), "this is not PEM\n").unwrap();
    let err = TlsConfig::load(&p("garbage.pem"), &p("n1.pem"), &p("n1-key.pem")).unwrap_err();
    assert!(matches!(err, Error::BadPem { what: "CA certificate", .. }), "{err:?}");

    let err = TlsConfig::load(&p("ca.pem"), &p("n1.pem"), &p("n1.pem")).unwrap_err();
    assert!(err.to_string().contains("no `BEGIN PRIVATE KEY`"), "a certificate passed as key: {err}");

    std::fs::write(p("broken.pem"), "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n").unwrap();
    let err = TlsConfig::load(&p("ca.pem"), &p("broken.pem"), &p("n1-key.pem")).unwrap_err();
    assert!(matches!(err, Error::BadPem { .. }), "{err:?}");

    let err = TlsConfig::load(&p("ca.pem"), &p("n1.pem"), &p("n2-key.pem")).unwrap_err();
    assert!(matches!(err, Error::KeyMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("n2-key.pem") && err.to_string().contains("n1.pem"), "{err}");

    std::fs::write(p("huge.pem"), vec![b'A'; 2 * 1024 * 1024]).unwrap();
    let err = TlsConfig::load(&p("huge.pem"), &p("n1.pem"), &p("n1-key.pem")).unwrap_err();
    assert!(matches!(err, Error::FileTooLarge { .. }), "{err:?}");
}

#[tokio::test]
async fn a_certificate_for_another_node_is_refused_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    generate_dev_certs(dir.path(), &[NodeId(1)], &[]).unwrap();
    let tls = TlsConfig::load_node(dir.path(), NodeId(1)).unwrap();
    let err = QuicTransport::bind(QuicConfig::new(NodeId(2), "c", common::loopback(), tls)).unwrap_err();
    assert!(matches!(err, Error::IdentityMismatch { expected: NodeId(2), .. }), "{err:?}");
    assert!(err.to_string().contains("n2.ballot"), "{err}");
}

#[test]
fn binding_outside_a_runtime_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    generate_dev_certs(dir.path(), &[NodeId(1)], &[]).unwrap();
    let tls = TlsConfig::load_node(dir.path(), NodeId(1)).unwrap();
    let err = QuicTransport::bind(QuicConfig::new(NodeId(1), "c", common::loopback(), tls)).unwrap_err();
    assert!(matches!(err, Error::NoRuntime), "{err:?}");
}
