//! The Kubeflow training operator's jobs (`kubeflow.org/v1` `PyTorchJob`,
//! `TFJob`, `XGBoostJob`, `PaddleJob`, `JAXJob`, `MPIJob`) and
//! mpi-operator's `MPIJob` (`kubeflow.org/v2beta1`): one pod per replica,
//! labelled as the operators label them, with their distributed
//! environment pointing at 127.0.0.1 and free ports (the same rules ktune's
//! local runner follows in `src/runner/replicas.rs`), and the job's
//! conditions `Created` → `Running` → `Succeeded` or `Failed`.
//!
//! | kind | primary (`job-role`) | succeeds when | environment |
//! |---|---|---|---|
//! | PyTorchJob | Master | Master succeeds (no Master: every Worker) | `MASTER_ADDR`, `MASTER_PORT`, `WORLD_SIZE`, `RANK`, `PET_*` |
//! | TFJob | Chief or Master, else Worker 0 | the primary succeeds | `TF_CONFIG` on `tensorflow` containers |
//! | XGBoostJob | Master | Master succeeds | `MASTER_*`, `WORLD_SIZE`, `RANK`, `WORKER_PORT`, `WORKER_ADDRS` |
//! | PaddleJob | Master | Master succeeds (no Master: every Worker) | `PADDLE_*` |
//! | JAXJob | Worker 0 | every Worker | `COORDINATOR_*`, `NUM_PROCESSES`, `PROCESS_ID` |
//! | MPIJob | Launcher | Launcher succeeds | `K_MPI_JOB_ROLE`; Workers without a command idle (sshd) |
//!
//! Any replica failing fails the job (no restarts: `restartPolicy` and
//! `backoffLimit` are not simulated). `runPolicy.cleanPodPolicy` (and v1
//! MPIJob's `spec.cleanPodPolicy`) `Running` or `All` deletes the pods
//! still running when the job ends; the default, `None`, keeps them.

use super::{Ctx, Group, Owner, env, free_port, free_ports, inject_env, now};
use crate::pod::{IDLE, PodEnd, str_at};
use crate::resource::ResourceType;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One kind of training job, as its operator runs it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Flavor {
    kind: &'static str,
    /// The replica map under `spec`.
    field: &'static str,
    /// Replica types in rank order.
    order: &'static [&'static str],
    /// `training.kubeflow.org/operator-name`.
    operator: &'static str,
    /// mpi-operator (`v2beta1`) labels job-role launcher/worker.
    mpi_v2: bool,
}

const PYTORCH: Flavor = Flavor {
    kind: "PyTorchJob",
    field: "pytorchReplicaSpecs",
    order: &["Master", "Worker"],
    operator: "pytorchjob-controller",
    mpi_v2: false,
};
const TF: Flavor = Flavor {
    kind: "TFJob",
    field: "tfReplicaSpecs",
    order: &["Chief", "Master", "PS", "Worker", "Evaluator"],
    operator: "tfjob-controller",
    mpi_v2: false,
};
const XGBOOST: Flavor = Flavor {
    kind: "XGBoostJob",
    field: "xgbReplicaSpecs",
    order: &["Master", "Worker"],
    operator: "xgboostjob-controller",
    mpi_v2: false,
};
const PADDLE: Flavor = Flavor {
    kind: "PaddleJob",
    field: "paddleReplicaSpecs",
    order: &["Master", "Worker"],
    operator: "paddlejob-controller",
    mpi_v2: false,
};
const JAX: Flavor = Flavor {
    kind: "JAXJob",
    field: "jaxReplicaSpecs",
    order: &["Worker"],
    operator: "jaxjob-controller",
    mpi_v2: false,
};
const MPI_V1: Flavor = Flavor {
    kind: "MPIJob",
    field: "mpiReplicaSpecs",
    order: &["Launcher", "Worker"],
    operator: "mpijob-controller",
    mpi_v2: false,
};
const MPI_V2: Flavor = Flavor {
    kind: "MPIJob",
    field: "mpiReplicaSpecs",
    order: &["Launcher", "Worker"],
    operator: "mpi-operator",
    mpi_v2: true,
};

const JOB_NAME: &str = "training.kubeflow.org/job-name";
const REPLICA_TYPE: &str = "training.kubeflow.org/replica-type";
const REPLICA_INDEX: &str = "training.kubeflow.org/replica-index";
const JOB_ROLE: &str = "training.kubeflow.org/job-role";
const OPERATOR: &str = "training.kubeflow.org/operator-name";

impl Flavor {
    /// The flavour of a `kubeflow.org` kind at an apiVersion.
    pub(crate) fn of(kind: &str, api_version: &str) -> Option<&'static Self> {
        Some(match kind {
            "PyTorchJob" => &PYTORCH,
            "TFJob" => &TF,
            "XGBoostJob" => &XGBOOST,
            "PaddleJob" => &PADDLE,
            "JAXJob" => &JAX,
            "MPIJob" if api_version == "kubeflow.org/v2beta1" => &MPI_V2,
            "MPIJob" => &MPI_V1,
            _ => return None,
        })
    }
}

/// One replica: its type as the operator spells it, index and pod template.
#[derive(Debug, Clone)]
struct Replica {
    rtype: &'static str,
    index: u64,
    template: Value,
}

impl Replica {
    fn is(&self, rtype: &str) -> bool {
        self.rtype == rtype
    }
}

/// The replicas of a job in rank order; the operators accept any letter
/// case of a replica type (`worker`, `Worker`).
fn replicas(flavor: &Flavor, job: &Value) -> Vec<Replica> {
    let Some(specs) = job
        .pointer(&format!("/spec/{}", flavor.field))
        .and_then(Value::as_object)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for rtype in flavor.order {
        let Some((_, spec)) = specs.iter().find(|(k, _)| k.eq_ignore_ascii_case(rtype)) else {
            continue;
        };
        let count = spec.get("replicas").and_then(Value::as_u64).unwrap_or(1);
        for index in 0..count.min(256) {
            out.push(Replica {
                rtype,
                index,
                template: spec.get("template").cloned().unwrap_or_else(|| json!({})),
            });
        }
    }
    out
}

/// Whether the operator labels this replica `job-role: master`
/// (`IsMasterRole`).
fn is_master(flavor: &Flavor, all: &[Replica], r: &Replica) -> bool {
    let has = |t: &str| all.iter().any(|x| x.is(t));
    match flavor.kind {
        "TFJob" if has("Chief") || has("Master") => r.is("Chief") || r.is("Master"),
        "TFJob" | "JAXJob" => r.is("Worker") && r.index == 0,
        "MPIJob" => r.is("Launcher"),
        _ => r.is("Master"),
    }
}

/// Whether the job has succeeded, given which replicas have.
fn succeeded(flavor: &Flavor, all: &[Replica], done: &[bool]) -> bool {
    let has = |t: &str| all.iter().any(|x| x.is(t));
    let all_of = |t: &str| {
        all.iter()
            .zip(done)
            .filter(|(r, _)| r.is(t))
            .all(|(_, d)| *d)
    };
    match flavor.kind {
        "PyTorchJob" | "PaddleJob" if !has("Master") => has("Worker") && all_of("Worker"),
        "JAXJob" => has("Worker") && all_of("Worker"),
        _ => all
            .iter()
            .zip(done)
            .any(|(r, d)| *d && is_master(flavor, all, r)),
    }
}

/// The operator's environment for each replica, in `replicas` order.
fn environments(flavor: &Flavor, job: &Value, all: &[Replica]) -> Vec<Vec<Value>> {
    let port = free_port();
    let world = all.len();
    let count = |t: &str| all.iter().filter(|r| r.is(t)).count();
    match flavor.kind {
        "PyTorchJob" => {
            let nproc = job.pointer("/spec/nprocPerNode");
            let per_node = nproc
                .and_then(|n| {
                    n.as_u64()
                        .or_else(|| n.as_str().and_then(|s| s.parse().ok()))
                })
                .unwrap_or(1);
            let world_size = u64::try_from(world).unwrap_or(0).saturating_mul(per_node);
            (0..world)
                .map(|rank| {
                    let mut vars = vec![
                        env("PYTHONUNBUFFERED", 1),
                        env("MASTER_ADDR", "127.0.0.1"),
                        env("MASTER_PORT", port),
                        env("PET_MASTER_ADDR", "127.0.0.1"),
                        env("PET_MASTER_PORT", port),
                        env("WORLD_SIZE", world_size),
                        env("RANK", rank),
                        env("PET_NNODES", world),
                        env("PET_NODE_RANK", rank),
                    ];
                    if let Some(n) = nproc {
                        let text = n.as_str().map_or_else(|| n.to_string(), str::to_owned);
                        vars.push(env("PET_NPROC_PER_NODE", text));
                    }
                    vars
                })
                .collect()
        }
        "TFJob" => tf_configs(all),
        "XGBoostJob" => {
            let masters = count("Master");
            let worker_port = free_port();
            let addrs = vec!["127.0.0.1"; world.saturating_sub(1)].join(",");
            all.iter()
                .map(|r| {
                    let offset = if r.is("Worker") { masters } else { 0 };
                    let rank = usize::try_from(r.index).unwrap_or(0) + offset;
                    let mut vars = vec![
                        env("MASTER_PORT", port),
                        env("MASTER_ADDR", "127.0.0.1"),
                        env("WORLD_SIZE", world),
                        env("RANK", rank),
                        env("PYTHONUNBUFFERED", 0),
                    ];
                    if world > 1 {
                        vars.push(env("WORKER_PORT", worker_port));
                        vars.push(env("WORKER_ADDRS", &addrs));
                    }
                    vars
                })
                .collect()
        }
        "PaddleJob" => {
            let ps_mode = count("Master") > 0;
            let rendezvous = if ps_mode { "Master" } else { "Worker" };
            let name = str_at(job, "/metadata/name");
            all.iter()
                .map(|r| {
                    let mut vars = vec![
                        env("PYTHONUNBUFFERED", 0),
                        env("PADDLE_JOB_ID", name),
                        env("PADDLE_NNODES", world),
                    ];
                    if r.index == 0 && r.is(rendezvous) {
                        vars.push(env("POD_IP_DUMMY", "127.0.0.1"));
                    }
                    vars.push(env("PADDLE_MASTER", format!("127.0.0.1:{port}")));
                    if ps_mode {
                        let num = if r.is("Master") {
                            "PADDLE_SERVER_NUM"
                        } else {
                            "PADDLE_TRAINER_NUM"
                        };
                        vars.push(env(num, 1));
                    }
                    vars
                })
                .collect()
        }
        "JAXJob" => all
            .iter()
            .map(|r| {
                vec![
                    env("PYTHONUNBUFFERED", 1),
                    env("COORDINATOR_PORT", port),
                    env("COORDINATOR_ADDRESS", "127.0.0.1"),
                    env("NUM_PROCESSES", world),
                    env("PROCESS_ID", r.index),
                ]
            })
            .collect(),
        // MPIJob: the launcher's mpirun starts the ranks here (no hostfile:
        // every rank on this machine, oversubscription allowed).
        _ => all
            .iter()
            .map(|r| {
                if r.is("Launcher") {
                    vec![
                        env("K_MPI_JOB_ROLE", "launcher"),
                        env("OMPI_MCA_rmaps_base_oversubscribe", 1),
                        env("PRTE_MCA_rmaps_default_mapping_policy", ":oversubscribe"),
                    ]
                } else {
                    vec![env("K_MPI_JOB_ROLE", "worker")]
                }
            })
            .collect(),
    }
}

/// `TF_CONFIG` for each replica: every cluster member (Evaluators aside)
/// at its own port, cluster keys sorted, `"environment": "cloud"`; set
/// only with more than one replica (as the operator does).
fn tf_configs(all: &[Replica]) -> Vec<Vec<Value>> {
    if all.len() < 2 {
        return vec![Vec::new(); all.len()];
    }
    let members: Vec<&Replica> = all.iter().filter(|r| !r.is("Evaluator")).collect();
    let mut ports = free_ports(members.len()).into_iter();
    let mut cluster: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &members {
        let port = ports.next().unwrap_or_else(free_port);
        cluster
            .entry(r.rtype.to_lowercase())
            .or_default()
            .push(format!("127.0.0.1:{port}"));
    }
    all.iter()
        .map(|r| {
            let config = json!({
                "cluster": cluster,
                "task": {"type": r.rtype.to_lowercase(), "index": r.index},
                "environment": "cloud",
            });
            vec![env("TF_CONFIG", config)]
        })
        .collect()
}

/// The pod of one replica, labelled and named as the operator does.
fn pod(flavor: &Flavor, owner: &Owner, all: &[Replica], r: &Replica, vars: &[Value]) -> Value {
    let rtype = r.rtype.to_lowercase();
    let mut labels = vec![
        (OPERATOR, flavor.operator.to_owned()),
        (JOB_NAME, owner.name.clone()),
        (REPLICA_TYPE, rtype.clone()),
        (REPLICA_INDEX, r.index.to_string()),
    ];
    let name = if flavor.mpi_v2 {
        labels.push((JOB_ROLE, rtype.clone()));
        if r.is("Launcher") {
            format!("{}-launcher", owner.name)
        } else {
            format!("{}-worker-{}", owner.name, r.index)
        }
    } else {
        if is_master(flavor, all, r) {
            labels.push((JOB_ROLE, "master".to_owned()));
        }
        if flavor.kind == "MPIJob" {
            // Katib's MPIJob examples select the launcher by this label.
            labels.push(("mpi-job-role", rtype.clone()));
        }
        format!("{}-{rtype}-{}", owner.name, r.index)
    };
    let annotations = if flavor.kind == "MPIJob" && r.is("Worker") {
        vec![(IDLE, "true".to_owned())]
    } else {
        Vec::new()
    };
    let mut pod = owner.pod(&name, &r.template, &labels, &annotations);
    // TF_CONFIG goes to `tensorflow` containers only.
    let only = (flavor.kind == "TFJob").then_some("tensorflow");
    inject_env(&mut pod, vars, only);
    pod
}

fn condition(kind: &str, ty: &str, status: bool, phase: &str, ns: &str, name: &str) -> Value {
    let t = now();
    json!({
        "type": ty,
        "status": if status { "True" } else { "False" },
        "reason": format!("{kind}{phase}"),
        "message": format!("{kind} {ns}/{name} is {}.", phase.to_lowercase()),
        "lastUpdateTime": t,
        "lastTransitionTime": t,
    })
}

/// `replicaStatuses`: active/succeeded/failed per replica type.
fn replica_statuses(all: &[Replica], ends: &[Option<PodEnd>]) -> Value {
    let mut out = serde_json::Map::new();
    for (r, end) in all.iter().zip(ends) {
        let entry = out.entry(r.rtype.to_owned()).or_insert_with(|| json!({}));
        let key = match end {
            None => "active",
            Some(PodEnd::Succeeded) => "succeeded",
            Some(_) => "failed",
        };
        let n = entry.get(key).and_then(Value::as_u64).unwrap_or(0) + 1;
        entry[key] = json!(n);
    }
    Value::Object(out)
}

/// Runs one training job to its end.
pub(crate) async fn run(ctx: Arc<Ctx>, rt: ResourceType, flavor: &'static Flavor, job: Value) {
    let owner = Owner::new(rt, &job);
    let (kind, ns, name) = (flavor.kind, owner.ns.clone(), owner.name.clone());
    let start = now();
    let created = condition(kind, "Created", true, "Created", &ns, &name);
    let all = replicas(flavor, &job);
    if all.is_empty() {
        let failed = condition(kind, "Failed", true, "Failed", &ns, &name);
        owner.set_status(
            &ctx,
            json!({"conditions": [created, failed], "startTime": start, "replicaStatuses": {}}),
        );
        return;
    }
    let envs = environments(flavor, &job, &all);
    let mut ends: Vec<Option<PodEnd>> = vec![None; all.len()];
    let running = condition(kind, "Running", true, "Running", &ns, &name);
    owner.set_status(
        &ctx,
        json!({"conditions": [created.clone(), running], "startTime": start, "replicaStatuses": replica_statuses(&all, &ends)}),
    );
    let mut group = Group::default();
    let mut names = Vec::new();
    for (i, (r, vars)) in all.iter().zip(&envs).enumerate() {
        let p = pod(flavor, &owner, &all, r, vars);
        names.push(str_at(&p, "/metadata/name").to_owned());
        group.start(&ctx, i, p);
    }
    let outcome = loop {
        let Some((i, end)) = group.next().await else {
            // Every pod ended without meeting the success rule.
            break false;
        };
        if !owner.alive(&ctx) {
            return;
        }
        if let Some(slot) = ends.get_mut(i) {
            *slot = Some(end);
        }
        if end != PodEnd::Succeeded {
            break false;
        }
        let done: Vec<bool> = ends.iter().map(|e| *e == Some(PodEnd::Succeeded)).collect();
        if succeeded(flavor, &all, &done) {
            break true;
        }
    };
    let mut running = condition(kind, "Running", false, "Running", &ns, &name);
    let last = if outcome {
        condition(kind, "Succeeded", true, "Succeeded", &ns, &name)
    } else {
        running["reason"] = json!(format!("{kind}Failed"));
        condition(kind, "Failed", true, "Failed", &ns, &name)
    };
    owner.set_status(
        &ctx,
        json!({"conditions": [created, running, last], "startTime": start, "completionTime": now(), "replicaStatuses": replica_statuses(&all, &ends)}),
    );
    let policy = job
        .pointer("/spec/runPolicy/cleanPodPolicy")
        .or_else(|| job.pointer("/spec/cleanPodPolicy"))
        .and_then(Value::as_str)
        .unwrap_or("None");
    for (pod, end) in names.iter().zip(&ends) {
        if policy == "All" || (policy == "Running" && end.is_none()) {
            ctx.pods.delete(&ns, pod);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(kind: &str, specs: Value) -> Value {
        let field = Flavor::of(kind, "kubeflow.org/v1")
            .map(|f| f.field)
            .unwrap_or_default();
        json!({"kind": kind, "metadata": {"name": "j"}, "spec": {field: specs}})
    }

    fn spec(n: u64) -> Value {
        json!({"replicas": n, "template": {"spec": {"containers": [{"name": "c", "command": ["true"]}]}}})
    }

    #[test]
    fn pytorch_master_is_rank_0_and_workers_follow() {
        let j = job("PyTorchJob", json!({"Worker": spec(2), "Master": spec(1)}));
        let all = replicas(&PYTORCH, &j);
        let types: Vec<_> = all.iter().map(|r| (r.rtype, r.index)).collect();
        assert_eq!(types, [("Master", 0), ("Worker", 0), ("Worker", 1)]);
        let envs = environments(&PYTORCH, &j, &all);
        let get = |i: usize, k: &str| {
            envs[i]
                .iter()
                .find(|v| v["name"] == k)
                .map(|v| v["value"].as_str().unwrap().to_owned())
        };
        assert_eq!(get(0, "RANK").as_deref(), Some("0"));
        assert_eq!(get(2, "RANK").as_deref(), Some("2"));
        assert_eq!(get(1, "WORLD_SIZE").as_deref(), Some("3"));
        assert_eq!(get(0, "MASTER_PORT"), get(2, "MASTER_PORT"));
        assert!(is_master(&PYTORCH, &all, &all[0]));
        assert!(!is_master(&PYTORCH, &all, &all[1]));
        // The master's success is the job's; workers alone are not.
        assert!(succeeded(&PYTORCH, &all, &[true, false, false]));
        assert!(!succeeded(&PYTORCH, &all, &[false, true, true]));
    }

    #[test]
    fn without_a_master_every_worker_must_succeed() {
        let j = job("PyTorchJob", json!({"worker": spec(2)}));
        let all = replicas(&PYTORCH, &j);
        assert!(!succeeded(&PYTORCH, &all, &[true, false]));
        assert!(succeeded(&PYTORCH, &all, &[true, true]));
    }

    #[test]
    fn tf_config_names_each_member_at_its_own_port() {
        let j = job("TFJob", json!({"Worker": spec(2), "PS": spec(1)}));
        let all = replicas(&TF, &j);
        let envs = environments(&TF, &j, &all);
        let config: Value = serde_json::from_str(envs[0][0]["value"].as_str().unwrap()).unwrap();
        assert_eq!(config["task"], json!({"type": "ps", "index": 0}));
        let workers = config["cluster"]["worker"].as_array().unwrap();
        assert_eq!(workers.len(), 2);
        assert_ne!(workers[0], workers[1]);
        // Without Chief or Master, Worker 0 is the primary.
        assert!(is_master(&TF, &all, &all[1]));
    }

    #[test]
    fn mpi_v2beta1_labels_launcher_and_workers_by_role() {
        let j = json!({"kind": "MPIJob", "metadata": {"name": "m"}, "spec": {"mpiReplicaSpecs": {"Launcher": spec(1), "Worker": spec(2)}}});
        let flavor = Flavor::of("MPIJob", "kubeflow.org/v2beta1").unwrap();
        let all = replicas(flavor, &j);
        let rt = crate::resource::builtins().remove(0);
        let owner = Owner::new(rt, &j);
        let launcher = pod(flavor, &owner, &all, &all[0], &[]);
        assert_eq!(launcher["metadata"]["name"], "m-launcher");
        assert_eq!(launcher["metadata"]["labels"][JOB_ROLE], "launcher");
        let worker = pod(flavor, &owner, &all, &all[2], &[]);
        assert_eq!(worker["metadata"]["name"], "m-worker-1");
        assert_eq!(worker["metadata"]["annotations"][IDLE], "true");
    }
}
