//! Events about Experiments, Trials and their workloads, written as
//! core/v1 Events with `firstTimestamp`, `lastTimestamp`, `count`,
//! `source` and `involvedObject` set.
//!
//! kube-runtime's `Recorder` writes events.k8s.io/v1 Events, whose core/v1
//! view has no `firstTimestamp`; Katib's and Kubeflow's Python SDKs read
//! core/v1 Events and drop those without it, so a Katib user would see
//! none of ktune's. This writes them as client-go's classic recorder (and
//! Katib's controller) does. A real API server serves each Event under
//! both APIs.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Client;
use kube::api::{Api, PostParams};

/// The component named as the Events' source.
pub const COMPONENT: &str = "ktune-controller";

/// Longest message kept (the API server's limit is larger; a trial's
/// failure reason can be a whole log tail).
const MAX_MESSAGE_CHARS: usize = 1024;

/// Writes Events.
#[derive(Clone)]
pub struct Events {
    client: Client,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl Events {
    /// Events written through `client`.
    #[must_use]
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Writes one Event about `object` (best effort: a lost Event must not
    /// fail a reconcile, so an error is only logged).
    pub async fn publish(&self, object: &ObjectReference, reason: &str, note: &str, warning: bool) {
        let event = event(object, reason, note, warning, &Time(jiff::Timestamp::now()));
        let namespace = event.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        if let Err(e) = api.create(&PostParams::default(), &event).await {
            tracing::debug!("writing an event: {e}");
        }
    }
}

/// The Event about `object` at `now`: named `<object>.<nanoseconds in
/// hex>` as client-go names them, in the object's namespace.
#[must_use]
pub fn event(
    object: &ObjectReference,
    reason: &str,
    note: &str,
    warning: bool,
    now: &Time,
) -> Event {
    let name = object.name.as_deref().unwrap_or(COMPONENT);
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:x}", now.0.as_nanosecond())),
            namespace: Some(
                object
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".to_owned()),
            ),
            ..ObjectMeta::default()
        },
        involved_object: object.clone(),
        reason: Some(reason.to_owned()),
        message: (!note.is_empty()).then(|| note.chars().take(MAX_MESSAGE_CHARS).collect()),
        type_: Some(if warning { "Warning" } else { "Normal" }.to_owned()),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now.clone()),
        count: Some(1),
        source: Some(EventSource {
            component: Some(COMPONENT.to_owned()),
            host: None,
        }),
        reporting_component: Some(COMPONENT.to_owned()),
        reporting_instance: Some(COMPONENT.to_owned()),
        ..Event::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_has_what_the_sdks_read() {
        let object = ObjectReference {
            api_version: Some("kubeflow.org/v1beta1".into()),
            kind: Some("Trial".into()),
            name: Some("t1".into()),
            namespace: Some("ns".into()),
            uid: Some("u".into()),
            ..ObjectReference::default()
        };
        let now = Time(jiff::Timestamp::from_second(1_700_000_000).unwrap());
        let long = "x".repeat(5000);
        let e = serde_json::to_value(event(&object, "Failed", &long, true, &now)).unwrap();
        assert_eq!(e["firstTimestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(e["lastTimestamp"], e["firstTimestamp"]);
        assert_eq!(e["involvedObject"]["name"], "t1");
        assert_eq!(e["involvedObject"]["kind"], "Trial");
        assert_eq!(e["metadata"]["namespace"], "ns");
        assert!(e["metadata"]["name"].as_str().unwrap().starts_with("t1."));
        assert_eq!(e["type"], "Warning");
        assert_eq!(e["count"], 1);
        assert_eq!(e["source"]["component"], COMPONENT);
        assert_eq!(e["message"].as_str().unwrap().len(), MAX_MESSAGE_CHARS);
        let quiet = serde_json::to_value(event(&object, "Created", "", false, &now)).unwrap();
        assert_eq!(quiet["type"], "Normal");
        assert!(quiet.get("message").is_none());
    }
}
