//! What a kubelet reports about a pod's containers, in the shape clients
//! parse: every container has an image (the workload's, or
//! [`PLACEHOLDER_IMAGE`] when it names none, since images are ignored
//! here), and every `containerStatuses[]` / `initContainerStatuses[]`
//! entry carries the fields the typed clients require (`name`, `image`,
//! `imageID`, `ready`, `restartCount`, and `exitCode` when terminated).
//! The Kubernetes Python client refuses a pod whose status has a null
//! `image`, which broke `CoreV1Api.list_namespaced_pod` on TrainJob pods.

use super::container::Exit;
use serde_json::{Value, json};

/// The image shown for a container whose workload names none.
pub const PLACEHOLDER_IMAGE: &str = "fake.ktune.dev/none:latest";

/// Gives every container and init container of a pod spec an image.
pub(super) fn give_images(spec: &mut Value) {
    for key in ["initContainers", "containers"] {
        let Some(list) = spec.get_mut(key).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in list.iter_mut().filter_map(Value::as_object_mut) {
            let named = c
                .get("image")
                .and_then(Value::as_str)
                .is_some_and(|i| !i.is_empty());
            if !named {
                c.insert("image".into(), json!(PLACEHOLDER_IMAGE));
            }
        }
    }
}

/// Where one container is in its life.
#[derive(Debug, Clone, Copy)]
pub(super) enum State<'a> {
    /// Not started: `PodInitializing` behind init containers.
    Waiting(&'static str),
    /// Started at this time; `ready` as a kubelet would say.
    Running { started: &'a str, ready: bool },
    /// Ended this way.
    Terminated(&'a Exit),
}

/// One entry of `containerStatuses` or `initContainerStatuses`.
pub(super) fn container_status(c: &Value, state: State<'_>) -> Value {
    let image = c
        .get("image")
        .and_then(Value::as_str)
        .filter(|i| !i.is_empty())
        .unwrap_or(PLACEHOLDER_IMAGE);
    let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
    let waiting = matches!(state, State::Waiting(_));
    let (ready, started, state) = match state {
        State::Waiting(reason) => (false, false, json!({"waiting": {"reason": reason}})),
        State::Running { started, ready } => {
            (ready, true, json!({"running": {"startedAt": started}}))
        }
        State::Terminated(e) => {
            let mut term = json!({"exitCode": e.code, "reason": e.reason, "startedAt": e.started, "finishedAt": e.finished, "containerID": "fake://"});
            if let Some(m) = &e.message {
                term["message"] = json!(m);
            }
            (false, false, json!({"terminated": term}))
        }
    };
    let mut status = json!({"name": name, "image": image, "imageID": format!("{image}@fake"), "ready": ready, "started": started, "restartCount": 0, "state": state});
    if !waiting {
        status["containerID"] = json!("fake://");
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields the Kubernetes clients require of a container status.
    fn assert_complete(s: &Value) {
        for field in ["name", "image", "imageID"] {
            assert!(
                s[field].as_str().is_some_and(|v| !v.is_empty()),
                "{field}: {s}"
            );
        }
        assert!(s["ready"].is_boolean(), "{s}");
        assert!(s["restartCount"].is_i64(), "{s}");
        let state = s["state"].as_object().unwrap();
        assert_eq!(state.len(), 1, "exactly one state: {s}");
    }

    fn exit(code: i32) -> Exit {
        Exit {
            code,
            reason: if code == 0 { "Completed" } else { "Error" },
            message: (code != 0).then(|| "boom".to_owned()),
            started: "2026-01-01T00:00:00Z".into(),
            finished: "2026-01-01T00:00:01Z".into(),
            killed: false,
        }
    }

    #[test]
    fn a_container_without_an_image_gets_the_placeholder_in_spec_and_status() {
        let mut spec = json!({
            "initContainers": [{"name": "init", "image": null}],
            "containers": [{"name": "a"}, {"name": "b", "image": ""}, {"name": "c", "image": "busybox:1"}],
        });
        give_images(&mut spec);
        assert_eq!(spec["initContainers"][0]["image"], PLACEHOLDER_IMAGE);
        assert_eq!(spec["containers"][0]["image"], PLACEHOLDER_IMAGE);
        assert_eq!(spec["containers"][1]["image"], PLACEHOLDER_IMAGE);
        assert_eq!(spec["containers"][2]["image"], "busybox:1");
        let bare = container_status(&json!({"name": "x"}), State::Waiting("PodInitializing"));
        assert_eq!(bare["image"], PLACEHOLDER_IMAGE);
    }

    #[test]
    fn every_state_has_the_required_fields() {
        let c = json!({"name": "main", "image": "python:3.12"});
        let (ok, failed) = (exit(0), exit(2));
        let waiting = container_status(&c, State::Waiting("PodInitializing"));
        assert_complete(&waiting);
        assert_eq!(waiting["state"]["waiting"]["reason"], "PodInitializing");
        assert_eq!(waiting["ready"], false);
        assert!(waiting.get("containerID").is_none());

        let running = container_status(
            &c,
            State::Running {
                started: "2026-01-01T00:00:00Z",
                ready: true,
            },
        );
        assert_complete(&running);
        assert_eq!(
            running["state"]["running"]["startedAt"],
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(
            (running["ready"].clone(), running["started"].clone()),
            (json!(true), json!(true))
        );

        for (e, code) in [(&ok, 0), (&failed, 2)] {
            let done = container_status(&c, State::Terminated(e));
            assert_complete(&done);
            let term = &done["state"]["terminated"];
            assert_eq!(term["exitCode"], code);
            assert!(term["finishedAt"].is_string() && term["reason"].is_string());
            assert_eq!(term.get("message").is_some(), code != 0);
            assert_eq!(done["image"], "python:3.12");
        }
    }
}
