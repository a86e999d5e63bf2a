//! The distributed environment each replica gets, as the kinds' operators
//! inject it, with every address `127.0.0.1` (all replicas run on one
//! machine: `ktune run`'s, or the fake cluster's node) and the rendezvous
//! ports the caller picked.
//!
//! | rule | ports | variables |
//! |---|---|---|
//! | [`Environment::Torch`] | 1 | `MASTER_ADDR`, `MASTER_PORT`, `WORLD_SIZE` (replicas × `nprocPerNode`), `RANK`, `PET_*` |
//! | [`Environment::TrainerTorch`] | 1 | `PET_NNODES`, `PET_NPROC_PER_NODE`, `PET_NODE_RANK` (the completion index), `PET_MASTER_ADDR`, `PET_MASTER_PORT` |
//! | [`Environment::TfConfig`] | one per cluster member | `TF_CONFIG` (only with more than one replica, only in `tensorflow` containers) |
//! | [`Environment::XGBoost`] | 1, 2 with workers | `MASTER_ADDR`, `MASTER_PORT`, `WORLD_SIZE`, `RANK`, `WORKER_PORT`, `WORKER_ADDRS` |
//! | [`Environment::Paddle`] | 1 | `PADDLE_MASTER`, `PADDLE_NNODES`, `PADDLE_JOB_ID`, `PADDLE_SERVER_NUM` / `PADDLE_TRAINER_NUM`, `POD_IP_DUMMY` |
//! | [`Environment::Jax`] | 1 | `COORDINATOR_ADDRESS`, `COORDINATOR_PORT`, `NUM_PROCESSES`, `PROCESS_ID` |
//! | [`Environment::Mpi`] | 0 | `K_MPI_JOB_ROLE`; the launcher may oversubscribe (no hostfile: every rank here) |
//! | [`Environment::IndexedJob`] | 0 | `JOB_COMPLETION_INDEX` |

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::pods::COMPLETION_INDEX;
use crate::replicas::Replica;

/// Every replica's address.
pub const LOCALHOST: &str = "127.0.0.1";

/// One environment variable of a replica. Where the operator sets it
/// through the downward API, `field_path` says from where (a pod on a
/// cluster reads it there); `value` is what it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: String,
    /// The pod field it comes from (`metadata.annotations['…']`), if any.
    pub field_path: Option<String>,
}

fn var(name: &str, value: impl ToString) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: value.to_string(),
        field_path: None,
    }
}

/// The completion index, through the downward API as Kubernetes gives it.
fn completion_index(name: &str, replica: &Replica) -> EnvVar {
    EnvVar {
        field_path: Some(format!("metadata.annotations['{COMPLETION_INDEX}']")),
        ..var(name, replica.job.map_or(0, |j| j.completion))
    }
}

/// How a kind's replicas find each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Nothing is injected.
    None,
    /// The training operator's PyTorchJob variables.
    Torch,
    /// Kubeflow Trainer's torch runtime variables.
    TrainerTorch,
    /// The training operator's TFJob `TF_CONFIG` (the `sparseCluster` form
    /// under `enableDynamicWorker`).
    TfConfig,
    /// The training operator's XGBoostJob variables (Rabit and LightGBM).
    XGBoost,
    /// The training operator's PaddleJob variables: parameter-server mode
    /// with a Master, else collective mode with Worker 0 as rendezvous.
    Paddle,
    /// The training operator's JAXJob variables.
    Jax,
    /// What an MPI launcher needs to run every rank on this machine.
    Mpi,
    /// The Job controller's `JOB_COMPLETION_INDEX` for indexed Jobs.
    IndexedJob,
}

impl Environment {
    /// How many rendezvous ports the rule needs for these replicas; the
    /// first is the rendezvous (the lead's).
    #[must_use]
    pub fn ports(self, replicas: &[Replica]) -> usize {
        match self {
            Self::None | Self::Mpi | Self::IndexedJob => 0,
            Self::Torch | Self::TrainerTorch | Self::Paddle | Self::Jax => 1,
            Self::XGBoost if replicas.len() > 1 => 2,
            Self::XGBoost => 1,
            Self::TfConfig if replicas.len() > 1 => tf_members(replicas).count(),
            Self::TfConfig => 0,
        }
    }

    /// The one container name the variables go to (`TF_CONFIG` only to
    /// `tensorflow`), or `None` for every container.
    #[must_use]
    pub fn container(self) -> Option<&'static str> {
        (self == Self::TfConfig).then_some("tensorflow")
    }

    /// Each replica's variables, in `replicas` order; `ports` as many as
    /// [`Self::ports`] asks (missing ones read as 0).
    #[must_use]
    pub fn variables(
        self,
        workload: &Value,
        replicas: &[Replica],
        ports: &[u16],
    ) -> Vec<Vec<EnvVar>> {
        let port = |i: usize| ports.get(i).copied().unwrap_or(0);
        let world = replicas.len();
        let each = |f: &dyn Fn(usize, &Replica) -> Vec<EnvVar>| -> Vec<Vec<EnvVar>> {
            replicas.iter().enumerate().map(|(i, r)| f(i, r)).collect()
        };
        match self {
            Self::None => vec![Vec::new(); world],
            Self::Torch => {
                let nproc = workload.pointer("/spec/nprocPerNode");
                each(&|rank, _| torch(world, rank, port(0), nproc))
            }
            Self::TrainerTorch => {
                let nproc = workload.pointer("/spec/trainer/numProcPerNode");
                each(&|_, r| trainer_torch(world, r, port(0), nproc))
            }
            Self::TfConfig => tf_configs(workload, replicas, ports),
            Self::XGBoost => {
                let worker_port = (world > 1).then(|| port(1));
                each(&|rank, _| xgboost(world, rank, port(0), worker_port))
            }
            Self::Paddle => paddle(workload, replicas, port(0)),
            Self::Jax => each(&|_, r| jax(world, r, port(0))),
            Self::Mpi => each(&|_, r| mpi(r)),
            Self::IndexedJob => each(&|_, r| vec![completion_index("JOB_COMPLETION_INDEX", r)]),
        }
    }
}

/// A count the operators read from a number or a numeric string
/// (`getNprocPerNodeInt`: anything else, such as `auto`, is 1).
fn numeric(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

/// A value as the operators write it into an env var.
fn text(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

fn torch(world: usize, rank: usize, port: u16, nproc: Option<&Value>) -> Vec<EnvVar> {
    let per_node = nproc.and_then(numeric).unwrap_or(1);
    let processes = u64::try_from(world).unwrap_or(0).saturating_mul(per_node);
    let mut env = vec![
        var("PYTHONUNBUFFERED", 1),
        var("MASTER_ADDR", LOCALHOST),
        var("MASTER_PORT", port),
        var("PET_MASTER_ADDR", LOCALHOST),
        var("PET_MASTER_PORT", port),
        var("WORLD_SIZE", processes),
        var("RANK", rank),
        var("PET_NNODES", world),
        var("PET_NODE_RANK", rank),
    ];
    env.extend(nproc.map(|n| var("PET_NPROC_PER_NODE", text(n))));
    env
}

fn trainer_torch(nodes: usize, replica: &Replica, port: u16, nproc: Option<&Value>) -> Vec<EnvVar> {
    vec![
        var("PET_NNODES", nodes),
        var(
            "PET_NPROC_PER_NODE",
            nproc.map_or_else(|| "auto".to_owned(), text),
        ),
        completion_index("PET_NODE_RANK", replica),
        var("PET_MASTER_ADDR", LOCALHOST),
        var("PET_MASTER_PORT", port),
    ]
}

/// The replicas of a TFJob's cluster: all but Evaluators.
fn tf_members(replicas: &[Replica]) -> impl Iterator<Item = &Replica> {
    replicas.iter().filter(|r| !r.is("Evaluator"))
}

/// `TF_CONFIG` for each replica: every cluster member at its own port in
/// order (cluster keys sorted, `"environment": "cloud"`), set only when
/// the job has more than one replica.
fn tf_configs(workload: &Value, replicas: &[Replica], ports: &[u16]) -> Vec<Vec<EnvVar>> {
    if replicas.len() < 2 {
        return vec![Vec::new(); replicas.len()];
    }
    let mut cluster: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, member) in tf_members(replicas).enumerate() {
        let port = ports.get(i).copied().unwrap_or(0);
        cluster
            .entry(member.role.to_lowercase())
            .or_default()
            .push(format!("{LOCALHOST}:{port}"));
    }
    let dynamic = workload.pointer("/spec/enableDynamicWorker") == Some(&Value::Bool(true));
    replicas
        .iter()
        .map(|r| {
            let rtype = r.role.to_lowercase();
            let config = if dynamic {
                sparse_tf_config(&cluster, &rtype, r.index)
            } else {
                json!({
                    "cluster": cluster,
                    "task": {"type": rtype, "index": r.index},
                    "environment": "cloud",
                })
            };
            vec![var("TF_CONFIG", config)]
        })
        .collect()
}

/// The operator's `SparseTFConfig`: a PS sees itself, a worker itself and
/// every PS (`null` when there is none, as Go writes a nil slice).
fn sparse_tf_config(cluster: &BTreeMap<String, Vec<String>>, rtype: &str, index: u64) -> Value {
    let own = usize::try_from(index)
        .ok()
        .and_then(|i| cluster.get(rtype)?.get(i).cloned());
    let (worker, ps) = match (rtype, own) {
        ("ps", Some(me)) => (json!({}), json!([me])),
        ("worker", Some(me)) => (
            json!({ index.to_string(): me }),
            cluster.get("ps").map_or(Value::Null, |ps| json!(ps)),
        ),
        _ => (json!({}), json!([])),
    };
    json!({
        "sparseCluster": {"worker": worker, "ps": ps},
        "task": {"type": rtype, "index": index},
    })
}

/// The Master is rank 0 (the Rabit tracker at `MASTER_PORT`), Workers
/// follow; with more than one replica, `WORKER_PORT` (one port, as every
/// pod had its own address) and `WORKER_ADDRS` (one address per worker).
fn xgboost(world: usize, rank: usize, port: u16, worker_port: Option<u16>) -> Vec<EnvVar> {
    let mut env = vec![
        var("MASTER_PORT", port),
        var("MASTER_ADDR", LOCALHOST),
        var("WORLD_SIZE", world),
        var("RANK", rank),
        var("PYTHONUNBUFFERED", 0),
    ];
    if let Some(worker_port) = worker_port {
        env.push(var("WORKER_PORT", worker_port));
        env.push(var(
            "WORKER_ADDRS",
            vec![LOCALHOST; world.saturating_sub(1)].join(","),
        ));
    }
    env
}

/// Parameter-server mode with a Master (Master 0 the rendezvous, with
/// `PADDLE_SERVER_NUM=1`; Workers `PADDLE_TRAINER_NUM=1`), else collective
/// mode with Worker 0 the rendezvous. The rendezvous replica also gets
/// `POD_IP_DUMMY`, the address its `PADDLE_MASTER` names on a cluster.
fn paddle(workload: &Value, replicas: &[Replica], port: u16) -> Vec<Vec<EnvVar>> {
    let ps_mode = replicas.iter().any(|r| r.is("Master"));
    let rendezvous = if ps_mode { "Master" } else { "Worker" };
    let job = workload
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    replicas
        .iter()
        .map(|r| {
            let mut env = vec![
                var("PYTHONUNBUFFERED", 0),
                var("PADDLE_JOB_ID", job),
                var("PADDLE_NNODES", replicas.len()),
            ];
            if r.index == 0 && r.is(rendezvous) {
                env.push(var("POD_IP_DUMMY", LOCALHOST));
            }
            env.push(var("PADDLE_MASTER", format!("{LOCALHOST}:{port}")));
            if ps_mode {
                let num = if r.is("Master") {
                    "PADDLE_SERVER_NUM"
                } else {
                    "PADDLE_TRAINER_NUM"
                };
                env.push(var(num, 1));
            }
            env
        })
        .collect()
}

/// Worker 0 is the coordinator (`COORDINATOR_ADDRESS` a host,
/// `COORDINATOR_PORT` its port).
fn jax(processes: usize, replica: &Replica, port: u16) -> Vec<EnvVar> {
    vec![
        var("PYTHONUNBUFFERED", 1),
        var("COORDINATOR_PORT", port),
        var("COORDINATOR_ADDRESS", LOCALHOST),
        var("NUM_PROCESSES", processes),
        var("PROCESS_ID", replica.index),
    ]
}

/// The launcher's `mpirun` starts every rank on this machine: no hostfile
/// (Open MPI, Intel MPI and MPICH then run all ranks locally) and Open MPI
/// may oversubscribe (4.x and 5.x spellings), so an `-np` sized for the
/// cluster also starts on fewer cores. Workers only learn their role.
fn mpi(replica: &Replica) -> Vec<EnvVar> {
    if replica.idle {
        return vec![var("K_MPI_JOB_ROLE", "worker")];
    }
    vec![
        var("K_MPI_JOB_ROLE", "launcher"),
        var("OMPI_MCA_rmaps_base_oversubscribe", 1),
        var("PRTE_MCA_rmaps_default_mapping_policy", ":oversubscribe"),
    ]
}
