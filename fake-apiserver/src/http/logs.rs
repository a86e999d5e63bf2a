//! `pods/<name>/log`: a container's output so far (`tailLines`,
//! `limitBytes`), or followed until the container ends (`follow`).

use super::{App, Query, stream, truthy};
use crate::logs::LogBuf;
use crate::resource::ResourceType;
use crate::status::ApiError;
use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::Response;
use serde_json::Value;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::mpsc;

/// The container a log request is for: the one named, else the pod's
/// default-container annotation, else its only container. Init
/// containers (native sidecars too) have logs as well.
fn container_of(pod: &Value, q: &Query, name: &str) -> Result<String, ApiError> {
    let names = |pointer: &str| -> Vec<String> {
        pod.pointer(pointer)
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c.get("name").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = names("/spec/containers");
    let default = pod
        .pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container")
        .and_then(Value::as_str);
    let container = match (q.get("container").filter(|c| !c.is_empty()), default) {
        (Some(c), _) => c.clone(),
        (None, Some(d)) => d.to_string(),
        (None, None) if containers.len() == 1 => containers[0].clone(),
        (None, None) => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )));
        }
    };
    if !containers.contains(&container) && !names("/spec/initContainers").contains(&container) {
        return Err(ApiError::bad_request(format!(
            "container {container} is not valid for pod {name}"
        )));
    }
    Ok(container)
}

/// Where the last `n` lines of `data` start (a last line without its
/// newline counts).
fn tail_start(data: &[u8], n: usize) -> usize {
    let ends: Vec<usize> = data
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i + 1)
        .collect();
    let complete = if data.last() == Some(&b'\n') {
        ends.len()
    } else {
        ends.len() + 1
    };
    if n >= complete {
        0
    } else {
        ends.get(complete - n - 1).copied().unwrap_or(0)
    }
}

/// Streams the log from `start` as it grows, until the container ends
/// or the client leaves.
fn follow(buf: Arc<LogBuf>, start: usize) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    tokio::spawn(async move {
        let mut offset = start;
        loop {
            let mut changed = buf.subscribe();
            let (chunk, done) = buf.read_from(offset);
            offset += chunk.len();
            if !chunk.is_empty() && tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                return;
            }
            if done {
                return;
            }
            tokio::select! {
                r = changed.changed() => if r.is_err() { return },
                () = tx.closed() => return,
            }
        }
    });
    stream(rx, "text/plain")
}

/// A pod container's log.
pub(super) async fn pod_log(
    app: &App,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    q: &Query,
) -> Result<Response, ApiError> {
    let pod = app.store.get(rt, Some(ns), name)?;
    let container = container_of(&pod, q, name)?;
    let Some(buf) = app.logs.get(ns, name, &container) else {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        )));
    };
    let tail: Option<usize> = q.get("tailLines").and_then(|t| t.parse().ok());
    let limit: Option<usize> = q.get("limitBytes").and_then(|t| t.parse().ok());
    let (data, _) = buf.read_from(0);
    let start = tail.map_or(0, |n| tail_start(&data, n));
    if truthy(q, "follow") {
        return Ok(follow(buf, start));
    }
    let mut out = data[start..].to_vec();
    if let Some(l) = limit {
        out.truncate(l);
    }
    let mut r = Response::new(Body::from(out));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_lines_count_a_last_line_without_its_newline() {
        assert_eq!(tail_start(b"a\nb\nc\n", 2), 2);
        assert_eq!(tail_start(b"a\nb\nc", 1), 4);
        assert_eq!(tail_start(b"a\nb\n", 5), 0);
        assert_eq!(tail_start(b"", 1), 0);
    }
}
