//! The executor's workload controllers through a kube client: the
//! Kubeflow training jobs, a Trainer TrainJob, an Argo Workflow and a
//! Tekton PipelineRun each run as labelled pods of local processes with
//! the operator's environment, and end with the operator's status.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use ktune_fake_apiserver::{ExecutorConfig, FakeApiServer, crds};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, LogParams};
use kube::{Client, ResourceExt};
use serde_json::Value;

struct Fixture {
    server: FakeApiServer,
    client: Client,
    _dir: tempfile::TempDir,
    _executor: ktune_fake_apiserver::Executor,
}

fn fixture(crd_manifests: &[&str]) -> Fixture {
    let server = FakeApiServer::new();
    for m in crd_manifests {
        server.create_manifest(m).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let executor = server.start_executor(ExecutorConfig {
        workdir: dir.path().to_path_buf(),
        grace: Duration::from_secs(1),
        ..ExecutorConfig::default()
    });
    Fixture {
        client: Client::new(server.router(), "default"),
        server,
        _dir: dir,
        _executor: executor,
    }
}

impl Fixture {
    /// Creates `yaml` and waits (10 s at most) until `done` holds for it.
    async fn run(&self, yaml: &str, done: impl Fn(&Value) -> bool) -> Value {
        let created = self.server.create_manifest(yaml).unwrap();
        let object = &created[0];
        let api_version = object["apiVersion"].as_str().unwrap();
        let (group, version) = api_version.rsplit_once('/').unwrap();
        let kind = object["kind"].as_str().unwrap();
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), "default", &resource);
        let name = object["metadata"]["name"].as_str().unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let now = serde_json::to_value(api.get(name).await.unwrap()).unwrap();
            if done(&now) {
                return now;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not done in time: {now:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn pods(&self, selector: &str) -> Vec<Pod> {
        let pods: Api<Pod> = Api::default_namespaced(self.client.clone());
        let mut list = pods
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap()
            .items;
        list.sort_by_key(ResourceExt::name_any);
        list
    }

    async fn log(&self, pod: &str, container: &str) -> String {
        let pods: Api<Pod> = Api::default_namespaced(self.client.clone());
        let params = LogParams {
            container: Some(container.to_owned()),
            ..LogParams::default()
        };
        pods.logs(pod, &params).await.unwrap()
    }
}

fn condition(object: &Value, ty: &str) -> Option<String> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == ty)
        .map(|c| c["status"].as_str().unwrap_or_default().to_owned())
}

fn types(object: &Value) -> Vec<String> {
    object["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["type"].as_str().unwrap().to_owned())
        .collect()
}

/// A Tekton run is done once its `Succeeded` condition is True or False
/// (Unknown while it runs).
fn settled(object: &Value) -> bool {
    matches!(
        condition(object, "Succeeded").as_deref(),
        Some("True" | "False")
    )
}

fn finished(object: &Value) -> bool {
    ["Succeeded", "Failed", "Complete"]
        .iter()
        .any(|t| condition(object, t).as_deref() == Some("True"))
}

const ECHO_RANK: &str =
    r#"["sh", "-c", "echo rank=$RANK world=$WORLD_SIZE at=$MASTER_ADDR:$MASTER_PORT"]"#;

#[tokio::test]
async fn a_pytorchjob_runs_a_pod_per_replica_with_ranks_and_succeeds_with_its_master() {
    let f = fixture(&[crds::TRAINING_OPERATOR]);
    let yaml = format!(
        r#"
apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata: {{name: torch, namespace: default}}
spec:
  pytorchReplicaSpecs:
    Worker:
      replicas: 2
      template: {{spec: {{containers: [{{name: pytorch, image: x, command: {ECHO_RANK}}}]}}}}
    Master:
      replicas: 1
      template: {{spec: {{containers: [{{name: pytorch, image: x, command: {ECHO_RANK}}}]}}}}
"#
    );
    let job = f.run(&yaml, finished).await;
    assert_eq!(types(&job), ["Created", "Running", "Succeeded"], "{job:#}");
    assert_eq!(condition(&job, "Succeeded").as_deref(), Some("True"));
    let pods = f.pods("training.kubeflow.org/job-name=torch").await;
    let names: Vec<_> = pods.iter().map(ResourceExt::name_any).collect();
    assert_eq!(
        names,
        ["torch-master-0", "torch-worker-0", "torch-worker-1"]
    );
    let masters = f
        .pods("training.kubeflow.org/job-name=torch,training.kubeflow.org/job-role=master")
        .await;
    assert_eq!(masters.len(), 1);
    assert_eq!(masters[0].name_any(), "torch-master-0");
    assert_eq!(
        masters[0].labels()["training.kubeflow.org/operator-name"],
        "pytorchjob-controller"
    );
    let master = f.log("torch-master-0", "pytorch").await;
    let worker = f.log("torch-worker-1", "pytorch").await;
    assert!(
        master.starts_with("rank=0 world=3 at=127.0.0.1:"),
        "{master}"
    );
    assert!(
        worker.starts_with("rank=2 world=3 at=127.0.0.1:"),
        "{worker}"
    );
    // One rendezvous port for all.
    assert_eq!(master.split(':').nth(1), worker.split(':').nth(1));
}

#[tokio::test]
async fn a_failing_replica_fails_the_training_job() {
    let f = fixture(&[crds::TRAINING_OPERATOR]);
    let yaml = r#"
apiVersion: kubeflow.org/v1
kind: XGBoostJob
metadata: {name: xgb, namespace: default}
spec:
  xgbReplicaSpecs:
    Master: {replicas: 1, template: {spec: {containers: [{name: xgboost, image: x, command: [sleep, "5"]}]}}}
    Worker: {replicas: 1, template: {spec: {containers: [{name: xgboost, image: x, command: [sh, -c, "exit 3"]}]}}}
"#;
    let job = f.run(yaml, finished).await;
    assert_eq!(
        condition(&job, "Failed").as_deref(),
        Some("True"),
        "{job:#}"
    );
    assert_eq!(job["status"]["replicaStatuses"]["Worker"]["failed"], 1);
}

#[tokio::test]
async fn an_mpijob_v2beta1_launcher_decides_and_idle_workers_are_cleaned_up() {
    let f = fixture(&[crds::MPIJOB_V2BETA1]);
    let yaml = r#"
apiVersion: kubeflow.org/v2beta1
kind: MPIJob
metadata: {name: mpi, namespace: default}
spec:
  runPolicy: {cleanPodPolicy: Running}
  mpiReplicaSpecs:
    Launcher: {replicas: 1, template: {spec: {containers: [{name: mpi, image: x, command: [sh, -c, "echo role=$K_MPI_JOB_ROLE"]}]}}}
    Worker: {replicas: 2, template: {spec: {containers: [{name: mpi, image: x}]}}}
"#;
    let job = f.run(yaml, finished).await;
    assert_eq!(
        condition(&job, "Succeeded").as_deref(),
        Some("True"),
        "{job:#}"
    );
    let launcher = f.pods("training.kubeflow.org/job-role=launcher").await;
    assert_eq!(launcher.len(), 1);
    assert_eq!(f.log("mpi-launcher", "mpi").await, "role=launcher\n");
    // cleanPodPolicy Running: the still-running workers are deleted.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !f
        .pods("training.kubeflow.org/job-role=worker")
        .await
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "workers left running"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_trainjob_runs_each_node_with_its_rank_from_the_completion_index() {
    let f = fixture(&[crds::TRAINER]);
    let yaml = r#"
apiVersion: trainer.kubeflow.org/v1alpha1
kind: TrainJob
metadata: {name: tj, namespace: default}
spec:
  runtimeRef: {name: torch-distributed}
  trainer:
    numNodes: 2
    image: x
    command: [sh, -c, "echo node=$PET_NODE_RANK of=$PET_NNODES at=$PET_MASTER_ADDR"]
"#;
    let job = f.run(yaml, finished).await;
    assert_eq!(
        condition(&job, "Complete").as_deref(),
        Some("True"),
        "{job:#}"
    );
    let primary = f
        .pods("jobset.sigs.k8s.io/jobset-name=tj,jobset.sigs.k8s.io/replicatedjob-name=node,batch.kubernetes.io/job-completion-index=1")
        .await;
    assert_eq!(primary.len(), 1);
    let log = f.log(&primary[0].name_any(), "node").await;
    assert_eq!(log, "node=1 of=2 at=127.0.0.1\n");
}

#[tokio::test]
async fn an_argo_workflow_runs_its_steps_in_order_passing_outputs() {
    let f = fixture(&[crds::ARGO]);
    let yaml = r#"
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: wf, namespace: default}
spec:
  entrypoint: main
  templates:
    - name: main
      steps:
        - - {name: prepare, template: gen}
        - - name: train
            template: train
            arguments: {parameters: [{name: epochs, value: "{{steps.prepare.outputs.result}}"}]}
    - name: gen
      script: {image: x, command: [sh], source: "echo 7"}
    - name: train
      metadata: {labels: {katib.kubeflow.org/model-training: "true"}}
      inputs: {parameters: [{name: epochs}]}
      container: {name: trainer, image: x, command: [sh, -c, "echo epochs={{inputs.parameters.epochs}} wf={{workflow.name}}"]}
"#;
    let wf = f
        .run(yaml, |w| {
            matches!(w["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
        })
        .await;
    assert_eq!(wf["status"]["phase"], "Succeeded", "{wf:#}");
    let train = f
        .pods("workflows.argoproj.io/workflow=wf,katib.kubeflow.org/model-training=true")
        .await;
    assert_eq!(train.len(), 1);
    assert_eq!(
        f.log(&train[0].name_any(), "main").await,
        "epochs=7 wf=wf\n"
    );
}

#[tokio::test]
async fn a_tekton_pipelinerun_passes_params_and_results_and_runs_steps_in_order() {
    let f = fixture(&[crds::TEKTON]);
    let yaml = r#"
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: pr, namespace: default}
spec:
  params: [{name: lr, value: "0.5"}]
  pipelineSpec:
    params: [{name: lr}]
    tasks:
      - name: train
        params:
          - {name: lr, value: $(params.lr)}
          - {name: count, value: $(tasks.prepare.results.count)}
        taskSpec:
          params: [{name: lr}, {name: count}]
          steps:
            - {name: first, image: x, command: [sh, -c, "sleep 0.3; echo one"]}
            - {name: model-training, image: x, command: [sh, -c, "echo lr=$(params.lr) n=$(params.count)"]}
      - name: prepare
        taskSpec:
          results: [{name: count}]
          steps:
            - {name: gen, image: x, script: "printf 42 > $(results.count.path)"}
"#;
    let run = f.run(yaml, settled).await;
    assert_eq!(
        condition(&run, "Succeeded").as_deref(),
        Some("True"),
        "{run:#}"
    );
    let train = f
        .pods("tekton.dev/pipelineRun=pr,tekton.dev/pipelineTask=train")
        .await;
    assert_eq!(train.len(), 1);
    assert_eq!(
        f.log("pr-train-pod", "step-model-training").await,
        "lr=0.5 n=42\n"
    );
    // The second step started only after the first ended.
    let statuses = train[0]
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .clone()
        .unwrap();
    let ended = |i: usize| {
        statuses[i]
            .state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .clone()
    };
    assert!(ended(0).finished_at <= ended(1).started_at, "{statuses:?}");
}

#[tokio::test]
async fn a_failing_tekton_step_fails_the_run_and_skips_the_rest() {
    let f = fixture(&[crds::TEKTON]);
    let yaml = r#"
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: bad, namespace: default}
spec:
  pipelineSpec:
    tasks:
      - name: t
        taskSpec:
          steps:
            - {name: a, image: x, command: [sh, -c, "exit 1"]}
            - {name: b, image: x, command: [sh, -c, "echo never"]}
"#;
    let run = f.run(yaml, settled).await;
    assert_eq!(
        condition(&run, "Succeeded").as_deref(),
        Some("False"),
        "{run:#}"
    );
    assert_eq!(f.log("bad-t-pod", "step-b").await, "");
}

#[tokio::test]
async fn a_native_sidecar_shares_an_empty_dir_and_is_stopped_after_the_main_container() {
    let f = fixture(&[]);
    let yaml = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: side, namespace: default}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      volumes: [{name: shared, emptyDir: {}}]
      initContainers:
        - name: prepare
          image: x
          command: [sh, -c, "echo ready > /shared/ready"]
          volumeMounts: [{name: shared, mountPath: /shared}]
        - name: sidecar
          image: x
          restartPolicy: Always
          command: [sh, -c, "trap 'cat /shared/out; exit 0' TERM; while true; do sleep 0.05; done"]
          volumeMounts: [{name: shared, mountPath: /shared}]
      containers:
        - name: main
          image: x
          command: [sh, -c, "cat /shared/ready > /shared/out; echo done >> /shared/out"]
          volumeMounts: [{name: shared, mountPath: /shared}]
"#;
    let job = f.run(yaml, finished).await;
    assert_eq!(
        condition(&job, "Complete").as_deref(),
        Some("True"),
        "{job:#}"
    );
    let pod = f.pods("job-name=side").await.remove(0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let log = f.log(&pod.name_any(), "sidecar").await;
        // (sh may first say its `sleep` was terminated: the group gets SIGTERM.)
        if log.ends_with("ready\ndone\n") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sidecar log: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_v1beta1_pipelinerun_runs_too() {
    let f = fixture(&[crds::TEKTON]);
    let yaml = r##"
apiVersion: tekton.dev/v1beta1
kind: PipelineRun
metadata: {name: old, namespace: default}
spec:
  pipelineSpec:
    tasks:
      - name: t
        taskSpec: {steps: [{name: s, image: x, script: "#!/bin/sh\necho hi"}]}
"##;
    let run = f.run(yaml, settled).await;
    assert_eq!(
        condition(&run, "Succeeded").as_deref(),
        Some("True"),
        "{run:#}"
    );
    assert_eq!(f.log("old-t-pod", "step-s").await, "hi\n");
}

#[tokio::test]
async fn a_failing_argo_step_fails_the_workflow_and_stops_it() {
    let f = fixture(&[crds::ARGO]);
    let yaml = r#"
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: bad, namespace: default}
spec:
  entrypoint: main
  templates:
    - name: main
      steps:
        - - {name: first, template: fail}
        - - {name: second, template: ok}
    - {name: fail, container: {image: x, command: [sh, -c, "exit 2"]}}
    - {name: ok, container: {image: x, command: ["true"]}}
"#;
    let wf = f
        .run(yaml, |w| {
            matches!(w["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
        })
        .await;
    assert_eq!(wf["status"]["phase"], "Failed", "{wf:#}");
    assert_eq!(wf["status"]["message"], "child 'first' failed");
    assert_eq!(f.pods("workflows.argoproj.io/workflow=bad").await.len(), 1);
}

#[tokio::test]
async fn the_steps_of_an_argo_parallel_group_run_side_by_side() {
    let f = fixture(&[crds::ARGO]);
    // Each step waits (3 s at most) for the other to have started.
    let dir = f._dir.path().display().to_string();
    let wait = |me: &str, other: &str| {
        format!(
            "touch {dir}/{me}; i=0; while [ ! -f {dir}/{other} ]; do i=$((i+1)); [ $i -lt 60 ] || exit 1; sleep 0.05; done"
        )
    };
    let yaml = format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{name: par, namespace: default}}
spec:
  entrypoint: main
  templates:
    - name: main
      steps:
        - - {{name: a, template: a}}
          - {{name: b, template: b}}
    - {{name: a, container: {{image: x, command: [sh, -c, {a:?}]}}}}
    - {{name: b, container: {{image: x, command: [sh, -c, {b:?}]}}}}
"#,
        a = wait("a", "b"),
        b = wait("b", "a"),
    );
    let wf = f
        .run(&yaml, |w| {
            matches!(w["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
        })
        .await;
    assert_eq!(wf["status"]["phase"], "Succeeded", "{wf:#}");
    assert_eq!(wf["status"]["nodes"].as_object().unwrap().len(), 2);
}

/// The kind of state a container status is in (`waiting`, `running`,
/// `terminated`), with its container's name.
fn states(statuses: Option<&Vec<k8s_openapi::api::core::v1::ContainerStatus>>) -> Vec<String> {
    statuses
        .into_iter()
        .flatten()
        .map(|s| {
            let state = s.state.clone().unwrap_or_default();
            let kind = if state.waiting.is_some() {
                "waiting"
            } else if state.running.is_some() {
                "running"
            } else {
                "terminated"
            };
            format!("{}:{kind}", s.name)
        })
        .collect()
}

#[tokio::test]
async fn containers_without_images_get_a_placeholder_and_statuses_in_every_state() {
    let f = fixture(&[]);
    let yaml = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: shapes, namespace: default}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      initContainers:
        - name: init
          command: [sh, -c, "sleep 0.4"]
        - name: side
          restartPolicy: Always
          command: [sh, -c, "sleep 30"]
      containers:
        - name: main
          command: [sh, -c, "sleep 0.4"]
        - name: named
          image: busybox:1.36
          command: ["true"]
"#;
    f.server.create_manifest(yaml).unwrap();
    // Every reading goes through k8s-openapi's typed Pod, which (like the
    // Python client) requires name, image, imageID, ready and restartCount.
    let mut seen = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let pods = f.pods("job-name=shapes").await;
        if let Some(pod) = pods.first() {
            let spec = pod.spec.clone().unwrap();
            let image = |c: &k8s_openapi::api::core::v1::Container| c.image.clone().unwrap();
            assert_eq!(
                spec.containers.iter().map(image).collect::<Vec<_>>(),
                [ktune_fake_apiserver::PLACEHOLDER_IMAGE, "busybox:1.36"]
            );
            assert!(
                spec.init_containers
                    .iter()
                    .flatten()
                    .all(|c| image(c) == ktune_fake_apiserver::PLACEHOLDER_IMAGE)
            );
            let status = pod.status.clone().unwrap_or_default();
            for s in status
                .container_statuses
                .iter()
                .chain(status.init_container_statuses.iter())
                .flatten()
            {
                assert!(!s.image.is_empty() && !s.image_id.is_empty(), "{s:?}");
                if s.name == "named" {
                    assert_eq!(s.image, "busybox:1.36");
                }
            }
            let now = (
                states(status.init_container_statuses.as_ref()).join(","),
                states(status.container_statuses.as_ref()).join(","),
            );
            seen.insert(now);
            if status.phase.as_deref() == Some("Succeeded") {
                break;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "seen: {seen:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let want = [
        // Initialising: the first init container runs, the rest wait.
        ("init:running,side:waiting", "main:waiting,named:waiting"),
        // Initialised: the sidecar beside the running containers.
        ("init:terminated,side:running", "main:running,named:running"),
        // Ended: the sidecar stopped with the pod.
        (
            "init:terminated,side:terminated",
            "main:terminated,named:terminated",
        ),
    ];
    for (init, main) in want {
        assert!(
            seen.contains(&(init.to_owned(), main.to_owned())),
            "never saw {init} / {main}: {seen:?}"
        );
    }
}

#[tokio::test]
async fn a_worker_still_running_when_its_job_succeeds_runs_on_to_its_own_end() {
    let f = fixture(&[crds::TRAINING_OPERATOR]);
    let yaml = r#"
apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata: {name: lagging, namespace: default}
spec:
  pytorchReplicaSpecs:
    Master:
      replicas: 1
      template: {spec: {containers: [{name: pytorch, command: ["true"]}]}}
    Worker:
      replicas: 1
      template: {spec: {containers: [{name: pytorch, command: [sh, -c, "sleep 0.5"]}]}}
"#;
    let job = f.run(yaml, finished).await;
    assert_eq!(condition(&job, "Succeeded").as_deref(), Some("True"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let pods = f.pods("training.kubeflow.org/job-name=lagging").await;
        let phases: Vec<_> = pods
            .iter()
            .map(|p| {
                p.status
                    .clone()
                    .unwrap_or_default()
                    .phase
                    .unwrap_or_default()
            })
            .collect();
        if phases == ["Succeeded", "Succeeded"] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "phases: {phases:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
