//! Kubeflow Trainer's TrainJob progress protocol (KEP-2779), as the push
//! endpoint ([`super::push`]) serves it: what a trial sends to
//! `POST /apis/trainer.kubeflow.org/v1alpha1/namespaces/{namespace}/trainjobs/{name}/status`,
//! read into the same [`MetricLog`]s the endpoint's own route queues, and
//! the environment that points `kubeflow.trainer.update_trainjob_status`
//! at ktune.
//!
//! The SDK (kubeflow 0.5.0) POSTs to `$KUBEFLOW_TRAINER_SERVER_URL` with
//! `Authorization: Bearer <the contents of the file at
//! $KUBEFLOW_TRAINER_SERVER_TOKEN>` and the body
//! `{"trainerStatus": {"lastUpdatedTime", "progressPercentage",
//! "estimatedRemainingSeconds", "metrics": [{"name", "value"}]}}`, metric
//! values as text; it calls HTTP 200 success and never retries.
//!
//! This module owns the body's shape and its reading; it does no I/O
//! beyond writing a trial's token file.

use std::io::Write;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::push::kind;
use super::{MetricLog, parse_number};

/// The variable holding the URL `update_trainjob_status` POSTs to.
pub const SERVER_URL_ENV: &str = "KUBEFLOW_TRAINER_SERVER_URL";

/// The variable holding the path of the file whose contents are the bearer
/// token (Trainer mounts a projected service-account token there).
pub const SERVER_TOKEN_ENV: &str = "KUBEFLOW_TRAINER_SERVER_TOKEN";

/// The file in a local trial's folder holding its token for
/// [`SERVER_TOKEN_ENV`].
pub const TOKEN_FILE: &str = "kubeflow-trainer-token";

/// The namespace in a local trial's Trainer URL. A local endpoint keys its
/// trials by name alone, so any namespace reaches them; Kubernetes'
/// `default` is what a namespace-less resource means.
pub const LOCAL_NAMESPACE: &str = "default";

/// The path of a TrainJob's status endpoint, `{namespace}` and `{name}` as
/// axum route captures.
pub const ROUTE: &str =
    "/apis/trainer.kubeflow.org/v1alpha1/namespaces/{namespace}/trainjobs/{name}/status";

/// A TrainJob's status path for already URL-encoded segments.
#[must_use]
pub fn status_path(namespace_segment: &str, name_segment: &str) -> String {
    format!(
        "/apis/trainer.kubeflow.org/v1alpha1/namespaces/{namespace_segment}/trainjobs/{name_segment}/status"
    )
}

/// What one status update carried for ktune.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatusUpdate {
    /// Its numeric metrics, stamped with `lastUpdatedTime` when it had one.
    pub logs: Vec<MetricLog>,
    /// Metrics whose value is not a number: (name, value), left out.
    pub skipped: Vec<(String, String)>,
}

/// Reads a status update's body.
///
/// Trainer keeps metric values as text and stores whatever it is sent; an
/// objective must be a number, so a value that is not one (`"n/a"`,
/// `"True"`) is left out of the update and returned in
/// [`StatusUpdate::skipped`] — the update itself succeeds, since the SDK
/// neither retries nor could send it differently. `nan` and `inf` are
/// numbers (ktune's collectors accept them everywhere). An update without
/// metrics (progress only) is valid and carries nothing.
///
/// # Errors
/// The field that is wrong and why, e.g.
/// `trainerStatus.metrics[1].value: must be a non-empty string, not a number`.
pub fn parse(body: &[u8]) -> Result<StatusUpdate, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let Value::Object(body) = value else {
        return Err(format!(
            "body must be a JSON object {{\"trainerStatus\": {{…}}}}, not {}",
            kind(&value)
        ));
    };
    let status = match body.get("trainerStatus") {
        Some(Value::Object(status)) => status,
        Some(other) => {
            return Err(format!(
                "trainerStatus: must be an object, not {}",
                kind(other)
            ));
        }
        None => return Err("trainerStatus: missing".to_owned()),
    };
    check_integer(status, "progressPercentage", 0, Some(100))?;
    check_integer(status, "estimatedRemainingSeconds", 0, None)?;
    let time = match status.get("lastUpdatedTime") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.parse::<Timestamp>().map_err(|e| {
            format!("trainerStatus.lastUpdatedTime: {text:?} is not an RFC 3339 time: {e}")
        })?),
        Some(other) => {
            return Err(format!(
                "trainerStatus.lastUpdatedTime: must be an RFC 3339 string, not {}",
                kind(other)
            ));
        }
    };
    let metrics = match status.get("metrics") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(metrics)) => metrics.as_slice(),
        Some(other) => {
            return Err(format!(
                "trainerStatus.metrics: must be a list of {{name, value}}, not {}",
                kind(other)
            ));
        }
    };
    let mut update = StatusUpdate::default();
    for (i, metric) in metrics.iter().enumerate() {
        let at = format!("trainerStatus.metrics[{i}]");
        let Value::Object(metric) = metric else {
            return Err(format!(
                "{at}: must be an object {{name, value}}, not {}",
                kind(metric)
            ));
        };
        let name = text_field(metric, &at, "name")?;
        let value = text_field(metric, &at, "value")?.trim();
        if parse_number(value).is_some() {
            update.logs.push(MetricLog {
                name: name.to_owned(),
                value: value.to_owned(),
                time,
            });
        } else {
            update.skipped.push((name.to_owned(), value.to_owned()));
        }
    }
    Ok(update)
}

/// A required non-empty string field of a metric (Trainer's `MinLength=1`).
fn text_field<'a>(
    metric: &'a Map<String, Value>,
    at: &str,
    field: &str,
) -> Result<&'a str, String> {
    match metric.get(field) {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text),
        Some(Value::String(_)) => Err(format!("{at}.{field}: must not be empty")),
        None | Some(Value::Null) => Err(format!("{at}.{field}: missing")),
        Some(other) => Err(format!(
            "{at}.{field}: must be a non-empty string, not {} (Trainer keeps metric values as text: send \"0.5\")",
            kind(other)
        )),
    }
}

/// An optional integer field within `min..=max` (Trainer's `int32` with
/// its `Minimum`/`Maximum`).
fn check_integer(
    status: &Map<String, Value>,
    field: &str,
    min: i64,
    max: Option<i64>,
) -> Result<(), String> {
    let max = max.unwrap_or(i64::from(i32::MAX));
    match status.get(field) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Number(n)) if n.as_i64().is_some_and(|v| (min..=max).contains(&v)) => Ok(()),
        Some(other) => Err(format!(
            "trainerStatus.{field}: must be an integer from {min} to {max}, not {other}"
        )),
    }
}

/// Writes a trial's bearer token to [`TOKEN_FILE`] in its folder (created
/// if missing), readable by its owner only, replacing an earlier run's;
/// returns the file's path for [`SERVER_TOKEN_ENV`].
///
/// # Errors
/// The I/O error when the folder or the file cannot be written.
pub fn write_token_file(dir: &Path, token: &str) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::create_dir_all(dir)?;
    let path = dir.join(TOKEN_FILE);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    // `mode` applies to a new file only: an earlier run's keeps its own.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(token.as_bytes())?;
    Ok(path)
}

/// The variables that point `update_trainjob_status` at `url`, with the
/// token in the file at `token_file`. No CA variable: a local endpoint
/// speaks plain HTTP on the loopback.
#[must_use]
pub fn process_env(url: &str, token_file: &Path) -> [(String, String); 2] {
    [
        (SERVER_URL_ENV.to_owned(), url.to_owned()),
        (
            SERVER_TOKEN_ENV.to_owned(),
            token_file.display().to_string(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(update: &StatusUpdate) -> Vec<(&str, &str)> {
        update
            .logs
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect()
    }

    #[test]
    fn the_route_and_the_urls_are_trainers_path() {
        assert_eq!(status_path("{namespace}", "{name}"), ROUTE);
        assert_eq!(
            status_path("ns", "job"),
            "/apis/trainer.kubeflow.org/v1alpha1/namespaces/ns/trainjobs/job/status"
        );
    }

    #[test]
    fn the_sdks_body_gives_its_numeric_metrics_at_its_time() {
        // As kubeflow 0.5.0's update_trainjob_status writes it.
        let body = br#"{"trainerStatus": {
            "lastUpdatedTime": "2026-12-07T17:32:37.123456+00:00",
            "progressPercentage": 40, "estimatedRemainingSeconds": 12,
            "metrics": [{"name": "loss", "value": "0.25"},
                        {"name": "accuracy", "value": " 0.9 "},
                        {"name": "epoch", "value": "2"},
                        {"name": "diverged", "value": "nan"}]}}"#;
        let update = parse(body).unwrap();
        assert_eq!(
            pairs(&update),
            [
                ("loss", "0.25"),
                ("accuracy", "0.9"),
                ("epoch", "2"),
                ("diverged", "nan")
            ]
        );
        let time: Timestamp = "2026-12-07T17:32:37.123456Z".parse().unwrap();
        assert!(update.logs.iter().all(|l| l.time == Some(time)));
        assert!(update.skipped.is_empty());
    }

    #[test]
    fn values_that_are_not_numbers_are_skipped_not_refused() {
        let body = br#"{"trainerStatus": {"metrics": [
            {"name": "loss", "value": "0.5"}, {"name": "phase", "value": "warmup"},
            {"name": "done", "value": "True"}]}}"#;
        let update = parse(body).unwrap();
        assert_eq!(pairs(&update), [("loss", "0.5")]);
        assert_eq!(update.logs[0].time, None, "stamped on arrival instead");
        assert_eq!(
            update.skipped,
            [
                ("phase".to_owned(), "warmup".to_owned()),
                ("done".to_owned(), "True".to_owned())
            ]
        );
    }

    #[test]
    fn a_progress_only_update_is_valid_and_carries_nothing() {
        for body in [
            r#"{"trainerStatus": {"progressPercentage": 100}}"#,
            r#"{"trainerStatus": {"lastUpdatedTime": "2026-01-01T00:00:00Z", "metrics": []}}"#,
            r#"{"trainerStatus": {"metrics": null}, "other": 1}"#,
        ] {
            assert_eq!(
                parse(body.as_bytes()),
                Ok(StatusUpdate::default()),
                "{body}"
            );
        }
    }

    #[test]
    fn a_wrong_shape_names_the_field() {
        for (body, says) in [
            ("", "not JSON"),
            ("[]", "must be a JSON object"),
            ("{}", "trainerStatus: missing"),
            (
                r#"{"trainerStatus": []}"#,
                "trainerStatus: must be an object",
            ),
            (
                r#"{"trainerStatus": {"progressPercentage": 101}}"#,
                "trainerStatus.progressPercentage",
            ),
            (
                r#"{"trainerStatus": {"progressPercentage": 4.5}}"#,
                "trainerStatus.progressPercentage",
            ),
            (
                r#"{"trainerStatus": {"estimatedRemainingSeconds": -1}}"#,
                "trainerStatus.estimatedRemainingSeconds",
            ),
            (
                r#"{"trainerStatus": {"lastUpdatedTime": "yesterday"}}"#,
                "trainerStatus.lastUpdatedTime",
            ),
            (
                r#"{"trainerStatus": {"lastUpdatedTime": 5}}"#,
                "trainerStatus.lastUpdatedTime",
            ),
            (
                r#"{"trainerStatus": {"metrics": {"loss": "1"}}}"#,
                "trainerStatus.metrics: must be a list",
            ),
            (
                r#"{"trainerStatus": {"metrics": ["loss"]}}"#,
                "trainerStatus.metrics[0]: must be an object",
            ),
            (
                r#"{"trainerStatus": {"metrics": [{"name": "a", "value": "1"}, {"value": "1"}]}}"#,
                "trainerStatus.metrics[1].name: missing",
            ),
            (
                r#"{"trainerStatus": {"metrics": [{"name": "", "value": "1"}]}}"#,
                "trainerStatus.metrics[0].name: must not be empty",
            ),
            (
                r#"{"trainerStatus": {"metrics": [{"name": "loss", "value": 0.5}]}}"#,
                "trainerStatus.metrics[0].value: must be a non-empty string, not a number",
            ),
        ] {
            let error = parse(body.as_bytes()).unwrap_err();
            assert!(error.contains(says), "{body}: {error}");
        }
    }

    #[test]
    fn the_token_file_is_the_owners_alone_and_replaced_on_relaunch() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!(
            "ktune-trainer-token-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let trial = dir.join("t1");
        let path = write_token_file(&trial, "first-token").unwrap();
        assert_eq!(path, trial.join(TOKEN_FILE));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_token_file(&trial, "second").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let env = process_env("http://127.0.0.1:9/x", &path);
        assert_eq!(
            env[0],
            (SERVER_URL_ENV.to_owned(), "http://127.0.0.1:9/x".to_owned())
        );
        assert_eq!(env[1].1, path.display().to_string());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
