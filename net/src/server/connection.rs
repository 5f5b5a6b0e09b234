//! One client connection: read the size, reject what exceeds
//! `request_bytes_max` before allocating, read the whole frame, decode the
//! header, dispatch, write the response. Requests are answered one at a
//! time, so responses leave in request order. Anything malformed closes the
//! connection with a log line; nothing here panics on input.

use std::rc::Rc;

use bytes::Bytes;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use crate::broker::Shard;
use crate::frame::{SIZE_PREFIX_BYTES, decode_request, frame_size};
use crate::handlers::{Outcome, dispatch};

pub(super) async fn run(mut stream: TcpStream, request_bytes_max: usize, shard: Rc<Shard>) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "unknown".into());
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    loop {
        let mut prefix = [0u8; SIZE_PREFIX_BYTES];
        if let Err(e) = stream.read_exact(&mut prefix).await {
            if e.kind() != std::io::ErrorKind::UnexpectedEof {
                tracing::debug!(%peer, error = %e, "read failed; closing");
            }
            return;
        }
        let size = match frame_size(prefix, request_bytes_max) {
            Ok(size) => size,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "refusing frame; closing connection");
                return;
            }
        };
        let mut frame = vec![0u8; size];
        if let Err(e) = stream.read_exact(&mut frame).await {
            tracing::debug!(%peer, error = %e, "connection closed mid-frame");
            return;
        }
        let request = match decode_request(Bytes::from(frame)) {
            Ok(request) => request,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "bad request; closing connection");
                return;
            }
        };
        let response = match dispatch(&shard, &request).await {
            Outcome::Respond(response) => response,
            Outcome::NoResponse => continue,
            Outcome::Close(e) => {
                tracing::warn!(%peer, error = %e, "cannot answer; closing connection");
                return;
            }
            Outcome::Unsupported { api_key, version } => {
                tracing::warn!(%peer, ?api_key, version, "API or version not served; closing connection");
                return;
            }
        };
        if let Err(e) = stream.write_all(&response).await {
            tracing::debug!(%peer, error = %e, "write failed; closing");
            return;
        }
    }
}
