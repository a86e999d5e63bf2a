//! Every trial kind end to end: the real `ktune controller` against the fake
//! API server, whose executor runs each kind's pods as local processes with
//! the operator's environment and sets the kind's status. Each experiment
//! runs two trials of one kind; the objective comes from the primary pod's
//! log (the other replicas print a worse value, so reading the wrong pod
//! shows). Also: a failing replica fails its trial, a kind outside
//! `--trial-resources` fails the experiment, and deploy/ grants exactly
//! the kinds it passes as `--trial-resources`.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use ktune_fake_apiserver::crds;
use support::cluster::{Cluster, stop};
use support::{describe, repo_root, two_mode_experiment};

/// A replica's shell script: records `$RANK $WORLD_SIZE` under its pod name
/// in `dir`, then prints the trial's loss (`0.<mode>`) when `primary`
/// holds (a shell test), else `loss=9`.
fn script(dir: &Path, primary: &str) -> String {
    format!(
        "echo \"$RANK $WORLD_SIZE\" > {}/$HOSTNAME; if {primary}; then echo loss=0.$1; else echo loss=9; fi",
        dir.display()
    )
}

/// A container running `script` with the trial's mode as `$1`; `role` is
/// `primary` or `other` (in `$ROLE`).
fn container(name: &str, dir: &Path, role: &str) -> String {
    let script = script(dir, "[ \"$ROLE\" = primary ]");
    format!(
        r#"{{name: {name}, image: busybox, env: [{{name: ROLE, value: {role}}}], command: ["sh", "-c", {script:?}, "trial", "${{trialParameters.mode}}"]}}"#
    )
}

/// An experiment minimising `loss` over modes 1 and 2 (grid, both at
/// once) whose trials are `trial_spec` (YAML, indented by 6);
/// `template_extra` adds trialTemplate fields (indented by 4).
fn experiment(name: &str, container: &str, template_extra: &str, trial_spec: &str) -> String {
    two_mode_experiment(
        name,
        "  maxFailedTrialCount: 1",
        container,
        template_extra,
        trial_spec,
    )
}

/// Runs `yaml` under a controller (with `args`) until the experiment is
/// `condition`; returns the cluster and the controller's log.
async fn run(
    cluster: Cluster,
    yaml: String,
    name: &str,
    condition: &str,
    args: &[&str],
) -> (Cluster, String) {
    let mut all = vec!["--listen", "off"];
    all.extend_from_slice(args);
    let controller = cluster.controller(&all);
    let (name, condition) = (name.to_owned(), condition.to_owned());
    let (cluster, waited) = tokio::task::spawn_blocking(move || {
        let out = cluster.kubectl(&["apply", "-f", "-"], Some(&yaml));
        assert!(out.status.success(), "{}", describe(&out));
        let waited = cluster.wait_for(&condition, &format!("experiment/{name}"), 60);
        (cluster, waited)
    })
    .await
    .unwrap();
    let logs = stop(controller);
    assert!(waited.status.success(), "{}\n{logs}", describe(&waited));
    (cluster, logs)
}

/// Both trials succeeded, and the best objective is the primary's 0.1.
fn assert_two_trials_read_from_the_primary(cluster: &Cluster, name: &str, logs: &str) {
    let get = |path: &str| cluster.jsonpath(&["experiment", name], path);
    assert_eq!(get("{.status.trialsSucceeded}"), "2", "{logs}");
    assert_eq!(
        get("{.status.currentOptimalTrial.objectiveValue}"),
        "0.1",
        "{logs}"
    );
}

/// What each replica recorded: pod name → `RANK WORLD_SIZE`.
fn recorded(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let text = std::fs::read_to_string(e.path()).unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                text.trim().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn ranks_dir(cluster: &Cluster) -> std::path::PathBuf {
    let dir = cluster.dir.join("ranks");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pytorchjob_trials_run_master_and_workers_with_their_ranks() {
    let cluster = Cluster::fake_with("kind-pytorch", &[crds::TRAINING_OPERATOR]).await;
    let dir = ranks_dir(&cluster);
    let spec = format!(
        r#"      apiVersion: kubeflow.org/v1
      kind: PyTorchJob
      spec:
        pytorchReplicaSpecs:
          Master:
            replicas: 1
            template: {{spec: {{containers: [{}]}}}}
          Worker:
            replicas: 2
            template: {{spec: {{containers: [{}]}}}}"#,
        container("pytorch", &dir, "primary"),
        container("pytorch", &dir, "other"),
    );
    let yaml = experiment("torch", "pytorch", "", &spec);
    let (cluster, logs) = run(cluster, yaml, "torch", "Succeeded", &[]).await;
    assert_two_trials_read_from_the_primary(&cluster, "torch", &logs);
    let seen = recorded(&dir);
    let by_role: BTreeSet<(String, String)> = seen
        .iter()
        .map(|(pod, env)| {
            // `<trial>-master-0` → `master-0`.
            let mut parts = pod.rsplitn(3, '-');
            let (index, role) = (parts.next().unwrap(), parts.next().unwrap());
            (format!("{role}-{index}"), env.clone())
        })
        .collect();
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert_eq!(
        by_role,
        BTreeSet::from([
            ("master-0".to_owned(), "0 3".to_owned()),
            ("worker-0".to_owned(), "1 3".to_owned()),
            ("worker-1".to_owned(), "2 3".to_owned()),
        ]),
        "{seen:?}"
    );
}

/// A Kubeflow job of `kind` with one `primary` replica and `workers`
/// Worker replicas (container `container`) runs two trials read from the
/// primary replica.
async fn primary_and_workers_read_the_primary(
    name: &str,
    kind: &str,
    replica_specs: &str,
    primary: &str,
    workers: u32,
    container_name: &str,
) {
    let cluster = Cluster::fake_with(&format!("kind-{name}"), &[crds::TRAINING_OPERATOR]).await;
    let dir = ranks_dir(&cluster);
    let spec = format!(
        r#"      apiVersion: kubeflow.org/v1
      kind: {kind}
      spec:
        {replica_specs}:
          {primary}: {{replicas: 1, template: {{spec: {{containers: [{}]}}}}}}
          Worker: {{replicas: {workers}, template: {{spec: {{containers: [{}]}}}}}}"#,
        container(container_name, &dir, "primary"),
        container(container_name, &dir, "other"),
    );
    let yaml = experiment(name, container_name, "", &spec);
    let (cluster, logs) = run(cluster, yaml, name, "Succeeded", &[]).await;
    assert_two_trials_read_from_the_primary(&cluster, name, &logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tfjob_trials_read_the_chief() {
    primary_and_workers_read_the_primary("tf", "TFJob", "tfReplicaSpecs", "Chief", 1, "tensorflow")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xgboostjob_trials_read_the_master() {
    primary_and_workers_read_the_primary(
        "xgb",
        "XGBoostJob",
        "xgbReplicaSpecs",
        "Master",
        2,
        "xgboost",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paddlejob_trials_read_the_master() {
    primary_and_workers_read_the_primary(
        "paddle",
        "PaddleJob",
        "paddleReplicaSpecs",
        "Master",
        1,
        "paddle",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jaxjob_trials_read_worker_0() {
    let cluster = Cluster::fake_with("kind-jax", &[crds::TRAINING_OPERATOR]).await;
    let dir = ranks_dir(&cluster);
    let script = script(&dir, "[ \"$PROCESS_ID\" = 0 ]");
    let spec = format!(
        r#"      apiVersion: kubeflow.org/v1
      kind: JAXJob
      spec:
        jaxReplicaSpecs:
          Worker:
            replicas: 2
            template: {{spec: {{containers: [{{name: jax, image: x, command: ["sh", "-c", {script:?}, "trial", "${{trialParameters.mode}}"]}}]}}}}"#
    );
    let yaml = experiment("jax", "jax", "", &spec);
    let (cluster, logs) = run(cluster, yaml, "jax", "Succeeded", &[]).await;
    assert_two_trials_read_from_the_primary(&cluster, "jax", &logs);
}

/// An MPIJob: the launcher runs (and is primary), the workers idle.
fn mpijob(api_version: &str, dir: &Path) -> String {
    format!(
        r#"      apiVersion: {api_version}
      kind: MPIJob
      spec:
        runPolicy: {{cleanPodPolicy: Running}}
        mpiReplicaSpecs:
          Launcher: {{replicas: 1, template: {{spec: {{containers: [{}]}}}}}}
          Worker: {{replicas: 2, template: {{spec: {{containers: [{{name: mpi, image: x}}]}}}}}}"#,
        container("mpi", dir, "primary"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mpijob_v1_trials_read_the_launcher() {
    let cluster = Cluster::fake_with("kind-mpi1", &[crds::MPIJOB_V1]).await;
    let dir = ranks_dir(&cluster);
    let yaml = experiment("mpi1", "mpi", "", &mpijob("kubeflow.org/v1", &dir));
    let (cluster, logs) = run(cluster, yaml, "mpi1", "Succeeded", &[]).await;
    assert_two_trials_read_from_the_primary(&cluster, "mpi1", &logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mpijob_v2beta1_trials_read_the_launcher() {
    let cluster = Cluster::fake_with("kind-mpi2", &[crds::MPIJOB_V2BETA1]).await;
    let dir = ranks_dir(&cluster);
    let yaml = experiment("mpi2", "mpi", "", &mpijob("kubeflow.org/v2beta1", &dir));
    let (cluster, logs) = run(cluster, yaml, "mpi2", "Succeeded", &[]).await;
    assert_two_trials_read_from_the_primary(&cluster, "mpi2", &logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trainjob_trials_read_node_0() {
    let cluster = Cluster::fake_with("kind-trainjob", &[crds::TRAINER]).await;
    let dir = ranks_dir(&cluster);
    let script = script(&dir, "[ \"$PET_NODE_RANK\" = 0 ]");
    let spec = format!(
        r#"      apiVersion: trainer.kubeflow.org/v1alpha1
      kind: TrainJob
      spec:
        runtimeRef: {{name: torch-distributed}}
        trainer:
          numNodes: 2
          image: x
          command: ["sh", "-c", {script:?}, "trial", "${{trialParameters.mode}}"]"#
    );
    let yaml = experiment("trainjob", "node", "", &spec);
    let (cluster, logs) = run(cluster, yaml, "trainjob", "Succeeded", &[]).await;
    assert_two_trials_read_from_the_primary(&cluster, "trainjob", &logs);
}

/// A JobSet (a kind added to the trial-kind table as one entry): the
/// first pod of the first replicated job is the primary, every pod gets
/// its completion index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobset_trials_read_the_first_pod_of_the_first_job() {
    let jobset = ktune_kinds::find("jobset.x-k8s.io", "v1alpha2", "JobSet").unwrap();
    let cluster = Cluster::fake_with("kind-jobset", &[&crds::for_kind(jobset)]).await;
    let dir = ranks_dir(&cluster);
    let spec = format!(
        r#"      apiVersion: jobset.x-k8s.io/v1alpha2
      kind: JobSet
      spec:
        replicatedJobs:
          - name: driver
            template: {{spec: {{template: {{spec: {{containers: [{}]}}}}}}}}
          - name: workers
            replicas: 2
            template: {{spec: {{parallelism: 2, completions: 2, template: {{spec: {{containers: [{}]}}}}}}}}"#,
        container("main", &dir, "primary"),
        container("main", &dir, "other"),
    );
    let yaml = experiment("jobset", "main", "", &spec);
    let (cluster, logs) = run(cluster, yaml, "jobset", "Succeeded", &[]).await;
    assert_two_trials_read_from_the_primary(&cluster, "jobset", &logs);
    assert_eq!(recorded(&dir).len(), 10, "five pods a trial");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_workflow_trials_read_the_labelled_training_step() {
    let cluster = Cluster::fake_with("kind-argo", &[crds::ARGO]).await;
    // Katib's Argo example's conditions and primary-pod label.
    let extra = r#"    primaryPodLabels: {katib.kubeflow.org/model-training: "true"}
    successCondition: status.[@this].#(phase=="Succeeded")#
    failureCondition: status.[@this].#(phase=="Failed")#"#;
    let spec = r#"      apiVersion: argoproj.io/v1alpha1
      kind: Workflow
      spec:
        entrypoint: main
        templates:
          - name: main
            steps:
              - - {name: prepare, template: prepare}
              - - name: train
                  template: train
                  arguments: {parameters: [{name: digit, value: "{{steps.prepare.outputs.result}}"}]}
          - name: prepare
            script: {image: x, command: [sh], source: "echo loss=9; echo ${trialParameters.mode}"}
          - name: train
            metadata: {labels: {katib.kubeflow.org/model-training: "true"}}
            inputs: {parameters: [{name: digit}]}
            container: {name: train, image: x, command: [sh, -c, "echo loss=0.$(echo '{{inputs.parameters.digit}}' | tail -n 1)"]}"#;
    let yaml = experiment("argo", "main", extra, spec);
    let (cluster, logs) = run(cluster, yaml, "argo", "Succeeded", &[]).await;
    assert_two_trials_read_from_the_primary(&cluster, "argo", &logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tekton_pipelinerun_trials_read_the_training_task() {
    let cluster = Cluster::fake_with("kind-tekton", &[crds::TEKTON]).await;
    // Katib's Tekton example's conditions and primary-pod label.
    let extra = r#"    primaryPodLabels: {tekton.dev/pipelineTask: train}
    successCondition: status.conditions.#(type=="Succeeded")#|#(status=="True")#
    failureCondition: status.conditions.#(type=="Succeeded")#|#(status=="False")#"#;
    let spec = r#"      apiVersion: tekton.dev/v1
      kind: PipelineRun
      spec:
        params: [{name: mode, value: "${trialParameters.mode}"}]
        pipelineSpec:
          params: [{name: mode}]
          tasks:
            - name: prepare
              params: [{name: mode, value: $(params.mode)}]
              taskSpec:
                params: [{name: mode}]
                results: [{name: digit}]
                steps:
                  - {name: gen, image: x, script: "echo loss=9; printf $(params.mode) > $(results.digit.path)"}
            - name: train
              params: [{name: digit, value: $(tasks.prepare.results.digit)}]
              taskSpec:
                params: [{name: digit}]
                steps:
                  - {name: warm-up, image: x, command: [sh, -c, "echo loss=9"]}
                  - {name: train, image: x, command: [sh, -c, "echo loss=0.$(params.digit)"]}"#;
    let yaml = experiment("tekton", "step-train", extra, spec);
    let (cluster, logs) = run(cluster, yaml, "tekton", "Succeeded", &[]).await;
    assert_two_trials_read_from_the_primary(&cluster, "tekton", &logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_worker_fails_its_pytorchjob_trial() {
    let cluster = Cluster::fake_with("kind-fails", &[crds::TRAINING_OPERATOR]).await;
    let dir = ranks_dir(&cluster);
    let spec = format!(
        r#"      apiVersion: kubeflow.org/v1
      kind: PyTorchJob
      spec:
        pytorchReplicaSpecs:
          Master:
            replicas: 1
            template: {{spec: {{containers: [{}]}}}}
          Worker:
            replicas: 1
            template: {{spec: {{containers: [{{name: pytorch, image: x, command: [sh, -c, "exit 3"]}}]}}}}"#,
        container("pytorch", &dir, "primary").replace("echo loss", "sleep 2; echo loss"),
    );
    let yaml = experiment("fails", "pytorch", "", &spec);
    let (cluster, logs) = run(cluster, yaml, "fails", "Failed", &[]).await;
    let get = |path: &str| cluster.jsonpath(&["experiment", "fails"], path);
    assert_eq!(get("{.status.trialsFailed}"), "2", "{logs}");
    let trial = get("{.status.failedTrialList[0]}");
    assert!(trial.starts_with("fails-"), "{trial}\n{logs}");
    let condition = cluster.jsonpath(&["trial", &trial], "{.status.conditions[-1:].type}");
    assert_eq!(condition, "Failed", "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_of_a_kind_not_in_trial_resources_fails_the_experiment() {
    let cluster = Cluster::fake_with("kind-refused", &[crds::TRAINING_OPERATOR]).await;
    let dir = ranks_dir(&cluster);
    let spec = format!(
        r#"      apiVersion: kubeflow.org/v1
      kind: PyTorchJob
      spec:
        pytorchReplicaSpecs:
          Master: {{replicas: 1, template: {{spec: {{containers: [{}]}}}}}}"#,
        container("pytorch", &dir, "primary"),
    );
    let yaml = experiment("refused", "pytorch", "", &spec);
    let args = ["--trial-resources", "Job.v1.batch,TFJob.v1.kubeflow.org"];
    let (cluster, logs) = run(cluster, yaml, "refused", "Failed", &args).await;
    let get = |path: &str| cluster.jsonpath(&["experiment", "refused"], path);
    assert_eq!(
        get("{.status.conditions[-1:].reason}"),
        "TrialResourceNotAllowed",
        "{logs}"
    );
    let message = get("{.status.conditions[-1:].message}");
    assert!(
        message.contains("PyTorchJob.v1.kubeflow.org")
            && message.contains("Job.v1.batch, TFJob.v1.kubeflow.org"),
        "{message}"
    );
    let pods = cluster.jsonpath(&["pytorchjobs"], "{.items[*].metadata.name}");
    assert_eq!(pods, "", "nothing was created");
}

/// deploy/rbac.yaml grants create on exactly the workload kinds that
/// deploy/controller/deployment.yaml passes as `--trial-resources` (which are ktune's
/// defaults).
#[test]
fn deploy_grants_exactly_the_trial_resources_it_passes() {
    let read = |file: &str| -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(repo_root().join("deploy").join(file)).unwrap();
        serde_saphyr::from_multiple(&text).unwrap()
    };
    let deployment = read("controller/deployment.yaml").remove(0);
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .clone();
    let list = args
        .iter()
        .filter_map(|a| a.as_str()?.strip_prefix("--trial-resources="))
        .next()
        .expect("deployment.yaml passes --trial-resources");
    let defaults: Vec<String> = ktune::controller::kinds::default_trial_resources()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        list.split(',').collect::<Vec<_>>(),
        defaults,
        "deployment.yaml's --trial-resources differs from ktune's default"
    );
    let passed: BTreeSet<(String, String)> = list
        .split(',')
        .map(|r| {
            let r: ktune::controller::kinds::TrialResource = r.parse().unwrap();
            let ar = r.api_resource();
            (ar.group, ar.plural)
        })
        .collect();
    let role = read("rbac.yaml")
        .into_iter()
        .find(|o| o["kind"] == "ClusterRole")
        .unwrap();
    let granted: BTreeSet<(String, String)> = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["verbs"].as_array().unwrap().iter().any(|v| v == "create"))
        .flat_map(|r| {
            let groups = r["apiGroups"].as_array().unwrap().clone();
            let resources = r["resources"].as_array().unwrap().clone();
            groups.into_iter().flat_map(move |g| {
                resources.clone().into_iter().map(move |res| {
                    (
                        g.as_str().unwrap().to_owned(),
                        res.as_str().unwrap().to_owned(),
                    )
                })
            })
        })
        // What the controller creates besides workloads.
        .filter(|(g, r)| {
            g != "ktune.dev" && r != "events" && r != "secrets" && r != "persistentvolumeclaims"
        })
        .collect();
    assert_eq!(granted, passed);
}
