//! Serves the client protocol (ALPN `ballot-client/1`) from a node's QUIC endpoint.
//!
//! Each request arrives on its own bidirectional stream as one ballot-wire `Request`
//! frame holding a [`ClientRequest`]; the answer is one `Response` frame, or for a
//! watch a stream of them until either side stops.

use ballot_core::service::StateMachine;
use ballot_quic::{ClientConnection, ClientListener, RequestStream};
use ballot_wire::{ClientError, ClientReply, ClientRequest, Codec, Request, Response};

use ballot_node::NodeHandle;

type Reply<S> = ClientReply<<S as StateMachine>::Response, <S as StateMachine>::Event>;

/// Accepts client connections until the listener closes.
pub async fn serve_clients<S: StateMachine>(listener: ClientListener, node: NodeHandle<S>, codec: Codec) {
    loop {
        match listener.accept().await {
            Ok(conn) => {
                tokio::spawn(serve_connection(conn, node.clone(), codec));
            }
            Err(ballot_quic::Error::Closed) => return,
            Err(e) => tracing::debug!(error = %e, "client connection failed"),
        }
    }
}

async fn serve_connection<S: StateMachine>(conn: ClientConnection, node: NodeHandle<S>, codec: Codec) {
    let remote = conn.remote_address();
    loop {
        match conn.accept_stream().await {
            Ok(Some(stream)) => {
                tokio::spawn(serve_stream(stream, node.clone(), codec));
            }
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(%remote, error = %e, "client connection ended");
                return;
            }
        }
    }
}

async fn send<S: StateMachine>(
    stream: &mut RequestStream,
    codec: Codec,
    id: u64,
    result: Result<Reply<S>, ClientError>,
) -> bool {
    let response = Response { id, result };
    let frame = match codec.encode(&response) {
        Ok(f) => f,
        Err(e) => match codec.encode(&Response::<Reply<S>>::err(id, ClientError::from(e))) {
            Ok(f) => f,
            Err(_) => return false,
        },
    };
    stream.send_response(frame).await.is_ok()
}

async fn serve_stream<S: StateMachine>(mut stream: RequestStream, node: NodeHandle<S>, codec: Codec) {
    let frame = match stream.read_request().await {
        Ok(Some(frame)) => frame,
        Ok(None) => return,
        Err(e) => {
            tracing::debug!(error = %e, "bad client request frame");
            let _ = send::<S>(&mut stream, codec, 0, Err(ClientError::InvalidRequest(e.to_string()))).await;
            let _ = stream.finish();
            return;
        }
    };
    let request: Request<ClientRequest<S::Request>> = match codec.decode(&frame) {
        Ok(r) => r,
        Err(e) => {
            let error = match e {
                ballot_wire::WireError::Malformed { .. } | ballot_wire::WireError::TrailingBytes { .. } => {
                    ClientError::InvalidRequest(format!("the request does not decode for this service: {e}"))
                }
                other => other.into(),
            };
            let _ = send::<S>(&mut stream, codec, 0, Err(error)).await;
            let _ = stream.finish();
            return;
        }
    };
    let id = request.id;
    match request.body {
        ClientRequest::Status => {
            let _ = send::<S>(&mut stream, codec, id, Ok(ClientReply::Status(node.status()))).await;
        }
        ClientRequest::Call { command } => {
            let result = node.request_command(command).await.map(ClientReply::Response);
            let _ = send::<S>(&mut stream, codec, id, result).await;
        }
        ClientRequest::Ordered { command } => {
            let result = node.request_ordered(command).await.map(ClientReply::Response);
            let _ = send::<S>(&mut stream, codec, id, result).await;
        }
        ClientRequest::Watch { request } => match node.watch(request).await {
            Err(e) => {
                let _ = send::<S>(&mut stream, codec, id, Err(e)).await;
            }
            Ok(mut events) => loop {
                let item = tokio::select! {
                    item = events.recv() => item,
                    () = stream.stopped() => return,
                };
                match item {
                    Some(Ok(event)) => {
                        if !send::<S>(&mut stream, codec, id, Ok(ClientReply::Event(event))).await {
                            return;
                        }
                    }
                    Some(Err(e)) => {
                        let _ = send::<S>(&mut stream, codec, id, Err(e)).await;
                        break;
                    }
                    None => {
                        let stopping =
                            ClientError::Unavailable("the node is shutting down; resume the watch elsewhere".into());
                        let _ = send::<S>(&mut stream, codec, id, Err(stopping)).await;
                        break;
                    }
                }
            },
        },
    }
    let _ = stream.finish();
}
