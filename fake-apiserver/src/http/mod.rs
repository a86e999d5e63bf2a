//! The HTTP face: routes Kubernetes API paths onto the store — discovery
//! here, a resource's collection and objects in [`resource`], watches in
//! [`watch`], pod logs in [`logs`].

mod logs;
mod resource;
mod watch;

use crate::discovery;
use crate::patch;
use crate::select::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{DeleteOpts, ListOpts, Store};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use resource::Call;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// What the handlers share.
#[derive(Debug, Clone)]
pub(crate) struct App {
    pub store: Arc<Store>,
    pub logs: Arc<crate::logs::Logs>,
    pub bookmark_interval: Duration,
    /// Requests answered so far (see [`crate::FakeApiServer::requests`]).
    pub requests: Arc<AtomicU64>,
    /// Kubeflow Trainer's TrainJob status server.
    pub progress: Arc<crate::progress::ProgressServer>,
}

/// The router: every path goes through one dispatcher.
pub(crate) fn router(app: App) -> Router {
    Router::new().fallback(handle).with_state(app)
}

/// A JSON response.
pub(crate) fn json_response(code: StatusCode, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn ok(v: &Value) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, v))
}

async fn handle(
    State(app): State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    tracing::debug!(%method, %uri, "request");
    app.requests.fetch_add(1, Ordering::Relaxed);
    match route(&app, &method, &uri, &headers, body).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%method, %uri, code = e.code, reason = e.reason, message = %e.message, "request failed");
            e.into_response()
        }
    }
}

type Query = HashMap<String, String>;

fn query(uri: &Uri) -> Query {
    form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .into_owned()
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

fn truthy(q: &Query, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "true" || v == "1")
}

async fn route(
    app: &App,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let path = uri.path();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let q = query(uri);
    let types = || app.store.types();
    let call = |body| Call {
        app,
        method,
        uri,
        headers,
        body,
        q: &q,
    };
    let get_only = |r: Option<Value>| -> Result<Response, ApiError> {
        if method != Method::GET {
            return Err(ApiError::method_not_allowed(format!(
                "{method} is not allowed on {path}"
            )));
        }
        r.map_or_else(|| Err(ApiError::no_route(path)), |v| ok(&v))
    };
    match segs.as_slice() {
        ["version"] => get_only(Some(discovery::version())),
        ["healthz" | "readyz" | "livez"] => Ok((StatusCode::OK, "ok").into_response()),
        ["api"] => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1");
            get_only(Some(discovery::core_versions(host)))
        }
        ["apis"] => get_only(Some(discovery::groups(&types()))),
        ["openapi", "v3"] => get_only(Some(discovery::openapi_index(&types()))),
        ["openapi", "v3", rest @ ..] => get_only(discovery::openapi_gv(&types(), &rest.join("/"))),
        ["api", v] => get_only(discovery::resource_list(&types(), "", v)),
        ["apis", g] => get_only(discovery::group(&types(), g)),
        ["apis", g, v] => get_only(discovery::resource_list(&types(), g, v)),
        [
            "apis",
            "trainer.kubeflow.org",
            "v1alpha1",
            "namespaces",
            ns,
            "trainjobs",
            name,
            "status",
        ] if method == Method::POST && app.progress.enabled() => {
            app.progress.post(&app.store, ns, name, headers, &body)
        }
        ["api", v, rest @ ..] => resource::resource(call(body), "", v, rest).await,
        ["apis", g, v, rest @ ..] => resource::resource(call(body), g, v, rest).await,
        _ => Err(ApiError::no_route(path)),
    }
}

fn list_opts(q: &Query) -> Result<ListOpts, ApiError> {
    Ok(ListOpts {
        labels: LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))
            .map_err(ApiError::bad_request)?,
        fields: FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str))
            .map_err(ApiError::bad_request)?,
        limit: match q.get("limit").filter(|l| !l.is_empty()) {
            Some(l) => l
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
            None => 0,
        },
        continue_token: q.get("continue").filter(|c| !c.is_empty()).cloned(),
    })
}

fn delete_opts(q: &Query, body: &[u8]) -> Result<DeleteOpts, ApiError> {
    let b: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        patch::parse_body(body)?
    };
    let policy = q
        .get("propagationPolicy")
        .map(String::as_str)
        .or_else(|| b.get("propagationPolicy").and_then(Value::as_str));
    let orphan = policy == Some("Orphan")
        || b.get("orphanDependents").and_then(Value::as_bool) == Some(true);
    let pre = |k: &str| {
        b.pointer(&format!("/preconditions/{k}"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Ok(DeleteOpts {
        orphan,
        uid: pre("uid"),
        resource_version: pre("resourceVersion"),
    })
}

/// A streamed response of `content_type` (a watch, a followed log).
fn stream(rx: mpsc::Receiver<Result<Bytes, Infallible>>, content_type: &'static str) -> Response {
    let mut r = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r
}
