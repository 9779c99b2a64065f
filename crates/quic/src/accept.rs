//! The accepting side: TLS handshakes, ALPN routing, peer authentication and the
//! inbound readers that feed [`Transport::recv`](ballot_core::Transport::recv).

use std::net::SocketAddr;
use std::sync::Arc;

use ballot_core::{Incoming, NodeId};
use ballot_wire::FrameKind;
use tokio::time::Instant;

use crate::client::ClientConnection;
use crate::metrics::{HandshakeFailure, Side, received_bytes};
use crate::stream::{FrameReader, HelloError, classify, close_reason, negotiation_failure, read_hello, write_hello};
use crate::transport::Shared;
use crate::{ALPN_CLIENT, ALPN_PEER, CLOSE_BUSY, CLOSE_NOT_SERVING, CLOSE_PROTOCOL, CLOSE_REFUSED, CLOSE_SUPERSEDED};
use crate::{Error, PeerIdentity};

pub(crate) async fn accept_loop(shared: Arc<Shared>) {
    while let Some(incoming) = shared.endpoint.accept().await {
        if shared.is_closed() {
            incoming.refuse();
            continue;
        }
        let Ok(permit) = shared.handshake_slots.clone().try_acquire_owned() else {
            tracing::warn!(node = %shared.id, remote = %incoming.remote_address(), "too many handshakes in progress; refusing a connection");
            incoming.refuse();
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let Some((conn, side)) = handshake(&shared, incoming, remote).await else { return };
            match side {
                Side::Peer => {
                    let verified = authenticate_peer(&shared, &conn, remote).await;
                    drop(permit);
                    if let Some(peer) = verified {
                        read_peer(&shared, conn, peer, remote).await;
                    }
                }
                Side::Client => authenticate_client(&shared, &conn, remote).await,
            }
        });
    }
}

/// The TLS handshake: returns the connection and which protocol its ALPN selected.
async fn handshake(
    shared: &Shared,
    incoming: quinn::Incoming,
    remote: SocketAddr,
) -> Option<(quinn::Connection, Side)> {
    let deadline = Instant::now() + shared.config.handshake_timeout;
    let mut connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(node = %shared.id, %remote, "cannot accept connection: {e}");
            return None;
        }
    };
    let fail = |side, reason: HandshakeFailure, detail: &str| {
        shared.record_failure(side, reason);
        tracing::warn!(node = %shared.id, %remote, reason = %reason, "refused {} connection: {detail}", side_name(side));
    };
    // The ALPN is known once the ClientHello is processed, before the client's
    // certificate is checked, so failures can be attributed to peers or clients.
    let side = match tokio::time::timeout_at(deadline, connecting.handshake_data()).await {
        Ok(Ok(data)) => {
            let alpn = data.downcast::<quinn::crypto::rustls::HandshakeData>().ok().and_then(|d| d.protocol);
            match alpn.as_deref() {
                Some(ALPN_CLIENT) => Side::Client,
                Some(ALPN_PEER) => Side::Peer,
                _ => {
                    fail(Side::Peer, HandshakeFailure::NoAlpn, "no ALPN protocol negotiated");
                    return None;
                }
            }
        }
        Ok(Err(e)) => {
            report(shared, Side::Peer, remote, &e);
            return None;
        }
        Err(_) => {
            fail(Side::Peer, HandshakeFailure::Timeout, "TLS handshake did not finish in time");
            return None;
        }
    };
    match tokio::time::timeout_at(deadline, connecting).await {
        Ok(Ok(conn)) => Some((conn, side)),
        Ok(Err(e)) => {
            report(shared, side, remote, &e);
            None
        }
        Err(_) => {
            fail(side, HandshakeFailure::Timeout, "TLS handshake did not finish in time");
            None
        }
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Peer => "peer",
        Side::Client => "client",
    }
}

/// Counts and logs a failed handshake, or just logs a connection that went away.
fn report(shared: &Shared, side: Side, remote: SocketAddr, e: &quinn::ConnectionError) {
    match classify(e) {
        (Some(reason), detail) => {
            shared.record_failure(side, reason);
            tracing::warn!(node = %shared.id, %remote, reason = %reason, "refused {} connection: {detail}", side_name(side));
        }
        (None, detail) => tracing::debug!(node = %shared.id, %remote, "incoming connection failed: {detail}"),
    }
}

/// Refuses `conn`: counts, warns, closes with [`CLOSE_REFUSED`] and the reason.
fn refuse(shared: &Shared, side: Side, conn: &quinn::Connection, reason: HandshakeFailure, detail: &str) {
    shared.record_failure(side, reason);
    tracing::warn!(
        node = %shared.id,
        remote = %conn.remote_address(),
        reason = %reason,
        "refused {} connection: {detail}",
        side_name(side)
    );
    conn.close(CLOSE_REFUSED, close_reason(&format!("{} refused the connection: {detail}", shared.id)));
}

/// The verified certificate identity of `conn`.
fn identity(shared: &Shared, side: Side, conn: &quinn::Connection) -> Option<PeerIdentity> {
    match PeerIdentity::of_connection(conn) {
        Some(Ok(id)) => Some(id),
        Some(Err(e)) => {
            refuse(shared, side, conn, HandshakeFailure::BadCertificate, &e.to_string());
            None
        }
        None => {
            refuse(shared, side, conn, HandshakeFailure::NoCertificate, "no client certificate");
            None
        }
    }
}

/// Reads the remote `Hello` on the first bidirectional stream, checks it with `check`
/// (which returns the reason to refuse), and answers with ours. Returns the reader of
/// the stream, positioned after the `Hello`, and the negotiated version.
async fn exchange_hellos(
    shared: &Shared,
    side: Side,
    conn: &quinn::Connection,
    remote: SocketAddr,
    check: impl FnOnce(&ballot_wire::Hello) -> Result<(), (HandshakeFailure, String)>,
) -> Option<(FrameReader, u8)> {
    let timeout = shared.config.handshake_timeout;
    let first = async {
        let (send, recv) = conn
            .accept_bi()
            .await
            .map_err(|e| HelloError::Io(Error::ConnectionLost { addr: remote, reason: classify(&e).1 }))?;
        let mut reader = FrameReader::new(recv, shared.config.max_frame_size, remote);
        let hello = read_hello(&mut reader).await?;
        Ok::<_, HelloError>((send, reader, hello))
    };
    let (mut send, reader, hello) = match tokio::time::timeout(timeout, first).await {
        Ok(Ok(got)) => got,
        Ok(Err(HelloError::Bad(detail))) => {
            refuse(shared, side, conn, HandshakeFailure::BadHello, &detail);
            return None;
        }
        Ok(Err(HelloError::Io(e))) => {
            tracing::debug!(node = %shared.id, %remote, "connection ended during the handshake: {e}");
            return None;
        }
        Err(_) => {
            refuse(shared, side, conn, HandshakeFailure::Timeout, "no Hello within the handshake timeout");
            return None;
        }
    };
    if let Err((reason, detail)) = check(&hello) {
        refuse(shared, side, conn, reason, &detail);
        return None;
    }
    let version = match shared.hello.negotiate(&hello) {
        Ok(v) => v,
        Err(e) => {
            refuse(shared, side, conn, negotiation_failure(&e), &e.to_string());
            return None;
        }
    };
    let mut reader = reader;
    reader.set_version(version);
    let answered = async {
        write_hello(&mut send, &shared.hello, remote).await?;
        send.finish().map_err(|_| Error::Closed)
    };
    if let Err(e) =
        tokio::time::timeout(timeout, answered).await.unwrap_or(Err(Error::Timeout { what: "Hello", after: timeout }))
    {
        tracing::debug!(node = %shared.id, %remote, "cannot answer the Hello: {e}");
        return None;
    }
    Some((reader, version))
}

/// Checks a peer's certificate and `Hello`; returns its id and the stream to read.
async fn authenticate_peer(
    shared: &Shared,
    conn: &quinn::Connection,
    remote: SocketAddr,
) -> Option<(NodeId, FrameReader)> {
    let identity = identity(shared, Side::Peer, conn)?;
    let Some(cert_node) = identity.node else {
        let detail =
            format!("the certificate names no node (names {:?}); peers need an n<id>.ballot name", identity.dns_names);
        refuse(shared, Side::Peer, conn, HandshakeFailure::NoNodeIdentity, &detail);
        return None;
    };
    let me = shared.id;
    let check = |hello: &ballot_wire::Hello| match hello.node {
        None => Err((HandshakeFailure::BadHello, format!("the Hello of {cert_node} carries no node id"))),
        Some(claimed) if claimed != cert_node => Err((
            HandshakeFailure::IdMismatch,
            format!("the peer claims to be {claimed} but its certificate is for {cert_node}"),
        )),
        Some(_) if cert_node == me => Err((
            HandshakeFailure::SelfId,
            format!("a peer claims to be this node ({me}); are two nodes using one id?"),
        )),
        Some(_) => Ok(()),
    };
    let (reader, _version) = exchange_hellos(shared, Side::Peer, conn, remote, check).await?;
    tracing::debug!(node = %me, peer = %cert_node, %remote, "accepted peer connection");
    Some((cert_node, reader))
}

/// Delivers the frames of an authenticated peer connection to the inbox.
async fn read_peer(
    shared: &Shared,
    conn: quinn::Connection,
    (peer, mut reader): (NodeId, FrameReader),
    remote: SocketAddr,
) {
    reader.count_into(received_bytes(peer));
    let (seq, mut stop, _done) = shared.register_inbound(peer).await;
    loop {
        let next = tokio::select! {
            biased;
            _ = &mut stop => {
                conn.close(CLOSE_SUPERSEDED, b"superseded by a newer connection");
                break;
            }
            f = reader.next() => f,
        };
        match next {
            Ok(Some(frame)) if frame.kind == FrameKind::Message => {
                let msg = Incoming { from: peer, frame: frame.payload };
                tokio::select! {
                    biased;
                    _ = &mut stop => break,
                    sent = shared.inbox_tx.send(msg) => if sent.is_err() { break },
                }
            }
            Ok(Some(frame)) => {
                let detail = format!("unexpected {:?} frame on the peer stream", frame.kind);
                tracing::warn!(node = %shared.id, %peer, %remote, "closing peer connection: {detail}");
                conn.close(CLOSE_PROTOCOL, close_reason(&detail));
                break;
            }
            Ok(None) => {
                tracing::debug!(node = %shared.id, %peer, "peer finished its stream");
                break;
            }
            Err(Error::Wire(e)) => {
                tracing::warn!(node = %shared.id, %peer, %remote, "closing peer connection: {e}");
                conn.close(CLOSE_PROTOCOL, close_reason(&e.to_string()));
                break;
            }
            Err(e) => {
                tracing::debug!(node = %shared.id, %peer, "peer connection ended: {e}");
                break;
            }
        }
    }
    reader.stop(CLOSE_PROTOCOL);
    shared.unregister_inbound(peer, seq);
}

/// Checks a client's certificate and `Hello`, then queues the connection for the
/// listener.
async fn authenticate_client(shared: &Shared, conn: &quinn::Connection, remote: SocketAddr) {
    if !shared.config.serve_clients {
        conn.close(CLOSE_NOT_SERVING, b"this node does not serve clients");
        return;
    }
    conn.set_max_concurrent_bi_streams(quinn::VarInt::from_u32(shared.config.max_client_streams));
    let Some(identity) = identity(shared, Side::Client, conn) else { return };
    let cert_node = identity.node;
    let check = |hello: &ballot_wire::Hello| match (hello.node, cert_node) {
        (Some(claimed), cert) if cert != Some(claimed) => Err((
            HandshakeFailure::IdMismatch,
            format!("the client claims to be {claimed} but its certificate names {cert:?}"),
        )),
        _ => Ok(()),
    };
    let Some((_reader, version)) = exchange_hellos(shared, Side::Client, conn, remote, check).await else {
        return;
    };
    let client = ClientConnection::new(conn.clone(), identity, version, shared.config.max_frame_size);
    match shared.clients_tx.try_send(client) {
        Ok(()) => tracing::debug!(node = %shared.id, %remote, "accepted client connection"),
        Err(async_channel::TrySendError::Full(_)) => {
            tracing::warn!(node = %shared.id, %remote, "client backlog full; refusing a client");
            conn.close(CLOSE_BUSY, b"too many pending client connections; retry later");
        }
        Err(async_channel::TrySendError::Closed(_)) => {
            conn.close(CLOSE_NOT_SERVING, b"this node is shutting down");
        }
    }
}
