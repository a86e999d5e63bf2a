//! Where a kind's replicas live, and the list of replicas a workload
//! describes: in rank order, the lead (the replica the trial's output
//! comes from) first.

use std::fmt;

use serde_json::{Value, json};

use crate::TrialKind;

/// The most replicas one workload may have here: a workload asking for
/// more gets no replicas (ktune runs them all on one machine).
pub const MAX_REPLICAS: u64 = 256;

/// Where a kind's replicas and their pod templates live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replicas {
    /// A `batch/v1` Job: one pod template at `spec.template`, whose pods
    /// the Job controller runs (and retries) itself.
    Job,
    /// The Kubeflow operators' typed replica specs (`spec.pytorchReplicaSpecs`).
    Typed(Typed),
    /// JobSet's `spec.replicatedJobs`: each `replicas` Jobs of indexed pods.
    ReplicatedJobs,
    /// Kubeflow Trainer's `spec.trainer` (`numNodes`, one container), run
    /// as the JobSet its torch runtime makes: one replicated job `node` of
    /// `numNodes` indexed pods.
    Trainer,
    /// The steps of a workflow, made into pods as it runs: none known up front.
    Workflow(WorkflowEngine),
}

impl Replicas {
    /// Whether the workload holds its pods' templates, containers named
    /// as they will run (Argo, Tekton and Trainer name theirs at run time).
    #[must_use]
    pub fn templates_inline(&self) -> bool {
        matches!(self, Self::Job | Self::Typed(_) | Self::ReplicatedJobs)
    }
}

/// Which engine runs a workflow kind's steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkflowEngine {
    /// Argo Workflows: a pod per step.
    Argo,
    /// Tekton Pipelines: a pod per task, its steps as containers in order.
    Tekton,
}

/// A Kubeflow operator's replica specs: `spec.<field>.<Type>` each with
/// `replicas` (absent: 1) and a pod `template`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Typed {
    /// The map of replica specs under `spec` (`pytorchReplicaSpecs`).
    pub field: &'static str,
    /// The replica types in rank order, as the operator spells them
    /// (it accepts any letter case).
    pub types: &'static [&'static str],
    /// Which replicas lead (the operator's `IsMasterRole`).
    pub lead: Lead,
    /// A type the operator refuses a job without (`Master`, `Launcher`).
    pub required: Option<&'static str>,
    /// A type whose pods start nothing of their own: the lead starts the
    /// work on them (MPI workers run sshd for the launcher's `mpirun`).
    pub idle: Option<&'static str>,
    /// `training.kubeflow.org/operator-name`.
    pub operator: &'static str,
    /// How the operator names and labels the pods.
    pub labelling: Labelling,
    /// When the job has succeeded.
    pub success: Success,
}

/// The replicas an operator counts as the job's master role: every replica
/// of the first of `types` present (any index); failing that, Worker 0
/// when `else_worker_0`; failing that, none (then Worker 0 still ranks
/// first here, as the operators make it the rendezvous).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lead {
    /// `Master`; `Chief` or `Master` (TFJob); `Launcher`.
    pub types: &'static [&'static str],
    /// Whether Worker 0 leads without any of `types` (TFJob, JAXJob).
    pub else_worker_0: bool,
}

/// How an operator names and labels its pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Labelling {
    /// The training operator: `<job>-<type>-<index>`, the lead labelled
    /// `training.kubeflow.org/job-role: master`, and each pod with
    /// `role_label: <type>` when given (v1 MPIJob's `mpi-job-role`).
    TrainingOperator {
        /// An extra label naming the pod's replica type.
        role_label: Option<&'static str>,
    },
    /// mpi-operator: `<job>-launcher` and `<job>-worker-<index>`, each
    /// labelled `training.kubeflow.org/job-role: <type>`.
    MpiOperator,
}

/// When a job of replicas has succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Success {
    /// When a lead replica has; without a lead, when every replica has.
    Lead,
    /// When every replica (idle ones aside) has.
    Every,
}

/// A Job of a JobSet-shaped workload that a replica's pod belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobIndex {
    /// The Job's index within its replicated job.
    pub job: u64,
    /// The Job's index within the whole JobSet.
    pub global: u64,
    /// The pod's completion index within its (indexed) Job.
    pub completion: u64,
}

/// One replica of a workload: one pod on a cluster, one process here.
#[derive(Debug, Clone, PartialEq)]
pub struct Replica {
    /// Its replica type (`Master`, spelled as the kind's table spells it)
    /// or replicated job (`node`).
    pub role: String,
    /// Its index among the replicas of its role.
    pub index: u64,
    /// For JobSet-shaped kinds: which Job it is a pod of.
    pub job: Option<JobIndex>,
    /// Its pod template (`metadata`, `spec`).
    pub template: Value,
    /// Whether its operator counts it as the job's master role.
    pub lead: bool,
    /// Whether it starts nothing of its own (see [`Typed::idle`]).
    pub idle: bool,
}

impl Replica {
    /// Whether it is of this replica type.
    #[must_use]
    pub fn is(&self, role: &str) -> bool {
        self.role == role
    }
}

/// Why a workload has no replicas to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaError {
    /// The field holding the replicas is missing or holds none.
    NoReplicas(&'static str),
    /// A replica type the operator requires is missing.
    Required(&'static str),
    /// More than [`MAX_REPLICAS`] replicas.
    TooMany,
}

impl fmt::Display for ReplicaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoReplicas(field) => write!(f, "the workload has no replicas in spec.{field}"),
            Self::Required(rtype) => write!(f, "the workload has no {rtype} replica"),
            Self::TooMany => write!(f, "the workload has more than {MAX_REPLICAS} replicas"),
        }
    }
}

impl std::error::Error for ReplicaError {}

impl TrialKind {
    /// Whether a workload of replicas has succeeded, given which of its
    /// `replicas` have (`done`, in the same order): see [`Success`];
    /// JobSet-shaped kinds succeed when every pod has (JobSet's default
    /// success policy, `All`).
    #[must_use]
    pub fn succeeded(&self, replicas: &[Replica], done: &[bool]) -> bool {
        let rule = match &self.replicas {
            Replicas::Typed(typed) => typed.success,
            _ => Success::Every,
        };
        let working = || replicas.iter().zip(done).filter(|(r, _)| !r.idle);
        let has_lead = replicas.iter().any(|r| r.lead);
        match rule {
            Success::Lead if has_lead => working().any(|(r, d)| r.lead && *d),
            _ => working().count() > 0 && working().all(|(_, d)| *d),
        }
    }

    /// The replicas a workload of this kind describes, lead first, then
    /// in rank order. Kinds whose pods are not known up front
    /// ([`Replicas::Job`], [`Replicas::Workflow`]) have none.
    ///
    /// # Errors
    /// [`ReplicaError`] when there is nothing the kind's controller would run.
    pub fn replicas(&self, workload: &Value) -> Result<Vec<Replica>, ReplicaError> {
        let out = match &self.replicas {
            Replicas::Job | Replicas::Workflow(_) => return Ok(Vec::new()),
            Replicas::Typed(typed) => typed.replicas(workload)?,
            Replicas::ReplicatedJobs => {
                let jobs = workload.pointer("/spec/replicatedJobs");
                replicated_jobs(jobs.and_then(Value::as_array), "replicatedJobs")?
            }
            Replicas::Trainer => trainer(workload)?,
        };
        Ok(out)
    }
}

/// A replica count: absent (or not a count) is 1, as the operators
/// default it; 0 is 0.
fn count(value: Option<&Value>) -> u64 {
    value.and_then(Value::as_u64).unwrap_or(1)
}

/// Adds `n` to a running total, refusing more than [`MAX_REPLICAS`].
fn add(total: &mut u64, n: u64) -> Result<(), ReplicaError> {
    *total = total.saturating_add(n);
    if *total > MAX_REPLICAS {
        return Err(ReplicaError::TooMany);
    }
    Ok(())
}

impl Typed {
    /// A replica type's spec; the operators accept any letter case.
    fn spec<'a>(
        &self,
        specs: &'a serde_json::Map<String, Value>,
        rtype: &str,
    ) -> Option<&'a Value> {
        specs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(rtype))
            .map(|(_, v)| v)
    }

    /// The types present, lead first, and whether the lead is Worker 0
    /// alone (rather than every replica of a lead type).
    fn order(&self, specs: &serde_json::Map<String, Value>) -> (Vec<&'static str>, LeadIs) {
        let present: Vec<&'static str> = self
            .types
            .iter()
            .copied()
            .filter(|t| self.spec(specs, t).is_some())
            .collect();
        let lead_type = self
            .lead
            .types
            .iter()
            .copied()
            .find(|t| present.contains(t));
        let lead = match lead_type {
            Some(t) => LeadIs::Type(t),
            None if self.lead.else_worker_0 => LeadIs::Worker0,
            None => LeadIs::None,
        };
        let first = match lead {
            LeadIs::Type(t) => Some(t),
            LeadIs::Worker0 => Some("Worker"),
            LeadIs::None => None,
        };
        let first = first.filter(|t| present.contains(t));
        let order = first
            .into_iter()
            .chain(present.iter().copied().filter(|t| Some(*t) != first))
            .collect();
        (order, lead)
    }

    fn replicas(&self, workload: &Value) -> Result<Vec<Replica>, ReplicaError> {
        let specs = workload
            .pointer(&format!("/spec/{}", self.field))
            .and_then(Value::as_object)
            .ok_or(ReplicaError::NoReplicas(self.field))?;
        if let Some(required) = self.required
            && self.spec(specs, required).is_none()
        {
            return Err(ReplicaError::Required(required));
        }
        let (order, lead) = self.order(specs);
        let mut out = Vec::new();
        let mut total = 0;
        for rtype in order {
            let Some(spec) = self.spec(specs, rtype) else {
                continue;
            };
            let n = count(spec.get("replicas"));
            add(&mut total, n)?;
            let template = spec.get("template").cloned().unwrap_or_else(|| json!({}));
            out.extend((0..n).map(|index| Replica {
                role: rtype.to_owned(),
                index,
                job: None,
                template: template.clone(),
                lead: lead.includes(rtype, index),
                idle: self.idle == Some(rtype),
            }));
        }
        if out.is_empty() {
            return Err(ReplicaError::NoReplicas(self.field));
        }
        Ok(out)
    }
}

/// Which replicas of a typed workload lead.
#[derive(Debug, Clone, Copy)]
enum LeadIs {
    Type(&'static str),
    Worker0,
    None,
}

impl LeadIs {
    fn includes(self, rtype: &str, index: u64) -> bool {
        match self {
            Self::Type(t) => t == rtype,
            Self::Worker0 => rtype == "Worker" && index == 0,
            Self::None => false,
        }
    }
}

/// The pods of JobSet-shaped replicated jobs (`name`, `replicas` Jobs,
/// each a Job `template` of `completions` (else `parallelism`, else 1)
/// indexed pods), in order. Every pod succeeding is the JobSet's success,
/// so none leads.
fn replicated_jobs(
    jobs: Option<&Vec<Value>>,
    field: &'static str,
) -> Result<Vec<Replica>, ReplicaError> {
    let mut out = Vec::new();
    let (mut total, mut global) = (0, 0);
    for rjob in jobs.into_iter().flatten() {
        let role = rjob.get("name").and_then(Value::as_str).unwrap_or_default();
        let job_spec = rjob.pointer("/template/spec");
        let pods = job_spec
            .and_then(|s| s.get("completions").or_else(|| s.get("parallelism")))
            .map_or(1, |n| count(Some(n)));
        let template = job_spec
            .and_then(|s| s.get("template"))
            .cloned()
            .unwrap_or_else(|| json!({}));
        for job in 0..count(rjob.get("replicas")) {
            add(&mut total, pods)?;
            out.extend((0..pods).map(|completion| Replica {
                role: role.to_owned(),
                index: job.saturating_mul(pods).saturating_add(completion),
                job: Some(JobIndex {
                    job,
                    global,
                    completion,
                }),
                template: template.clone(),
                lead: false,
                idle: false,
            }));
            global += 1;
        }
    }
    if out.is_empty() {
        return Err(ReplicaError::NoReplicas(field));
    }
    Ok(out)
}

/// A TrainJob's `spec.trainer` as the one replicated job `node` its torch
/// runtime makes: `numNodes` (at least 1) pods of a container `node` with
/// the trainer's image, command, args, resources and env.
fn trainer(workload: &Value) -> Result<Vec<Replica>, ReplicaError> {
    let trainer = workload
        .pointer("/spec/trainer")
        .ok_or(ReplicaError::NoReplicas("trainer"))?;
    let mut container = json!({"name": "node"});
    for key in ["image", "command", "args", "resources", "env"] {
        if let Some(v) = trainer.get(key) {
            container[key] = v.clone();
        }
    }
    let nodes = count(trainer.get("numNodes")).max(1);
    let job = json!([{
        "name": "node",
        "replicas": 1,
        "template": {"spec": {
            "completions": nodes,
            "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
        }},
    }]);
    replicated_jobs(job.as_array(), "trainer")
}
