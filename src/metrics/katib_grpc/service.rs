//! The `api.v1.beta1.DBManager` service: a hand-written tonic service (a
//! tower service over HTTP/2 requests) routing Katib's three
//! observation-log paths to their handlers through `tonic::server::Grpc`
//! and the prost codec — what tonic's code generator would write, without
//! a build script. Any other path answers `UNIMPLEMENTED`, as a gRPC
//! server does.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http;
use futures::future::BoxFuture;
use hyper::body::Body as HttpBody;
use tonic::server::{Grpc, UnaryService};
use tonic::transport::server::TcpConnectInfo;
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

use super::gate::{Access, CallerGate};
use super::logs::{self, Filter};
use super::messages::{
    DeleteObservationLogReply, DeleteObservationLogRequest, GetObservationLogReply,
    GetObservationLogRequest, ReportObservationLogReply, ReportObservationLogRequest,
};
use super::{DELETE_PATH, DbManagerLimits, GET_PATH, REPORT_PATH};
use crate::metrics::push::{PushServer, QueueRefusal};
use crate::store::{SqlStore, Store as _};

/// What the handlers share.
#[derive(Debug)]
pub(super) struct Handlers {
    pub(super) gate: Arc<dyn CallerGate>,
    pub(super) push: Arc<PushServer>,
    pub(super) store: SqlStore,
    pub(super) limits: DbManagerLimits,
}

/// The peer of a request (set by the listener's connections).
fn peer<T>(request: &Request<T>) -> Result<SocketAddr, Status> {
    request
        .extensions()
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .ok_or_else(|| Status::internal("the caller's address is unknown"))
}

/// The trial name of a request, which must not be empty.
fn trial_name(name: &str) -> Result<&str, Status> {
    let name = name.trim();
    if name.is_empty() {
        Err(Status::invalid_argument(
            "trial_name is empty (katib.report_metrics reads it from $KATIB_TRIAL_NAME)",
        ))
    } else {
        Ok(name)
    }
}

impl Handlers {
    /// `ReportObservationLog`: the caller rule, then the logs' checks, then
    /// the trial's push queue (whole or nothing).
    async fn report(
        &self,
        request: Request<ReportObservationLogRequest>,
    ) -> Result<ReportObservationLogReply, Status> {
        let peer = peer(&request)?;
        let request = request.into_inner();
        let trial = trial_name(&request.trial_name)?;
        let key = self.gate.admit(trial, peer).await.inspect_err(|refusal| {
            tracing::debug!(trial, %peer, "DBManager report refused: {refusal}");
        })?;
        let log = request.observation_log.unwrap_or_default();
        let max = self.limits.max_logs_per_request;
        if log.metric_logs.len() > max {
            return Err(Status::resource_exhausted(format!(
                "{} metric logs in one request; at most {max}",
                log.metric_logs.len()
            )));
        }
        let reports = logs::reports(&log).map_err(|e| Status::invalid_argument(e.to_string()))?;
        match self.push.offer(&key, reports) {
            Ok(()) => Ok(ReportObservationLogReply {}),
            Err(QueueRefusal::UnknownTrial) => Err(Status::not_found(format!(
                "trial {trial:?} stopped running"
            ))),
            Err(full @ QueueRefusal::Full { .. }) => {
                Err(Status::resource_exhausted(full.to_string()))
            }
        }
    }

    /// `GetObservationLog`: the trial's stored reports, filtered as Katib filters.
    async fn get(
        &self,
        request: Request<GetObservationLogRequest>,
    ) -> Result<GetObservationLogReply, Status> {
        let peer = peer(&request)?;
        let request = request.into_inner();
        let trial = trial_name(&request.trial_name)?;
        let filter = Filter::new(&request.metric_name, &request.start_time, &request.end_time)
            .map_err(Status::invalid_argument)?;
        let stored = self.gate.locate(trial, peer, Access::Read).await?;
        let rows = self
            .store
            .observations(stored.trial.id)
            .await
            .map_err(|e| Status::unavailable(format!("the store failed: {e}")))?;
        Ok(GetObservationLogReply {
            observation_log: Some(logs::observation_log(rows, &filter)),
        })
    }

    /// `DeleteObservationLog`: a finished trial's stored reports.
    async fn delete(
        &self,
        request: Request<DeleteObservationLogRequest>,
    ) -> Result<DeleteObservationLogReply, Status> {
        let peer = peer(&request)?;
        let request = request.into_inner();
        let trial = trial_name(&request.trial_name)?;
        let stored = self.gate.locate(trial, peer, Access::Delete).await?;
        if stored.running || !stored.trial.state.is_terminal() {
            return Err(Status::failed_precondition(format!(
                "trial {trial:?} is still running; its observations can be deleted once it ended"
            )));
        }
        let deleted = self
            .store
            .delete_observations(stored.trial.id)
            .await
            .map_err(|e| Status::unavailable(format!("the store failed: {e}")))?;
        tracing::info!(
            trial,
            experiment = stored.experiment,
            deleted,
            %peer,
            "DBManager deleted a trial's observations"
        );
        Ok(DeleteObservationLogReply {})
    }
}

/// A handler: the shared state and the request in, the reply out.
type Handler<Req, Reply> =
    fn(Arc<Handlers>, Request<Req>) -> BoxFuture<'static, Result<Reply, Status>>;

/// One method's handler as tonic's `UnaryService`.
struct Method<Req, Reply> {
    handlers: Arc<Handlers>,
    call: Handler<Req, Reply>,
}

impl<Req, Reply> UnaryService<Req> for Method<Req, Reply>
where
    Req: Send + 'static,
    Reply: Send + 'static,
{
    type Response = Reply;
    type Future = BoxFuture<'static, Result<Response<Reply>, Status>>;

    fn call(&mut self, request: Request<Req>) -> Self::Future {
        let reply = (self.call)(Arc::clone(&self.handlers), request);
        Box::pin(async move { reply.await.map(Response::new) })
    }
}

/// The DBManager service as a tower service over HTTP/2 requests.
#[derive(Debug, Clone)]
pub(super) struct DbManagerService {
    pub(super) handlers: Arc<Handlers>,
}

impl DbManagerService {
    /// Answers `request` with `call`, decoding and encoding with the
    /// prost codec under the message size limits.
    fn unary<Req, Reply, B>(
        &self,
        request: http::Request<B>,
        call: Handler<Req, Reply>,
    ) -> BoxFuture<'static, Result<http::Response<tonic::body::Body>, Infallible>>
    where
        Req: prost::Message + Default + Send + 'static,
        Reply: prost::Message + Send + 'static,
        B: HttpBody + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
    {
        let limits = self.handlers.limits;
        let mut grpc = Grpc::new(ProstCodec::<Reply, Req>::default())
            .max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_reply_bytes);
        let method = Method {
            handlers: Arc::clone(&self.handlers),
            call,
        };
        Box::pin(async move { Ok(grpc.unary(method, request).await) })
    }
}

impl<B> tower::Service<http::Request<B>> for DbManagerService
where
    B: HttpBody + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match request.uri().path() {
            REPORT_PATH => self.unary(request, |h, r| Box::pin(async move { h.report(r).await })),
            GET_PATH => self.unary(request, |h, r| Box::pin(async move { h.get(r).await })),
            DELETE_PATH => self.unary(request, |h, r| Box::pin(async move { h.delete(r).await })),
            other => {
                tracing::debug!(path = other, "DBManager: no such method");
                let status = Status::unimplemented(format!(
                    "ktune serves only DBManager's ReportObservationLog, GetObservationLog and DeleteObservationLog, not {other}"
                ));
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}
