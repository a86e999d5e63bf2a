//! Kubeflow Trainer's TrainJob status server (gate `TrainJobStatus`) as
//! the fake plays it: a TrainJob's pods get the endpoint and a token, a
//! trainer POSTs its progress there, and it lands in the TrainJob's
//! `status.trainerStatus` (resourceVersion bumped, watch event sent, kept
//! when the job ends); a wrong token is refused, a bad body names its field.
//! And the runtimes a TrainJob names are served.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use ktune_fake_apiserver::{Config, ExecutorConfig, FakeApiServer, crds};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, WatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

struct Fixture {
    server: FakeApiServer,
    client: Client,
    _handle: ktune_fake_apiserver::ServerHandle,
    _dir: tempfile::TempDir,
    _executor: ktune_fake_apiserver::Executor,
}

async fn fixture(trainer_status: bool) -> Fixture {
    let server = FakeApiServer::with_config(Config {
        trainer_status,
        ..Config::default()
    });
    server.create_manifest(crds::TRAINER).unwrap();
    // On a socket: that is where the pods reach the status server.
    let (_, handle) = server.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let executor = server.start_executor(ExecutorConfig {
        workdir: dir.path().to_path_buf(),
        grace: Duration::from_secs(1),
        ..ExecutorConfig::default()
    });
    Fixture {
        client: Client::new(server.router(), "default"),
        server,
        _handle: handle,
        _dir: dir,
        _executor: executor,
    }
}

fn trainjobs(client: &Client) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "trainer.kubeflow.org",
        "v1alpha1",
        "TrainJob",
    ));
    Api::namespaced_with(client.clone(), "default", &resource)
}

fn trainjob(name: &str, command: &str) -> String {
    json!({
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"runtimeRef": {"name": "torch-distributed"}, "trainer": {"numNodes": 2, "command": ["sh", "-c", command]}},
    })
    .to_string()
}

impl Fixture {
    async fn get(&self, name: &str) -> Value {
        serde_json::to_value(trainjobs(&self.client).get(name).await.unwrap()).unwrap()
    }

    /// Waits (15 s at most) until `done` holds for TrainJob `name`.
    async fn until(&self, name: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let now = self.get(name).await;
            if done(&now) {
                return now;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not in time: {now:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The env of the first container of every pod of TrainJob `name`, once
    /// all `n` are there.
    async fn pod_envs(&self, name: &str, n: usize) -> Vec<Vec<(String, String)>> {
        let pods: Api<Pod> = Api::default_namespaced(self.client.clone());
        let selector = format!("jobset.sigs.k8s.io/jobset-name={name}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let list = pods
                .list(&ListParams::default().labels(&selector))
                .await
                .unwrap();
            if list.items.len() == n {
                return list
                    .items
                    .iter()
                    .map(|p| {
                        let spec = p.spec.as_ref().unwrap();
                        spec.containers[0]
                            .env
                            .iter()
                            .flatten()
                            .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
                            .collect()
                    })
                    .collect();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} pods",
                list.items.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// POSTs `body` to the status endpoint of `name` with `token`; the
    /// HTTP code and the answer.
    async fn post(&self, name: &str, token: Option<&str>, body: &str) -> (u16, Value) {
        let mut request = axum::http::Request::post(format!(
            "/apis/trainer.kubeflow.org/v1alpha1/namespaces/default/trainjobs/{name}/status"
        ))
        .header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(body.as_bytes().to_vec()).unwrap();
        match self.client.request_text(request).await {
            Ok(text) => (200, serde_json::from_str(&text).unwrap()),
            Err(kube::Error::Api(status)) => (
                status.code,
                json!({"message": status.message, "reason": status.reason}),
            ),
            Err(e) => panic!("{e}"),
        }
    }
}

fn var<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

const SLEEP: &str = "sleep 30";

#[tokio::test]
async fn every_pod_of_a_trainjob_gets_the_endpoint_and_a_token_file_and_no_ca() {
    let f = fixture(true).await;
    f.server.create_manifest(&trainjob("tj", SLEEP)).unwrap();
    let envs = f.pod_envs("tj", 2).await;
    let addr = f._handle.addr();
    for env in &envs {
        assert_eq!(
            var(env, "KUBEFLOW_TRAINER_SERVER_URL"),
            Some(format!("http://{addr}/apis/trainer.kubeflow.org/v1alpha1/namespaces/default/trainjobs/tj/status").as_str())
        );
        let token =
            std::fs::read_to_string(var(env, "KUBEFLOW_TRAINER_SERVER_TOKEN").unwrap()).unwrap();
        assert!(token.len() >= 32, "{token}");
        assert_eq!(var(env, "KUBEFLOW_TRAINER_SERVER_CA_CERT"), None);
    }
    assert_eq!(envs[0], envs[1], "one token per TrainJob");
}

#[tokio::test]
async fn a_post_replaces_trainer_status_with_a_new_resource_version_and_a_watch_event() {
    let f = fixture(true).await;
    f.server.create_manifest(&trainjob("tj", SLEEP)).unwrap();
    let env = f.pod_envs("tj", 2).await.remove(0);
    let token =
        std::fs::read_to_string(var(&env, "KUBEFLOW_TRAINER_SERVER_TOKEN").unwrap()).unwrap();
    let before = f.get("tj").await;
    let api = trainjobs(&f.client);
    let version = before["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut events = api
        .watch(&WatchParams::default().fields("metadata.name=tj"), &version)
        .await
        .unwrap()
        .boxed();
    let first = json!({"trainerStatus": {"lastUpdatedTime": "2026-12-07T17:00:00.5+00:00", "progressPercentage": 40,
        "estimatedRemainingSeconds": 30, "metrics": [{"name": "loss", "value": "0.5"}, {"name": "acc", "value": "0.7"}]}});
    let (code, answer) = f.post("tj", Some(&token), &first.to_string()).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(
        answer["trainerStatus"]["lastUpdatedTime"],
        "2026-12-07T17:00:00Z"
    );
    let after = f.get("tj").await;
    assert_ne!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert_eq!(after["status"]["trainerStatus"], answer["trainerStatus"]);
    let seen = loop {
        let event = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let kube::api::WatchEvent::Modified(o) = event
            && o.data.pointer("/status/trainerStatus").is_some()
        {
            break o;
        }
    };
    assert_eq!(
        seen.data["status"]["trainerStatus"]["progressPercentage"],
        40
    );
    // The next report replaces the whole trainerStatus (metrics included).
    let second = json!({"trainerStatus": {"progressPercentage": 80, "metrics": [{"name": "loss", "value": "0.25"}]}});
    assert_eq!(f.post("tj", Some(&token), &second.to_string()).await.0, 200);
    assert_eq!(
        f.get("tj").await["status"]["trainerStatus"],
        json!({"progressPercentage": 80, "metrics": [{"name": "loss", "value": "0.25"}]})
    );
    // No trainerStatus: 200 and nothing written.
    let version = f.get("tj").await["metadata"]["resourceVersion"].clone();
    assert_eq!(f.post("tj", Some(&token), "{}").await.0, 200);
    assert_eq!(f.get("tj").await["metadata"]["resourceVersion"], version);
}

#[tokio::test]
async fn a_wrong_or_missing_token_is_forbidden_and_a_bad_body_names_its_field() {
    let f = fixture(true).await;
    f.server.create_manifest(&trainjob("tj", SLEEP)).unwrap();
    f.server.create_manifest(&trainjob("other", SLEEP)).unwrap();
    let env = f.pod_envs("tj", 2).await.remove(0);
    let token =
        std::fs::read_to_string(var(&env, "KUBEFLOW_TRAINER_SERVER_TOKEN").unwrap()).unwrap();
    let other = f.pod_envs("other", 2).await.remove(0);
    let other_token =
        std::fs::read_to_string(var(&other, "KUBEFLOW_TRAINER_SERVER_TOKEN").unwrap()).unwrap();
    let body = json!({"trainerStatus": {"progressPercentage": 1}}).to_string();
    assert_eq!(f.post("tj", None, &body).await.0, 403);
    assert_eq!(f.post("tj", Some("guess"), &body).await.0, 403);
    assert_eq!(f.post("tj", Some(&other_token), &body).await.0, 403);
    let (code, answer) = f
        .post(
            "tj",
            Some(&token),
            r#"{"trainerStatus": {"progressPercentage": 150}}"#,
        )
        .await;
    assert_eq!((code, answer["reason"].as_str()), (422, Some("Invalid")));
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.contains("status.trainerStatus.progressPercentage"),
        "{message}"
    );
    let (code, answer) = f
        .post(
            "tj",
            Some(&token),
            r#"{"trainerStatus": {"metrics": [{"name": "loss", "value": 1}]}}"#,
        )
        .await;
    assert_eq!(code, 422);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("trainerStatus.metrics[0].value"),
        "{answer}"
    );
    assert_eq!(f.post("tj", Some(&token), "not json").await.0, 422);
    assert!(f.get("tj").await["status"].get("trainerStatus").is_none());
    // Deleted: its token opens nothing.
    trainjobs(&f.client)
        .delete("tj", &Default::default())
        .await
        .unwrap();
    assert_eq!(f.post("tj", Some(&token), &body).await.0, 404);
}

#[tokio::test]
async fn a_trainer_reports_from_its_pod_and_the_status_outlives_the_job_end() {
    let f = fixture(true).await;
    // What `update_trainjob_status` does, in Python's standard library.
    let report = r#"python3 -c '
import json, os, urllib.request
token = open(os.environ["KUBEFLOW_TRAINER_SERVER_TOKEN"]).read().strip()
body = {"trainerStatus": {"progressPercentage": 100, "metrics": [{"name": "loss", "value": os.environ["PET_NODE_RANK"]}]}}
request = urllib.request.Request(os.environ["KUBEFLOW_TRAINER_SERVER_URL"], data=json.dumps(body).encode(),
    headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
print(urllib.request.urlopen(request).status)
'"#;
    f.server.create_manifest(&trainjob("tj", report)).unwrap();
    let done = f
        .until("tj", |j| {
            j["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Complete" && c["status"] == "True")
            })
        })
        .await;
    let metrics = &done["status"]["trainerStatus"]["metrics"];
    assert!(
        metrics == &json!([{"name": "loss", "value": "0"}])
            || metrics == &json!([{"name": "loss", "value": "1"}]),
        "{done:#}"
    );
    assert_eq!(done["status"]["trainerStatus"]["progressPercentage"], 100);
    let pods: Api<Pod> = Api::default_namespaced(f.client.clone());
    for pod in pods.list(&ListParams::default()).await.unwrap() {
        let log = pods
            .logs(&pod.name_any(), &Default::default())
            .await
            .unwrap();
        assert_eq!(log, "200\n", "{}", pod.name_any());
    }
}

#[tokio::test]
async fn with_the_gate_off_pods_get_nothing_and_a_post_is_the_api_servers() {
    let f = fixture(false).await;
    f.server.create_manifest(&trainjob("tj", SLEEP)).unwrap();
    for env in f.pod_envs("tj", 2).await {
        assert_eq!(var(&env, "KUBEFLOW_TRAINER_SERVER_URL"), None);
        assert_eq!(var(&env, "KUBEFLOW_TRAINER_SERVER_TOKEN"), None);
    }
    let body = json!({"trainerStatus": {"progressPercentage": 1}}).to_string();
    assert_eq!(f.post("tj", Some("x"), &body).await.0, 405);
}

#[tokio::test]
async fn trainer_runtimes_are_served_cluster_scoped_and_namespaced() {
    let server = FakeApiServer::new();
    server.install_workload_crds().unwrap();
    let client = Client::new(server.router(), "default");
    let gvk = |kind| {
        ApiResource::from_gvk(&GroupVersionKind::gvk(
            "trainer.kubeflow.org",
            "v1alpha1",
            kind,
        ))
    };
    let runtime = |kind: &str| {
        json!({"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": kind,
            "metadata": {"name": "torch-distributed", "labels": {"trainer.kubeflow.org/framework": "torch"}},
            "spec": {"mlPolicy": {"numNodes": 1}}})
    };
    let cluster: Api<DynamicObject> = Api::all_with(client.clone(), &gvk("ClusterTrainingRuntime"));
    let created = cluster
        .create(
            &Default::default(),
            &serde_json::from_value(runtime("ClusterTrainingRuntime")).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(created.metadata.namespace, None);
    assert_eq!(
        cluster.get("torch-distributed").await.unwrap().labels()["trainer.kubeflow.org/framework"],
        "torch"
    );
    let namespaced: Api<DynamicObject> =
        Api::namespaced_with(client, "default", &gvk("TrainingRuntime"));
    let created = namespaced
        .create(
            &Default::default(),
            &serde_json::from_value(runtime("TrainingRuntime")).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(created.metadata.namespace.as_deref(), Some("default"));
}
