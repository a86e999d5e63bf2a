//! Kubeflow Trainer's TrainJob status server (its `TrainJobStatus`
//! feature gate, KEP-2779), which the fake cluster stands in for as it
//! stands in for Trainer's controller: a trainer reports its progress and
//! metrics (`kubeflow.trainer.update_trainjob_status`) and they appear as
//! the TrainJob's `status.trainerStatus`.
//!
//! What Trainer does, and what the fake does instead:
//!
//! | Trainer (gate on) | the fake (gate on, the default) |
//! |---|---|
//! | injects `KUBEFLOW_TRAINER_SERVER_URL` (`https://…:8082/apis/trainer.kubeflow.org/v1alpha1/namespaces/{ns}/trainjobs/{name}/status`), `KUBEFLOW_TRAINER_SERVER_CA_CERT` and `KUBEFLOW_TRAINER_SERVER_TOKEN` into every container of every pod of a TrainJob | the same URL on the fake server itself (`http://127.0.0.1:PORT/…`, once it serves on a socket), the token path, and no CA variable (plain http: the SDK then verifies nothing) |
//! | a projected service-account token mounted at `/var/run/secrets/kubeflow/trainer/token` | a random token per TrainJob, written to a file in the fake node's folder of that TrainJob; the variable names that file |
//! | `POST` there: the bearer token must belong to a pod of that TrainJob, else 403 | the token must be the one issued for that TrainJob (same name, same uid), else 403 |
//! | a body that does not decode, or a `trainerStatus` the CRD's validation refuses: 422 (`Invalid`), the message naming the field | the same, with the field's path in the message |
//! | no `trainerStatus` in the body: 200, nothing written | the same |
//! | otherwise server-side apply of `status.trainerStatus` (the request's replaces the stored one), 200 with the request echoed | the stored `trainerStatus` replaced through the store (resourceVersion bump, `MODIFIED` watch event), 200 with the request echoed |
//!
//! Switched by [`crate::Config::trainer_status`]; with the gate off, pods get
//! no variables and the route is the API server's own (`POST` on a status
//! subresource: 405).

use crate::http::json_response;
use crate::pod::str_at;
use crate::status::ApiError;
use crate::store::Store;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

/// The variable holding the status endpoint's URL.
pub const ENV_URL: &str = "KUBEFLOW_TRAINER_SERVER_URL";
/// The variable holding the path of the bearer token's file.
pub const ENV_TOKEN: &str = "KUBEFLOW_TRAINER_SERVER_TOKEN";
/// The variable holding the path of the CA certificate (https only; the
/// fake serves http and never sets it).
pub const ENV_CA_CERT: &str = "KUBEFLOW_TRAINER_SERVER_CA_CERT";

const GROUP: &str = "trainer.kubeflow.org";
const VERSION: &str = "v1alpha1";

/// The endpoint's path for one TrainJob, as Trainer serves it.
pub fn status_path(ns: &str, name: &str) -> String {
    format!("/apis/{GROUP}/{VERSION}/namespaces/{ns}/trainjobs/{name}/status")
}

/// A token issued to one TrainJob (by uid: a new TrainJob of the same name
/// gets a new one, and the old one stops working).
#[derive(Debug, Clone)]
struct Issued {
    uid: String,
    token: String,
}

/// The status server: whether the gate is on, where pods reach it, and
/// the tokens handed out.
#[derive(Debug)]
pub(crate) struct ProgressServer {
    enabled: bool,
    /// `http://HOST:PORT` once the fake serves on a socket.
    base_url: Mutex<Option<String>>,
    tokens: Mutex<HashMap<(String, String), Issued>>,
}

impl ProgressServer {
    pub(crate) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            base_url: Mutex::default(),
            tokens: Mutex::default(),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Where pods reach the server (set by [`crate::FakeApiServer::serve`]).
    pub(crate) fn set_base_url(&self, url: String) {
        *self.base_url.lock().unwrap_or_else(|p| p.into_inner()) = Some(url);
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Issued>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The token of a TrainJob, issued on first use.
    fn token(&self, ns: &str, name: &str, uid: &str) -> String {
        let mut tokens = self.tokens();
        let key = (ns.to_owned(), name.to_owned());
        match tokens.get(&key) {
            Some(issued) if issued.uid == uid => issued.token.clone(),
            _ => {
                let token: String = std::iter::repeat_with(fastrand::alphanumeric)
                    .take(40)
                    .collect();
                tokens.insert(
                    key,
                    Issued {
                        uid: uid.to_owned(),
                        token: token.clone(),
                    },
                );
                token
            }
        }
    }

    /// The variables Trainer injects into every container of a TrainJob's
    /// pods, with the token written to `folder/token`. Empty when the gate
    /// is off, the fake serves no socket (pods could not reach it), or the
    /// file cannot be written.
    pub(crate) fn pod_env(&self, ns: &str, name: &str, uid: &str, folder: &Path) -> Vec<Value> {
        if !self.enabled {
            return Vec::new();
        }
        let Some(base) = self
            .base_url
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        else {
            return Vec::new();
        };
        let file = folder.join("token");
        let written = std::fs::create_dir_all(folder)
            .and_then(|()| std::fs::write(&file, self.token(ns, name, uid)));
        if let Err(e) = written {
            tracing::warn!(trainjob = name, error = %e, "cannot write the TrainJob's status token");
            return Vec::new();
        }
        vec![
            json!({"name": ENV_URL, "value": format!("{base}{}", status_path(ns, name))}),
            json!({"name": ENV_TOKEN, "value": file.to_string_lossy()}),
        ]
    }

    /// `POST …/trainjobs/{name}/status`: checks the token, validates the
    /// body and replaces the TrainJob's `status.trainerStatus`.
    pub(crate) fn post(
        &self,
        store: &Store,
        ns: &str,
        name: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Response, ApiError> {
        let rt = store
            .find_type(GROUP, VERSION, "trainjobs")
            .ok_or_else(|| ApiError::not_found(GROUP, "trainjobs", name))?;
        let current = store.get(&rt, Some(ns), name);
        let uid = current
            .as_ref()
            .map(|o| str_at(o, "/metadata/uid").to_owned())
            .unwrap_or_default();
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim);
        let authorized = bearer.is_some_and(|b| {
            self.tokens()
                .get(&(ns.to_owned(), name.to_owned()))
                .is_some_and(|issued| issued.token == b && (uid.is_empty() || issued.uid == uid))
        });
        if !authorized {
            return Err(ApiError::forbidden("Forbidden"));
        }
        current?;
        let request: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::unprocessable(format!("Invalid payload: {e}")))?;
        let Some(request) = request.as_object() else {
            return Err(ApiError::unprocessable(
                "Invalid payload: the body must be a JSON object",
            ));
        };
        let trainer_status = match request.get("trainerStatus") {
            None | Some(Value::Null) => {
                return Ok(json_response(StatusCode::OK, &json!({})));
            }
            Some(s) => parse(s).map_err(|e| e.into_api_error(name))?,
        };
        let status = Value::Object(trainer_status);
        store.modify_status(&rt, ns, name, |s| {
            s.insert("trainerStatus".into(), status.clone());
        })?;
        tracing::debug!(ns, trainjob = name, "trainerStatus written");
        Ok(json_response(
            StatusCode::OK,
            &json!({"trainerStatus": status}),
        ))
    }
}

/// Why a `trainerStatus` is refused: the body does not decode into
/// Trainer's types, or the CRD's validation refuses a value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum Refused {
    /// A field of the wrong type (Go's decoder fails the request).
    #[error("Invalid payload: {field}: {why}")]
    Decode { field: String, why: &'static str },
    /// A value outside what the CRD allows.
    #[error("{field}: Invalid value: {value}: {why}")]
    Invalid {
        field: String,
        value: String,
        why: String,
    },
}

impl Refused {
    fn into_api_error(self, name: &str) -> ApiError {
        match self {
            Self::Decode { .. } => ApiError::unprocessable(self.to_string()),
            Self::Invalid { .. } => ApiError::invalid(GROUP, "TrainJob", name, self),
        }
    }
}

/// The field path of `trainerStatus`.
const AT: &str = "trainerStatus";

/// A body that does not decode into Trainer's type, at `field`.
fn decode(field: &str, why: &'static str) -> Refused {
    Refused::Decode {
        field: format!("{AT}.{field}"),
        why,
    }
}

/// A value that Trainer's validation refuses, at `field`.
fn invalid(field: &str, value: &dyn std::fmt::Display, why: String) -> Refused {
    Refused::Invalid {
        field: format!("status.{AT}.{field}"),
        value: value.to_string(),
        why,
    }
}

/// The `trainerStatus` Trainer would store from a request: its known
/// fields only (Go's decoder drops the others), `lastUpdatedTime` as
/// `metav1.Time` writes it (UTC, whole seconds).
pub(crate) fn parse(value: &Value) -> Result<Map<String, Value>, Refused> {
    let Some(input) = value.as_object() else {
        return Err(Refused::Decode {
            field: AT.into(),
            why: "must be an object",
        });
    };
    let mut out = Map::new();
    for (field, min, max) in [
        ("progressPercentage", 0, Some(100)),
        ("estimatedRemainingSeconds", 0, None),
    ] {
        if let Some(n) = bounded(input, field, min, max)? {
            out.insert(field.into(), json!(n));
        }
    }
    match input.get("metrics") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            out.insert("metrics".into(), metrics(items)?);
        }
        Some(_) => return Err(decode("metrics", "must be a list")),
    }
    match input.get("lastUpdatedTime") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            let t: jiff::Timestamp = s
                .parse()
                .map_err(|_| decode("lastUpdatedTime", "must be an RFC 3339 time"))?;
            out.insert(
                "lastUpdatedTime".into(),
                json!(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
            );
        }
        Some(_) => return Err(decode("lastUpdatedTime", "must be an RFC 3339 time")),
    }
    Ok(out)
}

/// The 32-bit integer `field`, if given, within `min` and `max`.
fn bounded(
    input: &Map<String, Value>,
    field: &str,
    min: i64,
    max: Option<i64>,
) -> Result<Option<i64>, Refused> {
    let Some(v) = input.get(field).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let n = v
        .as_i64()
        .filter(|n| i32::try_from(*n).is_ok())
        .ok_or_else(|| decode(field, "must be a 32-bit integer"))?;
    if n < min {
        let why = format!("status.{AT}.{field} in body should be greater than or equal to {min}");
        return Err(invalid(field, &n, why));
    }
    if let Some(max) = max.filter(|m| n > *m) {
        let why = format!("status.{AT}.{field} in body should be less than or equal to {max}");
        return Err(invalid(field, &n, why));
    }
    Ok(Some(n))
}

/// `metrics[]`: each a non-empty `name` and `value` string.
fn metrics(items: &[Value]) -> Result<Value, Refused> {
    let mut metrics = Vec::with_capacity(items.len());
    for (i, m) in items.iter().enumerate() {
        let mut metric = Map::new();
        for key in ["name", "value"] {
            let field = format!("metrics[{i}].{key}");
            let text = match m.get(key) {
                None | Some(Value::Null) => "",
                Some(Value::String(s)) => s.as_str(),
                Some(_) => return Err(decode(&field, "must be a string")),
            };
            if text.is_empty() {
                let why = format!("status.{AT}.{field} in body should be at least 1 chars long");
                return Err(invalid(&field, &"\"\"", why));
            }
            metric.insert(key.into(), json!(text));
        }
        metrics.push(Value::Object(metric));
    }
    Ok(Value::Array(metrics))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_sdk_sends_is_kept_with_the_time_in_whole_utc_seconds() {
        let sent = json!({
            "lastUpdatedTime": "2026-12-07T17:32:37.123456+01:00",
            "progressPercentage": 50,
            "estimatedRemainingSeconds": 12,
            "metrics": [{"name": "loss", "value": "0.25"}],
            "unknown": true,
        });
        let kept = parse(&sent).unwrap();
        assert_eq!(
            Value::Object(kept),
            json!({
                "lastUpdatedTime": "2026-12-07T16:32:37Z",
                "progressPercentage": 50,
                "estimatedRemainingSeconds": 12,
                "metrics": [{"name": "loss", "value": "0.25"}],
            })
        );
        assert_eq!(parse(&json!({})).unwrap(), Map::new());
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            (
                json!({"progressPercentage": 101}),
                "status.trainerStatus.progressPercentage: Invalid value: 101",
            ),
            (
                json!({"progressPercentage": -1}),
                "greater than or equal to 0",
            ),
            (
                json!({"progressPercentage": 5.5}),
                "Invalid payload: trainerStatus.progressPercentage",
            ),
            (
                json!({"estimatedRemainingSeconds": -3}),
                "status.trainerStatus.estimatedRemainingSeconds",
            ),
            (
                json!({"estimatedRemainingSeconds": 1_i64 << 40}),
                "trainerStatus.estimatedRemainingSeconds: must be a 32-bit integer",
            ),
            (
                json!({"metrics": {"loss": 1}}),
                "trainerStatus.metrics: must be a list",
            ),
            (
                json!({"metrics": [{"name": "loss", "value": 0.5}]}),
                "trainerStatus.metrics[0].value: must be a string",
            ),
            (
                json!({"metrics": [{"name": "", "value": "1"}]}),
                "status.trainerStatus.metrics[0].name: Invalid value",
            ),
            (
                json!({"metrics": [{"name": "a", "value": "1"}, {"name": "b"}]}),
                "metrics[1].value",
            ),
            (
                json!({"lastUpdatedTime": "yesterday"}),
                "trainerStatus.lastUpdatedTime",
            ),
            (json!("50%"), "trainerStatus: must be an object"),
        ];
        for (sent, expected) in cases {
            let refused = parse(&sent).unwrap_err().to_string();
            assert!(refused.contains(expected), "{sent}: {refused}");
        }
    }

    #[test]
    fn a_token_belongs_to_one_trainjob_by_uid() {
        let server = ProgressServer::new(true);
        let first = server.token("ns", "tj", "uid-1");
        assert_eq!(server.token("ns", "tj", "uid-1"), first);
        assert_ne!(server.token("ns", "tj", "uid-2"), first);
        assert_ne!(server.token("ns", "other", "uid-3"), first);
    }

    #[test]
    fn pods_get_no_variables_with_the_gate_off_or_no_socket() {
        let dir = std::env::temp_dir().join(format!("ktune-progress-test-{}", fastrand::u64(..)));
        let off = ProgressServer::new(false);
        off.set_base_url("http://127.0.0.1:1".into());
        assert!(off.pod_env("ns", "tj", "u", &dir).is_empty());
        let unserved = ProgressServer::new(true);
        assert!(unserved.pod_env("ns", "tj", "u", &dir).is_empty());
        let on = ProgressServer::new(true);
        on.set_base_url("http://127.0.0.1:9".into());
        let env = on.pod_env("ns", "tj", "u", &dir);
        assert_eq!(
            env[0]["value"],
            "http://127.0.0.1:9/apis/trainer.kubeflow.org/v1alpha1/namespaces/ns/trainjobs/tj/status"
        );
        let token = std::fs::read_to_string(env[1]["value"].as_str().unwrap()).unwrap();
        assert_eq!(token, on.token("ns", "tj", "u"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
