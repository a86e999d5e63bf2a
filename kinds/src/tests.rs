//! The table's own tests: every entry is consistent (its default
//! primary-pod labels select exactly the replica that leads, its pods carry
//! its owner label), and the replica and environment rules hold.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::*;

fn template() -> Value {
    json!({"spec": {"containers": [{"name": "c", "command": ["true"]}]}})
}

fn sample(kind: &TrialKind) -> Option<Value> {
    kind.example("w", &json!({"name": "c", "command": ["true"]}))
}

#[test]
fn each_kind_appears_once_with_a_plural_of_its_kind() {
    let mut seen = BTreeSet::new();
    for kind in KINDS {
        assert!(seen.insert(kind.trial_resource()), "{} twice", kind.kind);
        assert_eq!(kind.plural, format!("{}s", kind.kind.to_lowercase()));
        assert_eq!(find(kind.group, kind.version, kind.kind), Some(kind));
        assert!(kind.owner_label.is_some(), "{}", kind.kind);
        // The fake cluster writes these when it runs the replicas.
        let listed = !matches!(kind.replicas, Replicas::Job | Replicas::Workflow(_));
        assert!(!listed || kind.conditions.is_some(), "{}", kind.kind);
    }
}

#[test]
fn default_primary_pod_labels_select_exactly_the_leading_replica() {
    for kind in KINDS {
        let Some(workload) = sample(kind) else {
            continue;
        };
        let replicas = kind.replicas(&workload).unwrap();
        let pods: Vec<PodIdentity> = replicas.iter().map(|r| kind.pod("w", r)).collect();
        let names: BTreeSet<&str> = pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names.len(), pods.len(), "{}: pod names repeat", kind.kind);
        let owner = kind.owner_label.unwrap();
        for pod in &pods {
            assert!(
                pod.labels.contains(&(owner.to_owned(), "w".to_owned())),
                "{}: {pod:?}",
                kind.kind
            );
        }
        if kind.primary_pod_labels.is_empty() {
            continue;
        }
        let selected: Vec<&str> = pods
            .iter()
            .filter(|p| {
                kind.primary_pod_labels
                    .iter()
                    .all(|(k, v)| p.labels.contains(&((*k).to_owned(), (*v).to_owned())))
            })
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(selected, [pods[0].name.as_str()], "{}", kind.kind);
    }
}

#[test]
fn katibs_conditions_and_lookups() {
    let torch = lookup("kubeflow.org/v1", "PyTorchJob").unwrap();
    assert_eq!(
        torch.conditions.unwrap().success_condition(),
        r#"status.conditions.#(type=="Succeeded")#|#(status=="True")#"#
    );
    assert_eq!(
        torch.conditions.unwrap().failure_condition(),
        r#"status.conditions.#(type=="Failed")#|#(status=="True")#"#
    );
    // Katib compares only the kind; the version picks among MPIJobs.
    assert_eq!(lookup("", "PyTorchJob"), Some(torch));
    assert_eq!(
        lookup("kubeflow.org/v2beta1", "MPIJob").unwrap().version,
        "v2beta1"
    );
    assert_eq!(lookup("kubeflow.org/v9", "MPIJob").unwrap().version, "v1");
    assert_eq!(lookup("argoproj.io/v1alpha1", "Widget"), None);
    assert_eq!(find("kubeflow.org", "v2", "PyTorchJob"), None);
    assert_eq!(torch.trial_resource(), "PyTorchJob.v1.kubeflow.org");
    assert_eq!(torch.api_version(), "kubeflow.org/v1");
    assert_eq!(
        install_hint("kubeflow.org", "v1", "Nope"),
        "install the Kubeflow training operator"
    );
    assert!(install_hint("kubeflow.org", "v2beta1", "MPIJob").contains("MPI operator"));
    assert!(install_hint("batch", "v1", "Job").contains("CustomResourceDefinition"));
}

#[test]
fn rbac_grants_each_group_once_in_table_order() {
    let grants = rbac_grants();
    let groups: Vec<&str> = grants.iter().map(|(g, _)| *g).collect();
    assert_eq!(
        groups,
        [
            "batch",
            "kubeflow.org",
            "trainer.kubeflow.org",
            "argoproj.io",
            "tekton.dev",
            "jobset.x-k8s.io"
        ]
    );
    assert_eq!(
        grants[1].1,
        [
            "pytorchjobs",
            "tfjobs",
            "xgboostjobs",
            "paddlejobs",
            "jaxjobs",
            "mpijobs"
        ]
    );
    assert_eq!(grants[4].1, ["pipelineruns"]);
}

fn replicas_of(kind: &str, specs: Value) -> Result<Vec<Replica>, ReplicaError> {
    let kind = lookup("kubeflow.org/v1", kind).unwrap();
    let Replicas::Typed(typed) = kind.replicas else {
        unreachable!()
    };
    kind.replicas(&json!({"spec": {typed.field: specs}}))
}

fn spec(n: u64) -> Value {
    json!({"replicas": n, "template": template()})
}

fn roles(replicas: &[Replica]) -> Vec<(String, u64, bool)> {
    replicas
        .iter()
        .map(|r| (r.role.clone(), r.index, r.lead))
        .collect()
}

#[test]
fn typed_replicas_come_lead_first_in_rank_order() {
    let torch = replicas_of("PyTorchJob", json!({"worker": spec(2), "Master": spec(1)})).unwrap();
    assert_eq!(
        roles(&torch),
        [
            ("Master".into(), 0, true),
            ("Worker".into(), 0, false),
            ("Worker".into(), 1, false)
        ]
    );
    // Without Chief or Master, Worker 0 leads a TFJob and comes first.
    let tf = replicas_of("TFJob", json!({"PS": spec(1), "Worker": spec(2)})).unwrap();
    assert_eq!(
        roles(&tf),
        [
            ("Worker".into(), 0, true),
            ("Worker".into(), 1, false),
            ("PS".into(), 0, false)
        ]
    );
    // A type with 0 replicas has none; a missing count is 1.
    let paddle = replicas_of("PaddleJob", json!({"Master": spec(0), "Worker": {}})).unwrap();
    assert_eq!(roles(&paddle), [("Worker".into(), 0, false)]);
    assert_eq!(
        replicas_of("XGBoostJob", json!({"Worker": spec(1)})),
        Err(ReplicaError::Required("Master"))
    );
    assert_eq!(
        replicas_of("JAXJob", json!({"Worker": spec(MAX_REPLICAS + 1)})),
        Err(ReplicaError::TooMany)
    );
    assert!(replicas_of("JAXJob", json!({"Worker": spec(0)})).is_err());
    let mpi = replicas_of("MPIJob", json!({"Worker": spec(2), "Launcher": spec(1)})).unwrap();
    let idle: Vec<bool> = mpi.iter().map(|r| r.idle).collect();
    assert_eq!(idle, [false, true, true]);
}

#[test]
fn success_follows_the_lead_else_every_replica() {
    let torch = lookup("", "PyTorchJob").unwrap();
    let all = replicas_of("PyTorchJob", json!({"Worker": spec(2), "Master": spec(1)})).unwrap();
    assert!(torch.succeeded(&all, &[true, false, false]));
    assert!(!torch.succeeded(&all, &[false, true, true]));
    let workers = replicas_of("PyTorchJob", json!({"worker": spec(2)})).unwrap();
    assert!(!torch.succeeded(&workers, &[true, false]));
    assert!(torch.succeeded(&workers, &[true, true]));
    // A JAXJob needs every worker, though Worker 0 leads.
    let jax = lookup("", "JAXJob").unwrap();
    let jax_workers = replicas_of("JAXJob", json!({"Worker": spec(2)})).unwrap();
    assert!(!jax.succeeded(&jax_workers, &[true, false]));
    // Idle MPI workers never end; the launcher decides.
    let mpi = lookup("", "MPIJob").unwrap();
    let launched = replicas_of("MPIJob", json!({"Launcher": spec(1), "Worker": spec(2)})).unwrap();
    assert!(mpi.succeeded(&launched, &[true, false, false]));
}

#[test]
fn jobset_shaped_replicas_are_indexed_pods_of_jobs() {
    let trainjob = lookup("trainer.kubeflow.org/v1alpha1", "TrainJob").unwrap();
    let nodes = trainjob
        .replicas(&json!({"spec": {"trainer": {"numNodes": 2, "command": ["t"], "env": [{"name": "A", "value": "1"}]}}}))
        .unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(trainjob.replica_name(&nodes[1]), "node-0-1");
    let container = &nodes[1].template["spec"]["containers"][0];
    assert_eq!(container["name"], "node");
    assert_eq!(container["env"][0]["name"], "A");
    let pod = trainjob.pod("tj", &nodes[1]);
    assert_eq!(pod.name, "tj-node-0-1");
    assert!(pod.annotations.contains(&(
        "batch.kubernetes.io/job-completion-index".into(),
        "1".into()
    )));
    assert!(trainjob.succeeded(&nodes, &[true, true]));
    assert!(!trainjob.succeeded(&nodes, &[true, false]));
    assert_eq!(
        trainjob.replicas(&json!({"spec": {}})),
        Err(ReplicaError::NoReplicas("trainer"))
    );
}

fn value_of<'a>(env: &'a [EnvVar], name: &str) -> Option<&'a str> {
    env.iter()
        .find(|v| v.name == name)
        .map(|v| v.value.as_str())
}

#[test]
fn torch_world_size_counts_processes_and_trainer_ranks_come_from_the_index() {
    let torch = lookup("", "PyTorchJob").unwrap();
    let workload = json!({"spec": {"nprocPerNode": "4", "pytorchReplicaSpecs": {"Master": spec(1), "Worker": spec(1)}}});
    let replicas = torch.replicas(&workload).unwrap();
    assert_eq!(torch.environment.ports(&replicas), 1);
    let env = torch.environment.variables(&workload, &replicas, &[4242]);
    assert_eq!(value_of(&env[1], "WORLD_SIZE"), Some("8"));
    assert_eq!(value_of(&env[1], "PET_NNODES"), Some("2"));
    assert_eq!(value_of(&env[1], "RANK"), Some("1"));
    assert_eq!(value_of(&env[1], "PET_NPROC_PER_NODE"), Some("4"));
    assert_eq!(value_of(&env[0], "MASTER_PORT"), Some("4242"));

    let trainjob = lookup("", "TrainJob").unwrap();
    let workload = json!({"spec": {"trainer": {"numNodes": 2, "command": ["t"]}}});
    let nodes = trainjob.replicas(&workload).unwrap();
    let env = trainjob.environment.variables(&workload, &nodes, &[7]);
    let rank = env[1].iter().find(|v| v.name == "PET_NODE_RANK").unwrap();
    assert_eq!(rank.value, "1");
    assert_eq!(
        rank.field_path.as_deref(),
        Some("metadata.annotations['batch.kubernetes.io/job-completion-index']")
    );
    assert_eq!(value_of(&env[0], "PET_NPROC_PER_NODE"), Some("auto"));
    assert_eq!(value_of(&env[0], "PET_MASTER_PORT"), Some("7"));
}

#[test]
fn tf_config_needs_a_port_per_member_and_only_tensorflow_gets_it() {
    let tf = lookup("", "TFJob").unwrap();
    let workload = json!({"spec": {"tfReplicaSpecs": {"Chief": spec(1), "Worker": spec(2), "Evaluator": spec(1)}}});
    let replicas = tf.replicas(&workload).unwrap();
    assert_eq!(tf.environment.ports(&replicas), 3);
    assert_eq!(tf.environment.container(), Some("tensorflow"));
    let env = tf.environment.variables(&workload, &replicas, &[1, 2, 3]);
    let config: Value = serde_json::from_str(value_of(&env[3], "TF_CONFIG").unwrap()).unwrap();
    assert_eq!(config["task"], json!({"type": "evaluator", "index": 0}));
    assert_eq!(
        config["cluster"],
        json!({"chief": ["127.0.0.1:1"], "worker": ["127.0.0.1:2", "127.0.0.1:3"]})
    );
    // Missing ports read as 0 rather than failing.
    let short = tf.environment.variables(&workload, &replicas, &[]);
    assert_eq!(short.len(), replicas.len());
}

#[test]
fn a_jobset_runs_its_replicated_jobs_pods_indexed_the_first_leading() {
    let jobset = lookup("jobset.x-k8s.io/v1alpha2", "JobSet").unwrap();
    assert_eq!(
        jobset.conditions.unwrap().success_condition(),
        r#"status.conditions.#(type=="Completed")#|#(status=="True")#"#
    );
    let workload = sample(jobset).unwrap();
    let replicas = jobset.replicas(&workload).unwrap();
    let names: Vec<String> = replicas.iter().map(|r| jobset.replica_name(r)).collect();
    assert_eq!(
        names,
        [
            "driver-0-0",
            "workers-0-0",
            "workers-0-1",
            "workers-1-0",
            "workers-1-1"
        ]
    );
    let last = jobset.pod("js", &replicas[4]);
    assert_eq!(last.name, "js-workers-1-1");
    for (key, value) in [
        ("jobset.sigs.k8s.io/jobset-name", "js"),
        ("jobset.sigs.k8s.io/replicatedjob-name", "workers"),
        ("jobset.sigs.k8s.io/job-index", "1"),
        ("jobset.sigs.k8s.io/job-global-index", "2"),
        ("batch.kubernetes.io/job-completion-index", "1"),
    ] {
        assert!(
            last.labels.contains(&(key.to_owned(), value.to_owned())),
            "{key}: {last:?}"
        );
    }
    assert_eq!(jobset.environment.ports(&replicas), 0);
    let env = jobset.environment.variables(&workload, &replicas, &[]);
    assert_eq!(value_of(&env[4], "JOB_COMPLETION_INDEX"), Some("1"));
    // The JobSet succeeds when every pod has (its default success policy).
    assert!(!jobset.succeeded(&replicas, &[true, true, true, true, false]));
    assert!(jobset.succeeded(&replicas, &[true; 5]));
    assert_eq!(
        jobset.replicas(&serde_json::json!({"spec": {"replicatedJobs": []}})),
        Err(ReplicaError::NoReplicas("replicatedJobs"))
    );
}
