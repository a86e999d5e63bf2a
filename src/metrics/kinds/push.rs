//! Push (katib-reference.md §6.7): trials POST their metrics to a
//! [`PushServer`] (`/v1/trials/<key>/metrics` with a bearer token; see
//! [`crate::metrics::push`] for the wire format), one token per trial,
//! and the collector keeps the experiment's metrics of what arrives.
//!
//! - Locally: an endpoint on 127.0.0.1 for this run, keyed by trial name;
//!   the trial gets its URL and token as `KTUNE_PUSH_URL` and
//!   `KTUNE_PUSH_TOKEN`, and Kubeflow Trainer's progress protocol on the
//!   same endpoint as `KUBEFLOW_TRAINER_SERVER_URL` and
//!   `KUBEFLOW_TRAINER_SERVER_TOKEN` (a token file in its folder, written
//!   by the local runner; [`crate::metrics::trainer_status`]). With [`Push::serve_db_manager`] (what `ktune run`
//!   does), Katib's gRPC DBManager API also listens on 127.0.0.1 for the
//!   same trials ([`crate::metrics::katib_grpc`]) and the trial gets its
//!   address as `KTUNE_DB_MANAGER_ADDRESS` (besides `KATIB_TRIAL_NAME`).
//! - In a cluster: the controller's endpoint, shared by all experiments
//!   and keyed `<namespace>.<trial>`. The runner writes URL and token to
//!   the Secret `<trial>-push` (owned by the Experiment, so deleting it
//!   cleans up) and adds both variables to every container of the workload
//!   as `secretKeyRef`s — never the token itself, which would show in the
//!   Trial's `runSpec`. `examples/python/ktune_report.py` reads both.
//!
//! A cluster token lives in the controller's memory and in the trial's
//! Secret: a restarted controller adopting a running trial registers the
//! token of its Secret again (its pods read their env at start), so the
//! trial keeps pushing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::{Backend, Settings, TrialReader};
use crate::metrics::MetricLog;
use crate::metrics::cluster::ClusterBackend;
use crate::metrics::collector::{Collector, CollectorError, TrialMetrics};
use crate::metrics::katib_grpc::{DbManagerLimits, DbManagerServer, LocalGate};
use crate::metrics::push::{PUSH_TOKEN_ENV, PUSH_URL_ENV, PushError, PushInbox, PushServer};
use crate::metrics::trainer_status;
use crate::runner::{Reporting, TrialRun};
use crate::store::SqlStore;

/// The Secret key holding the URL.
pub const URL_KEY: &str = "url";
/// The Secret key holding the token.
pub const TOKEN_KEY: &str = "token";

/// The Push collector: one experiment's trials on a push endpoint.
#[derive(Debug)]
pub struct Push {
    server: Arc<PushServer>,
    /// The experiment's namespace, in a cluster (the endpoint is shared).
    namespace: Option<String>,
    metrics: Arc<[String]>,
    /// Katib's gRPC API for this run's trials, locally.
    db_manager: Option<Box<DbManagerServer>>,
    /// The label naming a trial's pods (its workload kind's), in a cluster.
    owner_label: Option<&'static str>,
}

impl Push {
    /// The collector on `backend`: locally with an endpoint of its own on
    /// 127.0.0.1.
    ///
    /// # Errors
    /// [`CollectorError`] when the local endpoint cannot listen, or the
    /// controller serves none.
    pub async fn start(settings: &Settings, backend: Backend<'_>) -> Result<Self, CollectorError> {
        match backend {
            Backend::Local => Ok(Self {
                server: Arc::new(PushServer::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?),
                namespace: None,
                metrics: Arc::clone(&settings.metrics),
                db_manager: None,
                owner_label: None,
            }),
            Backend::Cluster(cluster) => Self::for_cluster(settings, cluster),
        }
    }

    /// The collector on the controller's endpoint (Push, and File whose
    /// sidecars push).
    ///
    /// # Errors
    /// [`CollectorError::NoPushEndpoint`] when the controller serves none.
    pub fn for_cluster(
        settings: &Settings,
        cluster: &ClusterBackend,
    ) -> Result<Self, CollectorError> {
        let server = cluster.push.clone().ok_or(CollectorError::NoPushEndpoint)?;
        Ok(Self {
            server,
            namespace: Some(cluster.pods.namespace.clone()),
            metrics: Arc::clone(&settings.metrics),
            db_manager: None,
            owner_label: cluster.pods.owner_label,
        })
    }

    /// Serves Katib's gRPC DBManager API on 127.0.0.1 (any free port) for
    /// this local run of `experiment`: reports of its running trials land
    /// in their push queues, reads and deletes go to `store`. Trials
    /// prepared from now on get the address. Nothing in a cluster (the
    /// controller serves one API for all experiments).
    ///
    /// # Errors
    /// [`CollectorError::DbManager`] when no loopback port can be had.
    pub async fn serve_db_manager(
        &mut self,
        experiment: &str,
        store: SqlStore,
    ) -> Result<(), CollectorError> {
        if self.namespace.is_some() || self.db_manager.is_some() {
            return Ok(());
        }
        let gate = LocalGate::new(Arc::clone(&self.server), store.clone(), experiment);
        let limits = DbManagerLimits {
            max_message_bytes: self.server.limits().max_body,
            ..DbManagerLimits::default()
        };
        let server = DbManagerServer::bind(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            Arc::new(gate),
            Arc::clone(&self.server),
            store,
            limits,
        )
        .await?;
        tracing::debug!(addr = %server.local_addr(), "Katib DBManager API for local trials");
        self.db_manager = Some(Box::new(server));
        Ok(())
    }

    /// The endpoint the cluster runner hands the trials, in a cluster.
    #[must_use]
    pub fn cluster_endpoint(&self) -> Option<Arc<PushServer>> {
        self.namespace.as_ref().map(|_| Arc::clone(&self.server))
    }

    /// The trial's key on the endpoint: its name, or in a cluster
    /// `<namespace>.<trial>` (namespaces are DNS labels, without dots, so
    /// that names one trial of the cluster).
    fn key(&self, trial: &str) -> String {
        inbox_key(self.namespace.as_deref(), trial)
    }

    /// What `trial` pushes, from now on.
    #[must_use]
    pub fn pushed(&self, trial: &str) -> Pushed {
        Pushed {
            inbox: self.server.inbox(&self.key(trial)),
            metrics: Arc::clone(&self.metrics),
        }
    }
}

/// A trial's key on the push endpoint: its name, or in a cluster
/// `<namespace>.<trial>`.
#[must_use]
pub fn inbox_key(namespace: Option<&str>, trial: &str) -> String {
    match namespace {
        Some(namespace) => format!("{namespace}.{trial}"),
        None => trial.to_owned(),
    }
}

/// A cluster key's namespace and trial name (namespaces have no dots).
#[must_use]
pub fn split_key(key: &str) -> Option<(&str, &str)> {
    key.split_once('.')
}

impl Collector for Push {
    type Trial = TrialReader;

    fn prepare(&self, trial: &str) -> Reporting {
        let key = self.key(trial);
        match self.server.register(&key) {
            Ok(mut credentials) => {
                // Locally, Kubeflow Trainer's progress protocol too (the
                // local runner writes the token file it needs); in a
                // cluster Trainer itself serves a TrainJob's.
                if self.namespace.is_none() {
                    credentials.trainer_url = Some(
                        self.server
                            .trainer_url(trainer_status::LOCAL_NAMESPACE, trial),
                    );
                }
                if let Some(label) = self.owner_label {
                    self.server
                        .set_pod_selector(&key, format!("{label}={trial}"));
                }
                Reporting {
                    push: Some(credentials),
                    metrics_port: None,
                    db_manager: self
                        .db_manager
                        .as_ref()
                        .map(|server| server.local_addr().to_string()),
                }
            }
            Err(e) => {
                tracing::warn!(trial, "cannot register the trial for push: {e}");
                Reporting::default()
            }
        }
    }

    fn attach(&self, trial: &str, _run: &impl TrialRun) -> TrialReader {
        TrialReader::Pushed(self.pushed(trial))
    }

    fn detach(&self, trial: &str) {
        let late = self.server.unregister(&self.key(trial));
        if !late.is_empty() {
            tracing::warn!(
                trial,
                "{} pushed reports arrived after the trial ended and were dropped",
                late.len()
            );
        }
    }
}

/// What one trial pushed.
#[derive(Debug)]
pub struct Pushed {
    inbox: PushInbox,
    /// The metrics the experiment records (others pushed are ignored).
    metrics: Arc<[String]>,
}

impl TrialMetrics for Pushed {
    async fn poll(&mut self) -> Vec<MetricLog> {
        let mut logs = self.inbox.take();
        logs.retain(|l| self.metrics.contains(&l.name));
        logs
    }

    fn replays(&self) -> bool {
        false
    }
}

/// The controller's push endpoint: listens on `listen`; trials reach it at
/// `public` (e.g. the Service's `http://ktune-controller.ktune-system:8081`),
/// by default at the bound address.
///
/// # Errors
/// [`PushError`] when `listen` cannot be bound.
pub async fn listen(listen: SocketAddr, public: Option<String>) -> Result<PushServer, PushError> {
    let mut server = PushServer::bind(listen).await?;
    if let Some(public) = public {
        server.set_public_url(&public);
    }
    tracing::info!(listen = %server.local_addr(), url = server.url(), "push endpoint listening");
    Ok(server)
}

/// The name of a trial's push Secret.
#[must_use]
pub fn secret_name(trial: &str) -> String {
    format!("{trial}-push")
}

/// `KTUNE_PUSH_URL` and `KTUNE_PUSH_TOKEN` as a container's env entries
/// read from the Secret `secret`.
#[must_use]
pub fn secret_env(secret: &str) -> [Value; 2] {
    [(PUSH_URL_ENV, URL_KEY), (PUSH_TOKEN_ENV, TOKEN_KEY)].map(|(name, key)| {
        json!({"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
    })
}

/// Adds `KTUNE_PUSH_URL` and `KTUNE_PUSH_TOKEN` from the Secret `secret` to
/// every container of a workload, whatever its kind: pod templates'
/// `containers` and `initContainers`, Argo's `container` and `script`
/// templates, Tekton's `steps`, a TrainJob's `trainer`.
pub fn inject_env(workload: &mut Value, secret: &str) {
    walk(workload, &secret_env(secret));
}

/// Sets `vars` (env entries) on one container, replacing any of the same name.
pub(crate) fn add_env(container: &mut Value, vars: &[Value]) {
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

/// Hands a trial its push credentials through its Secret, owned by
/// `owner` (the experiment). When the Secret exists already (a trial
/// adopted after a controller restart, its pods holding the token they
/// started with), the token in it is registered again on `server`
/// instead, so the running trial keeps pushing.
///
/// # Errors
/// The API's refusal.
pub async fn deliver(
    server: &PushServer,
    secrets: &Api<Secret>,
    (namespace, trial): (&str, &str),
    (url, token): (&str, &str),
    owner: Option<OwnerReference>,
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
                server.register_token(&inbox_key(Some(namespace), trial), held);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::push::PushCredentials;
    use crate::metrics::testing::{FakeRun, cluster_backend, spec_with_collector};

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

    /// A local trial gets its URL and token, and only what it pushed of
    /// the experiment's metrics is read; a detached trial's pushes are
    /// refused.
    #[tokio::test]
    async fn local_trials_push_with_their_own_token() {
        let spec = spec_with_collector(json!({"collector": {"kind": "Push"}}));
        let push = Push::start(&Settings::of(&spec), Backend::Local)
            .await
            .unwrap();
        assert!(push.cluster_endpoint().is_none(), "its own endpoint");
        let PushCredentials {
            url,
            token,
            trainer_url,
        } = push.prepare("t1").push.unwrap();
        assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/v1/trials/t1/metrics"));
        let trainer_url = trainer_url.unwrap();
        assert!(
            trainer_url.starts_with("http://127.0.0.1:")
                && trainer_url.ends_with(
                    "/apis/trainer.kubeflow.org/v1alpha1/namespaces/default/trainjobs/t1/status"
                ),
            "{trainer_url}"
        );
        assert_eq!(token.len(), 32);
        let mut reader = push.attach("t1", &FakeRun::default());
        assert!(!reader.replays(), "pushes are not sent again");
        let status =
            crate::metrics::testing::post(&url, &token, r#"{"loss": 0.5, "other": 1}"#).await;
        assert_eq!(status, 204);
        // Trainer's protocol lands in the same queue.
        let update = r#"{"trainerStatus": {"metrics": [{"name": "loss", "value": "0.25"}]}}"#;
        let status = crate::metrics::testing::post(&trainer_url, &token, update).await;
        assert_eq!(status, 200);
        let logs = reader.poll().await;
        assert_eq!(logs.len(), 2, "{logs:?}");
        assert_eq!(
            (logs[0].name.as_str(), logs[0].value.as_str()),
            ("loss", "0.5")
        );
        assert_eq!(logs[1].value, "0.25");
        push.detach("t1");
        let late = crate::metrics::testing::post(&url, &token, r#"{"loss": 1}"#).await;
        assert_eq!(late, 404);
    }

    /// In a cluster the trials share the controller's endpoint, at its
    /// public URL, keyed by namespace; without an endpoint Push (and File)
    /// experiments are refused.
    #[tokio::test]
    async fn cluster_trials_share_the_controllers_endpoint_by_namespace() {
        let server = listen(
            "127.0.0.1:0".parse().unwrap(),
            Some("http://ktune.svc:8081/".into()),
        )
        .await
        .unwrap();
        let cluster = cluster_backend(Some(Arc::new(server)));
        let spec = spec_with_collector(json!({"collector": {"kind": "Push"}}));
        let push = Push::start(&Settings::of(&spec), Backend::Cluster(&cluster))
            .await
            .unwrap();
        assert!(push.cluster_endpoint().is_some());
        let credentials = push.prepare("t1").push.unwrap();
        assert_eq!(
            credentials.url,
            "http://ktune.svc:8081/v1/trials/ns.t1/metrics"
        );
        assert_eq!(credentials.trainer_url, None, "Trainer serves its own");
        let none = cluster_backend(None);
        let refused = Push::start(&Settings::of(&spec), Backend::Cluster(&none)).await;
        assert!(matches!(refused, Err(CollectorError::NoPushEndpoint)));
        assert_eq!(secret_name("t1"), "t1-push");
    }
}
