//! A small DBManager client over one HTTP/2 connection, whose source
//! address can be chosen: the tests use it to call from an address the
//! caller rule must refuse (any of 127.0.0.0/8 is this machine on Linux),
//! and it is what a Rust program would use in place of Katib's Python SDK.
//! It speaks the same bytes as the SDK's generated stubs (the paths and
//! messages of `proto/katib_api.proto`).

use std::net::{IpAddr, SocketAddr};

use axum::http::uri::{PathAndQuery, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpSocket;
use tonic::Status;
use tonic_prost::ProstCodec;

use super::messages::{
    DeleteObservationLogReply, DeleteObservationLogRequest, GetObservationLogReply,
    GetObservationLogRequest, ReportObservationLogReply, ReportObservationLogRequest,
};
use super::{DELETE_PATH, GET_PATH, REPORT_PATH};

/// Why the client could not connect.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TCP connection failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The server.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP/2 handshake failed.
    #[error("HTTP/2 handshake with {addr} failed: {source}")]
    Handshake {
        /// The server.
        addr: SocketAddr,
        /// hyper's error.
        #[source]
        source: hyper::Error,
    },
}

type Sender = hyper::client::conn::http2::SendRequest<tonic::body::Body>;

/// One connection to a DBManager server.
#[derive(Debug, Clone)]
pub struct DbManagerClient {
    sender: Sender,
    origin: Uri,
}

impl DbManagerClient {
    /// Connects to `server` from `source` (any port), or from whatever
    /// address the system picks when `source` is `None`.
    ///
    /// # Errors
    /// [`ClientError`] when the connection or the HTTP/2 handshake fails.
    pub async fn connect(server: SocketAddr, source: Option<IpAddr>) -> Result<Self, ClientError> {
        let connect_error = |source| ClientError::Connect {
            addr: server,
            source,
        };
        let socket = if server.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(connect_error)?;
        if let Some(ip) = source {
            socket.bind(SocketAddr::new(ip, 0)).map_err(connect_error)?;
        }
        let stream = socket.connect(server).await.map_err(connect_error)?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .map_err(|source| ClientError::Handshake {
                    addr: server,
                    source,
                })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("DBManager client connection ended: {e}");
            }
        });
        let origin = format!("http://{server}")
            .parse()
            .unwrap_or_else(|_| Uri::from_static("http://localhost"));
        Ok(Self { sender, origin })
    }

    async fn unary<Req, Reply>(&self, path: &'static str, request: Req) -> Result<Reply, Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Reply: prost::Message + Default + Send + Sync + 'static,
    {
        let sender = self.sender.clone();
        let service = tower::service_fn(move |request| {
            let mut sender = sender.clone();
            async move { sender.send_request(request).await }
        });
        let mut grpc = tonic::client::Grpc::with_origin(service, self.origin.clone());
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(format!("connection not ready: {e}")))?;
        let reply = grpc
            .unary(
                tonic::Request::new(request),
                PathAndQuery::from_static(path),
                ProstCodec::<Req, Reply>::default(),
            )
            .await?;
        Ok(reply.into_inner())
    }

    /// `ReportObservationLog`.
    ///
    /// # Errors
    /// The server's status.
    pub async fn report(
        &self,
        request: ReportObservationLogRequest,
    ) -> Result<ReportObservationLogReply, Status> {
        self.unary(REPORT_PATH, request).await
    }

    /// `GetObservationLog`.
    ///
    /// # Errors
    /// The server's status.
    pub async fn get(
        &self,
        request: GetObservationLogRequest,
    ) -> Result<GetObservationLogReply, Status> {
        self.unary(GET_PATH, request).await
    }

    /// `DeleteObservationLog`.
    ///
    /// # Errors
    /// The server's status.
    pub async fn delete(
        &self,
        request: DeleteObservationLogRequest,
    ) -> Result<DeleteObservationLogReply, Status> {
        self.unary(DELETE_PATH, request).await
    }
}
