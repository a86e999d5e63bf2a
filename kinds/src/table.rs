//! The table: one entry per workload kind a trial may be, in the order
//! `ktune controller --trial-resources` lists them by default.
//!
//! To add a kind, add its entry here and a test beside the others in
//! `tests.rs`; then regenerate `deploy/rbac.yaml` (`ktune rbac`) and the
//! `--trial-resources` of `deploy/deployment.yaml`, as the sync tests say.

use crate::env::Environment;
use crate::replicas::{Labelling, Lead, Replicas, Success, Typed, WorkflowEngine};
use crate::{Conditions, MainContainer, TrialKind};

/// Katib's primary-pod label for the training operator's jobs.
const JOB_ROLE_MASTER: &[(&str, &str)] = &[("training.kubeflow.org/job-role", "master")];

/// The training operator's jobs (`kubeflow.org/v1`).
const fn training_operator(
    kind: &'static str,
    plural: &'static str,
    default_container: &'static str,
    typed: Typed,
    environment: Environment,
) -> TrialKind {
    TrialKind {
        group: "kubeflow.org",
        version: "v1",
        kind,
        plural,
        served_by: Some("the Kubeflow training operator"),
        conditions: Some(Conditions {
            success: "Succeeded",
            failure: "Failed",
        }),
        primary_pod_labels: JOB_ROLE_MASTER,
        owner_label: Some("training.kubeflow.org/job-name"),
        replicas: Replicas::Typed(typed),
        container: MainContainer {
            default: Some(default_container),
            else_first: false,
        },
        environment,
    }
}

/// A training-operator replica map whose lead is its `Master` (if any).
const fn master_led(
    field: &'static str,
    types: &'static [&'static str],
    operator: &'static str,
) -> Typed {
    Typed {
        field,
        types,
        lead: Lead {
            types: &["Master"],
            else_worker_0: false,
        },
        required: None,
        idle: None,
        operator,
        labelling: Labelling::TrainingOperator { role_label: None },
        success: Success::Lead,
    }
}

/// An MPIJob: its launcher leads and decides, its workers idle for
/// `mpirun`; the launcher's container is `mpi`, else its first.
const fn mpi_job(labelling: Labelling, operator: &'static str) -> TrialKind {
    let typed = Typed {
        field: "mpiReplicaSpecs",
        types: &["Launcher", "Worker"],
        lead: Lead {
            types: &["Launcher"],
            else_worker_0: false,
        },
        required: Some("Launcher"),
        idle: Some("Worker"),
        operator,
        labelling,
        success: Success::Lead,
    };
    TrialKind {
        container: MainContainer {
            default: Some("mpi"),
            else_first: true,
        },
        ..training_operator("MPIJob", "mpijobs", "mpi", typed, Environment::Mpi)
    }
}

/// A workflow engine's kind: no defaults (Katib has none), pods per step.
const fn workflow(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    served_by: &'static str,
    owner_label: &'static str,
    engine: WorkflowEngine,
) -> TrialKind {
    TrialKind {
        group,
        version,
        kind,
        plural,
        served_by: Some(served_by),
        conditions: None,
        primary_pod_labels: &[],
        owner_label: Some(owner_label),
        replicas: Replicas::Workflow(engine),
        container: MainContainer::PRIMARY,
        environment: Environment::None,
    }
}

/// Tekton's PipelineRun at one of the versions it serves.
const fn tekton(version: &'static str) -> TrialKind {
    workflow(
        "tekton.dev",
        version,
        "PipelineRun",
        "pipelineruns",
        "Tekton Pipelines",
        "tekton.dev/pipelineRun",
        WorkflowEngine::Tekton,
    )
}

/// Every kind ktune runs as a trial.
pub static KINDS: &[TrialKind] = &[
    TrialKind {
        group: "batch",
        version: "v1",
        kind: "Job",
        plural: "jobs",
        served_by: None,
        conditions: Some(Conditions {
            success: "Complete",
            failure: "Failed",
        }),
        primary_pod_labels: &[],
        owner_label: Some("job-name"),
        replicas: Replicas::Job,
        container: MainContainer::PRIMARY,
        environment: Environment::None,
    },
    training_operator(
        "PyTorchJob",
        "pytorchjobs",
        "pytorch",
        master_led(
            "pytorchReplicaSpecs",
            &["Master", "Worker"],
            "pytorchjob-controller",
        ),
        Environment::Torch,
    ),
    training_operator(
        "TFJob",
        "tfjobs",
        "tensorflow",
        Typed {
            lead: Lead {
                types: &["Chief", "Master"],
                else_worker_0: true,
            },
            ..master_led(
                "tfReplicaSpecs",
                &["Chief", "Master", "PS", "Worker", "Evaluator"],
                "tfjob-controller",
            )
        },
        Environment::TfConfig,
    ),
    training_operator(
        "XGBoostJob",
        "xgboostjobs",
        "xgboost",
        Typed {
            required: Some("Master"),
            ..master_led(
                "xgbReplicaSpecs",
                &["Master", "Worker"],
                "xgboostjob-controller",
            )
        },
        Environment::XGBoost,
    ),
    training_operator(
        "PaddleJob",
        "paddlejobs",
        "paddle",
        master_led(
            "paddleReplicaSpecs",
            &["Master", "Worker"],
            "paddlejob-controller",
        ),
        Environment::Paddle,
    ),
    training_operator(
        "JAXJob",
        "jaxjobs",
        "jax",
        Typed {
            lead: Lead {
                types: &[],
                else_worker_0: true,
            },
            success: Success::Every,
            ..master_led("jaxReplicaSpecs", &["Worker"], "jaxjob-controller")
        },
        Environment::Jax,
    ),
    mpi_job(
        Labelling::TrainingOperator {
            role_label: Some("mpi-job-role"),
        },
        "mpijob-controller",
    ),
    // mpi-operator labels the launcher `job-role: launcher`, not `master`
    // (a documented ktune extension of Katib's defaults).
    TrialKind {
        version: "v2beta1",
        served_by: Some("the MPI operator (github.com/kubeflow/mpi-operator)"),
        primary_pod_labels: &[("training.kubeflow.org/job-role", "launcher")],
        ..mpi_job(Labelling::MpiOperator, "mpi-operator")
    },
    TrialKind {
        group: "trainer.kubeflow.org",
        version: "v1alpha1",
        kind: "TrainJob",
        plural: "trainjobs",
        served_by: Some("Kubeflow Trainer"),
        conditions: Some(Conditions {
            success: "Complete",
            failure: "Failed",
        }),
        primary_pod_labels: &[
            ("jobset.sigs.k8s.io/replicatedjob-name", "node"),
            ("batch.kubernetes.io/job-completion-index", "0"),
        ],
        owner_label: Some("jobset.sigs.k8s.io/jobset-name"),
        replicas: Replicas::Trainer,
        container: MainContainer {
            default: Some("node"),
            else_first: false,
        },
        environment: Environment::TrainerTorch,
    },
    workflow(
        "argoproj.io",
        "v1alpha1",
        "Workflow",
        "workflows",
        "Argo Workflows",
        "workflows.argoproj.io/workflow",
        WorkflowEngine::Argo,
    ),
    tekton("v1"),
    tekton("v1beta1"),
    // JobSet's Jobs are indexed (its webhook defaults completionMode), so
    // each pod gets its JOB_COMPLETION_INDEX; the first pod of the first
    // Job leads.
    TrialKind {
        group: "jobset.x-k8s.io",
        version: "v1alpha2",
        kind: "JobSet",
        plural: "jobsets",
        served_by: Some("JobSet (github.com/kubernetes-sigs/jobset)"),
        conditions: Some(Conditions {
            success: "Completed",
            failure: "Failed",
        }),
        primary_pod_labels: &[
            ("jobset.sigs.k8s.io/job-global-index", "0"),
            ("batch.kubernetes.io/job-completion-index", "0"),
        ],
        owner_label: Some("jobset.sigs.k8s.io/jobset-name"),
        replicas: Replicas::ReplicatedJobs,
        container: MainContainer {
            default: None,
            else_first: true,
        },
        environment: Environment::IndexedJob,
    },
];
