//! Push metrics in a cluster: the controller's authenticated endpoint
//! (the same [`PushServer`] and wire format as `ktune run`,
//! `POST /v1/trials/<namespace>.<trial>/metrics` with a bearer token), one
//! token per trial, handed to the trial through a Secret.
//!
//! For each Push trial the experiment worker registers the trial (a fresh
//! token), the runner writes URL and token to the Secret `<trial>-push`
//! (owned by the Experiment, so deleting it cleans up) and adds
//! `KTUNE_PUSH_URL` and `KTUNE_PUSH_TOKEN` to every container of the
//! workload as `secretKeyRef`s — never the token itself, which would show
//! in the Trial's `runSpec`. `examples/python/ktune_report.py` reads both.
//!
//! A token lives in the controller's memory and in the trial's Secret: a
//! restarted controller adopting a running trial registers the token of
//! its Secret again (its pods read their env at start), so the trial keeps
//! pushing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::metrics::MetricLog;
use crate::metrics::collector::{Collector, TrialMetrics};
use crate::metrics::push::{
    PUSH_TOKEN_ENV, PUSH_URL_ENV, PushCredentials, PushError, PushInbox, PushServer,
};
use crate::runner::Reporting;

/// The Secret key holding the URL.
pub const URL_KEY: &str = "url";
/// The Secret key holding the token.
pub const TOKEN_KEY: &str = "token";

/// The controller's push endpoint, shared by all experiments.
#[derive(Debug)]
pub struct ClusterPush {
    server: PushServer,
    public: String,
}

impl ClusterPush {
    /// Listens on `listen`; trials reach it at `public` (e.g. the Service's
    /// `http://ktune-controller.ktune-system:8081`), by default at the
    /// bound address.
    ///
    /// # Errors
    /// [`PushError`] when `listen` cannot be bound.
    pub async fn start(listen: SocketAddr, public: Option<String>) -> Result<Self, PushError> {
        let server = PushServer::bind(listen).await?;
        let public = public.unwrap_or_else(|| server.url());
        tracing::info!(listen = %server.local_addr(), url = public, "push endpoint listening");
        Ok(Self {
            server,
            public: public.trim_end_matches('/').to_owned(),
        })
    }
}

/// The inbox key of a trial: namespaces are DNS labels (no dots), so
/// `<namespace>.<trial>` names one trial of the cluster.
fn key(namespace: &str, trial: &str) -> String {
    format!("{namespace}.{trial}")
}

/// Push collection for one experiment's trials.
#[derive(Debug, Clone)]
pub struct PushCollector {
    push: Arc<ClusterPush>,
    namespace: String,
    metrics: Arc<Vec<String>>,
}

impl PushCollector {
    /// A collector keeping the experiment's `metrics` of what its trials in
    /// `namespace` push.
    #[must_use]
    pub fn new(push: Arc<ClusterPush>, namespace: String, metrics: Vec<String>) -> Self {
        Self {
            push,
            namespace,
            metrics: Arc::new(metrics),
        }
    }
}

/// What one trial pushed.
#[derive(Debug)]
pub struct PushedMetrics {
    inbox: PushInbox,
    metrics: Arc<Vec<String>>,
}

impl TrialMetrics for PushedMetrics {
    async fn poll(&mut self) -> Vec<MetricLog> {
        let mut logs = self.inbox.take();
        logs.retain(|l| self.metrics.contains(&l.name));
        logs
    }

    fn replays(&self) -> bool {
        false
    }
}

impl Collector for PushCollector {
    type Trial = PushedMetrics;

    fn prepare(&self, trial: &str) -> Reporting {
        let key = key(&self.namespace, trial);
        match self.push.server.register(&key) {
            Ok(credentials) => Reporting {
                push: Some(PushCredentials {
                    url: format!("{}/v1/trials/{key}/metrics", self.push.public),
                    token: credentials.token,
                }),
                metrics_port: None,
            },
            Err(e) => {
                tracing::warn!(trial, "cannot register the trial for push: {e}");
                Reporting::default()
            }
        }
    }

    fn attach(&self, trial: &str, _stdout: Option<&std::path::Path>) -> PushedMetrics {
        PushedMetrics {
            inbox: self.push.server.inbox(&key(&self.namespace, trial)),
            metrics: Arc::clone(&self.metrics),
        }
    }

    fn detach(&self, trial: &str) {
        let late = self.push.server.unregister(&key(&self.namespace, trial));
        if !late.is_empty() {
            tracing::warn!(
                trial,
                "{} pushed reports arrived after the trial ended and were dropped",
                late.len()
            );
        }
    }
}

/// The name of a trial's push Secret.
#[must_use]
pub fn secret_name(trial: &str) -> String {
    format!("{trial}-push")
}

/// Adds `KTUNE_PUSH_URL` and `KTUNE_PUSH_TOKEN` from the Secret `secret` to
/// every container of a workload, whatever its kind: pod templates'
/// `containers` and `initContainers`, Argo's `container` and `script`
/// templates, Tekton's `steps`, a TrainJob's `trainer`.
pub fn inject_env(workload: &mut Value, secret: &str) {
    let vars = [(PUSH_URL_ENV, URL_KEY), (PUSH_TOKEN_ENV, TOKEN_KEY)].map(|(name, key)| {
        json!({"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
    });
    walk(workload, &vars);
}

fn add_env(container: &mut Value, vars: &[Value]) {
    if let Some(map) = container.as_object_mut() {
        let env = map.entry("env").or_insert_with(|| json!([]));
        if let Some(list) = env.as_array_mut() {
            list.retain(|e| {
                !vars
                    .iter()
                    .any(|v| v.get("name").is_some() && v.get("name") == e.get("name"))
            });
            list.extend(vars.iter().cloned());
        }
    }
}

fn walk(value: &mut Value, vars: &[Value]) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                match (k.as_str(), &mut *v) {
                    ("containers" | "initContainers" | "steps", Value::Array(items)) => {
                        for item in items.iter_mut().filter(|i| i.is_object()) {
                            add_env(item, vars);
                        }
                    }
                    ("container" | "script" | "trainer", item @ Value::Object(_)) => {
                        add_env(item, vars);
                    }
                    _ => walk(v, vars),
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                walk(v, vars);
            }
        }
        _ => {}
    }
}

impl ClusterPush {
    /// Hands a trial its push credentials through its Secret, owned by
    /// `owner` (the experiment). When the Secret exists already (a trial
    /// adopted after a controller restart, its pods holding the token they
    /// started with), the token in it is registered again instead, so the
    /// running trial keeps pushing.
    ///
    /// # Errors
    /// The API's refusal.
    pub async fn deliver(
        &self,
        secrets: &Api<Secret>,
        (namespace, trial): (&str, &str),
        (url, token): (&str, &str),
        owner: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
        labels: BTreeMap<String, String>,
    ) -> Result<(), kube::Error> {
        let data = BTreeMap::from([
            (URL_KEY.to_owned(), ByteString(url.as_bytes().to_vec())),
            (TOKEN_KEY.to_owned(), ByteString(token.as_bytes().to_vec())),
        ]);
        let name = secret_name(trial);
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                owner_references: owner.map(|o| vec![o]),
                labels: Some(labels),
                ..ObjectMeta::default()
            },
            data: Some(data.clone()),
            type_: Some("Opaque".to_owned()),
            ..Secret::default()
        };
        match secrets.create(&PostParams::default(), &secret).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let held = secrets
                    .get(&name)
                    .await?
                    .data
                    .and_then(|d| d.get(TOKEN_KEY).cloned())
                    .and_then(|t| String::from_utf8(t.0).ok())
                    .filter(|t| !t.is_empty());
                if let Some(held) = held {
                    self.server.register_token(&key(namespace, trial), held);
                    return Ok(());
                }
                let patch = json!({"data": data});
                secrets
                    .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                    .map(|_| ())
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_container_of_every_kind_gets_the_secret_refs() {
        let mut w = json!({
            "spec": {
                "pytorchReplicaSpecs": {"Master": {"template": {"spec": {"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}]}], "initContainers": [{"name": "i"}]}}}},
                "templates": [{"container": {"name": "c"}}, {"script": {"source": "x"}}, {"steps": [[{"name": "s"}]]}],
                "pipelineSpec": {"tasks": [{"taskSpec": {"steps": [{"name": "t"}]}}]},
                "trainer": {"image": "x"}
            }
        });
        inject_env(&mut w, "t1-push");
        let names = |v: &Value| -> Vec<String> {
            v["env"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap().to_owned())
                .collect()
        };
        let master = &w["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"];
        assert_eq!(
            names(&master["containers"][0]),
            ["X", PUSH_URL_ENV, PUSH_TOKEN_ENV]
        );
        assert_eq!(names(&master["initContainers"][0]).len(), 2);
        assert_eq!(names(&w["spec"]["templates"][0]["container"]).len(), 2);
        assert_eq!(names(&w["spec"]["templates"][1]["script"]).len(), 2);
        assert_eq!(
            names(&w["spec"]["pipelineSpec"]["tasks"][0]["taskSpec"]["steps"][0]).len(),
            2
        );
        assert_eq!(names(&w["spec"]["trainer"]).len(), 2);
        // Argo step references are not containers.
        assert!(
            w["spec"]["templates"][2]["steps"][0][0]
                .get("env")
                .is_none()
        );
        let token = &master["containers"][0]["env"][2]["valueFrom"]["secretKeyRef"];
        assert_eq!(token, &json!({"name": "t1-push", "key": TOKEN_KEY}));
        // Twice is the same as once.
        let once = w.clone();
        inject_env(&mut w, "t1-push");
        assert_eq!(w, once);
    }
}
