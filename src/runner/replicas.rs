//! A trial as a distributed training job on one machine: the workload's
//! replicas each run as a local process with the environment the Kubeflow
//! operators inject, every address being `127.0.0.1` and every port one the
//! kernel reports free. The primary replica (the one whose pod Katib gives
//! the `training.kubeflow.org/job-role: master` label) comes first: its
//! output is the trial's, and the trial fails as soon as any replica fails.
//!
//! | kind | replicas run, primary first | environment |
//! |---|---|---|
//! | `PyTorchJob` | Master, Workers (else Worker 0 leads) | `MASTER_ADDR`, `MASTER_PORT`, `WORLD_SIZE`, `RANK`, `PET_*` |
//! | `TrainJob` | `numNodes` nodes | the same torch variables |
//! | `TFJob` | Chief, Master, PS, Workers, Evaluators (without Chief or Master, Worker 0 leads) | `TF_CONFIG` (one port per cluster member) |
//! | `XGBoostJob` | Master, Workers | `MASTER_ADDR`, `MASTER_PORT`, `WORLD_SIZE`, `RANK`, `WORKER_PORT`, `WORKER_ADDRS` |
//! | `PaddleJob` | Master, Workers (else Worker 0 leads) | `PADDLE_MASTER`, `PADDLE_NNODES`, `PADDLE_JOB_ID`, `PADDLE_SERVER_NUM` / `PADDLE_TRAINER_NUM` |
//! | `JAXJob` | Workers, index 0 leading | `COORDINATOR_ADDRESS`, `COORDINATOR_PORT`, `NUM_PROCESSES`, `PROCESS_ID` |
//! | `MPIJob` | the Launcher only: its `mpirun` starts the ranks itself | `K_MPI_JOB_ROLE=launcher`, oversubscription allowed |
//!
//! Any other kind runs its primary container alone.
//!
//! A replica type is left out when its `replicas` is 0 (Kubernetes starts
//! no pod either). A replica type that would run but has no container with
//! a command makes the whole plan empty (the trial then fails as having no
//! command): on a cluster that pod would run its image's entrypoint, which
//! ktune cannot, and leaving it out would hang the others' rendezvous.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::local::{Exit, LaunchSpec, RunnerError, RunningTrial, launch_with};
use super::output::LogBudget;
use crate::api::template::{container_argv, container_env, primary_container};

/// One process of a trial: its role name (`master-0`, `worker-1`, `node-0`),
/// command and environment. The first of a plan is the primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaCommand {
    /// Role and index, e.g. `worker-1`.
    pub name: String,
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Environment, the operator's distributed variables included.
    pub env: Vec<(String, String)>,
}

/// The most processes one trial may start on this machine; a workload
/// asking for more gets an empty plan.
pub const MAX_REPLICAS: u64 = 256;

const LOCALHOST: &str = "127.0.0.1";

/// A free TCP port on 127.0.0.1 for the rendezvous (the kernel picks it).
#[must_use]
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(29_500, |a| a.port())
}

/// `n` distinct ports, `first` leading: the others are ports the kernel
/// reports free, all held open together until every one is picked so that
/// none repeats. A `first` of 0 (a preview, such as `ktune suggest`) gives
/// zeros and asks the kernel nothing. Should the kernel refuse, the ports
/// after `first` are used.
fn ports(first: u16, n: usize) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return out;
    }
    out.push(first);
    if first == 0 {
        out.resize(n, 0);
        return out;
    }
    let mut held = Vec::new();
    while out.len() < n && held.len() < n.saturating_mul(2) {
        let Ok(listener) = TcpListener::bind("127.0.0.1:0") else {
            break;
        };
        if let Ok(port) = listener.local_addr().map(|a| a.port())
            && !out.contains(&port)
        {
            out.push(port);
        }
        held.push(listener);
    }
    let mut candidate = first;
    while out.len() < n {
        candidate = candidate.checked_add(1).unwrap_or(1024);
        if !out.contains(&candidate) {
            out.push(candidate);
        }
    }
    out
}

/// A replica count: absent (or not a count) is 1, as the operators default
/// it; 0 is 0.
fn count(value: Option<&Value>) -> u64 {
    value.and_then(Value::as_u64).unwrap_or(1)
}

fn var(name: &str, value: impl ToString) -> (String, String) {
    (name.to_owned(), value.to_string())
}

fn torch_env(world: u64, rank: u64, port: u16, nproc: Option<&Value>) -> Vec<(String, String)> {
    let mut env = vec![
        var("PYTHONUNBUFFERED", 1),
        var("MASTER_ADDR", LOCALHOST),
        var("MASTER_PORT", port),
        var("PET_MASTER_ADDR", LOCALHOST),
        var("PET_MASTER_PORT", port),
        var("WORLD_SIZE", world),
        var("RANK", rank),
        var("PET_NNODES", world),
        var("PET_NODE_RANK", rank),
    ];
    if let Some(n) = nproc {
        let text = n.as_str().map_or_else(|| n.to_string(), str::to_owned);
        env.push(("PET_NPROC_PER_NODE".to_owned(), text));
    }
    env
}

/// The processes a rendered workload describes, primary first (see the
/// module's table). Empty when there is nothing runnable: no container
/// named `primary` (or the kind's default container) with a command, a
/// replica type that would run without one, or more than
/// [`MAX_REPLICAS`] processes. `port` is the rendezvous port (the
/// primary's); further ports are asked of the kernel, unless `port` is 0.
#[must_use]
pub fn plan(workload: &Value, primary: &str, port: u16) -> Vec<ReplicaCommand> {
    let kind = workload
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match kind {
        "PyTorchJob" => pytorch(workload, primary, port),
        "TrainJob" => trainjob(workload, port),
        "TFJob" => tfjob(workload, primary, port),
        "XGBoostJob" => xgboost(workload, primary, port),
        "PaddleJob" => paddle(workload, primary, port),
        "JAXJob" => jax(workload, primary, port),
        "MPIJob" => mpijob(workload, primary),
        _ => primary_container(workload, primary)
            .map(|c| {
                vec![ReplicaCommand {
                    name: "main".to_owned(),
                    argv: container_argv(c),
                    env: container_env(c),
                }]
            })
            .unwrap_or_default(),
    }
}

/// One replica type of a Kubeflow job that runs: its type as the operator
/// spells it (`Worker`), its replica count and the container run.
struct Role<'a> {
    rtype: &'static str,
    replicas: u64,
    container: &'a Value,
}

impl Role<'_> {
    fn command(&self, index: u64, operator_env: Vec<(String, String)>) -> ReplicaCommand {
        let mut env = container_env(self.container);
        env.extend(operator_env);
        ReplicaCommand {
            name: format!("{}-{index}", self.rtype.to_lowercase()),
            argv: container_argv(self.container),
            env,
        }
    }

    fn is(&self, rtype: &str) -> bool {
        self.rtype == rtype
    }
}

/// A replica type's spec; the operators accept any letter case
/// (`worker`, `Worker`) and write it in their own.
fn spec_of<'a>(specs: &'a Value, rtype: &str) -> Option<&'a Value> {
    specs
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(rtype))
        .map(|(_, v)| v)
}

/// The container named `name` with a non-empty command in a pod template.
fn runnable<'a>(template: &'a Value, name: &str) -> Option<&'a Value> {
    primary_container(template, name).filter(|c| !container_argv(c).is_empty())
}

/// The replica types of `specs` that run, in `order`, each with its
/// container: the one named `primary`, else the operator's `default`.
/// `None` when one of them has no such container with a command, or when
/// they add up to more than [`MAX_REPLICAS`] processes.
fn roles<'a>(
    specs: &'a Value,
    order: &[&'static str],
    primary: &str,
    default: &str,
) -> Option<Vec<Role<'a>>> {
    let mut out = Vec::new();
    let mut total: u64 = 0;
    for rtype in order {
        let Some(spec) = spec_of(specs, rtype) else {
            continue;
        };
        let replicas = count(spec.get("replicas"));
        if replicas == 0 {
            continue;
        }
        total = total.saturating_add(replicas);
        if total > MAX_REPLICAS {
            return None;
        }
        let template = spec.get("template")?;
        let container = runnable(template, primary).or_else(|| runnable(template, default))?;
        out.push(Role {
            rtype,
            replicas,
            container,
        });
    }
    (!out.is_empty()).then_some(out)
}

fn total(roles: &[Role<'_>]) -> u64 {
    roles.iter().map(|r| r.replicas).sum()
}

fn pytorch(workload: &Value, primary: &str, port: u16) -> Vec<ReplicaCommand> {
    // The Master is rank 0; without one, Worker 0 is (the operator's rule).
    let Some(roles) = workload
        .pointer("/spec/pytorchReplicaSpecs")
        .and_then(|s| roles(s, &["Master", "Worker"], primary, "pytorch"))
    else {
        return Vec::new();
    };
    let world = total(&roles);
    let nproc = workload.pointer("/spec/nprocPerNode");
    let mut rank = 0;
    let mut out = Vec::new();
    for role in &roles {
        for index in 0..role.replicas {
            out.push(role.command(index, torch_env(world, rank, port, nproc)));
            rank += 1;
        }
    }
    out
}

fn trainjob(workload: &Value, port: u16) -> Vec<ReplicaCommand> {
    let Some(trainer) = workload.pointer("/spec/trainer") else {
        return Vec::new();
    };
    let nodes = count(trainer.get("numNodes")).max(1);
    let argv = container_argv(trainer);
    if argv.is_empty() || nodes > MAX_REPLICAS {
        return Vec::new();
    }
    (0..nodes)
        .map(|rank| {
            let mut env = container_env(trainer);
            env.extend(torch_env(nodes, rank, port, trainer.get("numProcPerNode")));
            ReplicaCommand {
                name: format!("node-{rank}"),
                argv: argv.clone(),
                env,
            }
        })
        .collect()
}

/// TFJob: every replica of the training cluster (all but Evaluators) gets
/// its own port; each process gets `TF_CONFIG` naming the whole cluster
/// and its own task, as the operator writes it (cluster keys sorted,
/// `"environment":"cloud"`; the `sparseCluster` form under
/// `enableDynamicWorker`). Like the operator, `TF_CONFIG` is set only when
/// the job has more than one replica and only on a container named
/// `tensorflow`.
fn tfjob(workload: &Value, primary: &str, port: u16) -> Vec<ReplicaCommand> {
    let Some(specs) = workload.pointer("/spec/tfReplicaSpecs") else {
        return Vec::new();
    };
    // With a Chief or Master it is primary; else Worker 0 is.
    let lead = ["Chief", "Master"]
        .iter()
        .any(|r| spec_of(specs, r).is_some());
    let order: &[&'static str] = if lead {
        &["Chief", "Master", "PS", "Worker", "Evaluator"]
    } else {
        &["Worker", "PS", "Evaluator"]
    };
    let Some(roles) = roles(specs, order, primary, "tensorflow") else {
        return Vec::new();
    };
    let members: Vec<&Role<'_>> = roles.iter().filter(|r| !r.is("Evaluator")).collect();
    let wanted = members.iter().map(|r| r.replicas).sum::<u64>();
    let wanted = usize::try_from(wanted).unwrap_or(usize::MAX);
    let mut free = ports(port, wanted).into_iter();
    let mut cluster: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for role in &members {
        let addresses = (0..role.replicas)
            .map(|_| format!("{LOCALHOST}:{}", free.next().unwrap_or(port)))
            .collect();
        cluster.insert(role.rtype.to_lowercase(), addresses);
    }
    let distributed = total(&roles) != 1;
    let dynamic = workload.pointer("/spec/enableDynamicWorker") == Some(&Value::Bool(true));
    let mut out = Vec::new();
    for role in &roles {
        let rtype = role.rtype.to_lowercase();
        let sets_config =
            distributed && role.container.get("name").and_then(Value::as_str) == Some("tensorflow");
        for index in 0..role.replicas {
            let mut env = Vec::new();
            if sets_config {
                let config = if dynamic {
                    sparse_tf_config(&cluster, &rtype, index)
                } else {
                    json!({
                        "cluster": cluster,
                        "task": {"type": rtype, "index": index},
                        "environment": "cloud",
                    })
                };
                env.push(var("TF_CONFIG", config));
            }
            out.push(role.command(index, env));
        }
    }
    out
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

/// XGBoostJob: the Master (rank 0, the Rabit tracker at `MASTER_PORT`) and
/// the Workers (ranks after the Masters). With more than one replica,
/// `WORKER_PORT` (one port, as every pod had its own address) and
/// `WORKER_ADDRS` (one `127.0.0.1` per worker) are set for LightGBM. The
/// operator requires a Master, so a job without one gets no plan.
fn xgboost(workload: &Value, primary: &str, port: u16) -> Vec<ReplicaCommand> {
    let Some(specs) = workload.pointer("/spec/xgbReplicaSpecs") else {
        return Vec::new();
    };
    if spec_of(specs, "Master").is_none() {
        return Vec::new();
    }
    let Some(roles) = roles(specs, &["Master", "Worker"], primary, "xgboost") else {
        return Vec::new();
    };
    let world = total(&roles);
    let masters = roles
        .iter()
        .filter(|r| r.is("Master"))
        .map(|r| r.replicas)
        .sum::<u64>();
    let worker_port = if world > 1 {
        ports(port, 2).get(1).copied()
    } else {
        None
    };
    let worker_addrs =
        vec![LOCALHOST; usize::try_from(world.saturating_sub(1)).unwrap_or(0)].join(",");
    let mut out = Vec::new();
    for role in &roles {
        let offset = if role.is("Worker") { masters } else { 0 };
        for index in 0..role.replicas {
            let mut env = vec![
                var("MASTER_PORT", port),
                var("MASTER_ADDR", LOCALHOST),
                var("WORLD_SIZE", world),
                var("RANK", index + offset),
                var("PYTHONUNBUFFERED", 0),
            ];
            if let Some(worker_port) = worker_port {
                env.push(var("WORKER_PORT", worker_port));
                env.push(var("WORKER_ADDRS", &worker_addrs));
            }
            out.push(role.command(index, env));
        }
    }
    out
}

/// PaddleJob: with a Master, parameter-server mode (Master 0 is the
/// rendezvous and gets `PADDLE_SERVER_NUM=1`, Workers `PADDLE_TRAINER_NUM=1`);
/// without one, collective mode with Worker 0 as the rendezvous (and the
/// primary: the operator labels no pod master then, ktune needs one).
/// `PADDLE_MASTER` is `127.0.0.1:<port>`; the rendezvous replica also gets
/// `POD_IP_DUMMY=127.0.0.1`, which its `PADDLE_MASTER` names on a cluster.
fn paddle(workload: &Value, primary: &str, port: u16) -> Vec<ReplicaCommand> {
    let Some(specs) = workload.pointer("/spec/paddleReplicaSpecs") else {
        return Vec::new();
    };
    let Some(roles) = roles(specs, &["Master", "Worker"], primary, "paddle") else {
        return Vec::new();
    };
    let ps_mode = spec_of(specs, "Master").is_some();
    let rendezvous = if ps_mode { "Master" } else { "Worker" };
    let nodes = total(&roles);
    let job = workload
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let master = format!("{LOCALHOST}:{port}");
    let mut out = Vec::new();
    for role in &roles {
        for index in 0..role.replicas {
            let mut env = vec![
                var("PYTHONUNBUFFERED", 0),
                var("PADDLE_JOB_ID", job),
                var("PADDLE_NNODES", nodes),
            ];
            if index == 0 && role.is(rendezvous) {
                env.push(var("POD_IP_DUMMY", LOCALHOST));
            }
            env.push(var("PADDLE_MASTER", &master));
            if ps_mode {
                let num = if role.is("Master") {
                    "PADDLE_SERVER_NUM"
                } else {
                    "PADDLE_TRAINER_NUM"
                };
                env.push(var(num, 1));
            }
            out.push(role.command(index, env));
        }
    }
    out
}

/// JAXJob: the Workers, Worker 0 the coordinator (`COORDINATOR_ADDRESS` is
/// a host, `COORDINATOR_PORT` its port) and the primary.
fn jax(workload: &Value, primary: &str, port: u16) -> Vec<ReplicaCommand> {
    let Some(roles) = workload
        .pointer("/spec/jaxReplicaSpecs")
        .and_then(|s| roles(s, &["Worker"], primary, "jax"))
    else {
        return Vec::new();
    };
    let processes = total(&roles);
    let mut out = Vec::new();
    for role in &roles {
        for index in 0..role.replicas {
            let env = vec![
                var("PYTHONUNBUFFERED", 1),
                var("COORDINATOR_PORT", port),
                var("COORDINATOR_ADDRESS", LOCALHOST),
                var("NUM_PROCESSES", processes),
                var("PROCESS_ID", index),
            ];
            out.push(role.command(index, env));
        }
    }
    out
}

/// MPIJob (v2beta1 and v1): only the Launcher runs; its `mpirun` starts the
/// ranks itself, here on this machine, so no Worker (an sshd on a cluster)
/// is started. The container is the one named `primary`, else `mpi`, else
/// the Launcher's first (the one mpi-operator sets up). It gets
/// `K_MPI_JOB_ROLE=launcher` as on a cluster, but not the operator's
/// `OMPI_MCA_orte_default_hostfile` (no hostfile is written: without one
/// Open MPI, Intel MPI and MPICH run every rank on this machine) nor its
/// ssh arguments; instead Open MPI may oversubscribe
/// (`OMPI_MCA_rmaps_base_oversubscribe=1` for 4.x,
/// `PRTE_MCA_rmaps_default_mapping_policy=:oversubscribe` for 5.x), so an
/// `-np` sized for the cluster's workers × `slotsPerWorker` slots also
/// starts on fewer cores.
fn mpijob(workload: &Value, primary: &str) -> Vec<ReplicaCommand> {
    let Some(template) = workload
        .pointer("/spec/mpiReplicaSpecs")
        .and_then(|s| spec_of(s, "Launcher"))
        .and_then(|l| l.get("template"))
    else {
        return Vec::new();
    };
    let first = template
        .pointer("/spec/containers/0")
        .filter(|c| !container_argv(c).is_empty());
    let Some(container) = runnable(template, primary)
        .or_else(|| runnable(template, "mpi"))
        .or(first)
    else {
        return Vec::new();
    };
    let mut env = container_env(container);
    env.extend([
        var("K_MPI_JOB_ROLE", "launcher"),
        var("OMPI_MCA_rmaps_base_oversubscribe", 1),
        var("PRTE_MCA_rmaps_default_mapping_policy", ":oversubscribe"),
    ]);
    vec![ReplicaCommand {
        name: "launcher".to_owned(),
        argv: container_argv(container),
        env,
    }]
}

/// The running processes of one trial; the first is the primary.
#[derive(Debug)]
pub struct ReplicaSet {
    replicas: Vec<RunningTrial>,
    ended: Vec<Option<Exit>>,
}

impl ReplicaSet {
    /// Starts every replica: the primary in `base.trial_dir`, the others in
    /// sub-folders named after their role, their output counted against
    /// one log limit (the trial's). If one cannot start, those already
    /// started are stopped.
    ///
    /// # Errors
    /// [`RunnerError`] of the replica that could not start.
    pub async fn launch(
        base: &LaunchSpec,
        commands: &[ReplicaCommand],
    ) -> Result<Self, RunnerError> {
        if commands.is_empty() {
            return Err(RunnerError::EmptyCommand);
        }
        let budget = LogBudget::new(base.log_limit);
        let mut replicas = Vec::with_capacity(commands.len());
        for (i, command) in commands.iter().enumerate() {
            let mut spec = base.clone();
            spec.argv.clone_from(&command.argv);
            spec.env.extend(command.env.iter().cloned());
            if i > 0 {
                spec.trial_dir = base.trial_dir.join(&command.name);
            }
            match launch_with(&spec, &budget) {
                Ok(r) => replicas.push(r),
                Err(e) => {
                    futures::future::join_all(
                        replicas.iter_mut().map(|r| r.stop(Duration::from_secs(1))),
                    )
                    .await;
                    return Err(e);
                }
            }
        }
        let ended = vec![None; replicas.len()];
        Ok(Self { replicas, ended })
    }

    /// The primary replica's standard output: the trial's metrics source.
    #[must_use]
    pub fn stdout_path(&self) -> &Path {
        self.replicas
            .first()
            .map_or(Path::new(""), RunningTrial::stdout_path)
    }

    /// The primary replica's standard error: a failure's message quotes its end.
    #[must_use]
    pub fn stderr_path(&self) -> &Path {
        self.replicas
            .first()
            .map_or(Path::new(""), RunningTrial::stderr_path)
    }

    /// Whether the trial ended: when every replica succeeded, or as soon as
    /// one did not (the others are then stopped).
    pub async fn poll(&mut self, grace: Duration) -> Option<Exit> {
        for (replica, ended) in self.replicas.iter_mut().zip(self.ended.iter_mut()) {
            if ended.is_none() {
                *ended = replica.poll().await;
            }
        }
        if let Some(failure) = self
            .ended
            .iter()
            .flatten()
            .find(|e| **e != Exit::Succeeded)
            .cloned()
        {
            self.stop(grace).await;
            return Some(failure);
        }
        self.ended
            .iter()
            .all(Option::is_some)
            .then_some(Exit::Succeeded)
    }

    /// Stops every replica still running, together (one grace period).
    pub async fn stop(&mut self, grace: Duration) -> Exit {
        let running = self
            .replicas
            .iter_mut()
            .zip(&self.ended)
            .filter(|(_, ended)| ended.is_none())
            .map(|(replica, _)| replica.stop(grace));
        futures::future::join_all(running).await;
        Exit::Stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env_of<'a>(c: &'a ReplicaCommand, key: &str) -> Option<&'a str> {
        c.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_pytorchjob_becomes_a_master_and_its_workers_with_ranks() {
        let job = json!({"kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
            "Worker": {"replicas": 2, "template": {"spec": {"containers": [{"name": "pytorch", "command": ["python3", "w.py"]}]}}},
            "Master": {"replicas": 1, "template": {"spec": {"containers": [{"name": "pytorch", "command": ["python3", "m.py"], "env": [{"name": "A", "value": "1"}]}]}}}}}});
        let plan = plan(&job, "pytorch", 4242);
        let names: Vec<_> = plan.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["master-0", "worker-0", "worker-1"]);
        assert_eq!(plan[0].argv, ["python3", "m.py"]);
        assert_eq!(env_of(&plan[0], "A"), Some("1"));
        let ranks: Vec<_> = plan.iter().map(|c| env_of(c, "RANK").unwrap()).collect();
        assert_eq!(ranks, ["0", "1", "2"]);
        assert!(
            plan.iter().all(|c| env_of(c, "WORLD_SIZE") == Some("3")
                && env_of(c, "MASTER_PORT") == Some("4242"))
        );
    }

    #[test]
    fn a_trainjob_runs_one_process_per_node_and_other_kinds_one() {
        let tj = json!({"kind": "TrainJob", "spec": {"trainer": {"command": ["torchrun", "t.py"], "numNodes": 2, "numProcPerNode": 1}}});
        let plan_tj = plan(&tj, "node", 1);
        assert_eq!(plan_tj.len(), 2);
        assert_eq!(env_of(&plan_tj[1], "PET_NODE_RANK"), Some("1"));
        assert_eq!(env_of(&plan_tj[0], "PET_NPROC_PER_NODE"), Some("1"));
        let job = json!({"kind": "Job", "spec": {"template": {"spec": {"containers": [{"name": "main", "command": ["x"]}]}}}});
        assert_eq!(plan(&job, "main", 1).len(), 1);
        assert!(plan(&job, "other", 1).is_empty());
    }

    /// A replica spec: `replicas` copies of one container.
    fn replica(replicas: u64, name: &str, command: &[&str]) -> Value {
        json!({"replicas": replicas, "template": {"spec": {"containers": [
            {"name": name, "command": command, "env": [{"name": "USER_VAR", "value": "u"}]}]}}})
    }

    fn names(plan: &[ReplicaCommand]) -> Vec<&str> {
        plan.iter().map(|c| c.name.as_str()).collect()
    }

    fn tf_config(c: &ReplicaCommand) -> Value {
        serde_json::from_str(env_of(c, "TF_CONFIG").unwrap()).unwrap()
    }

    #[test]
    fn ports_are_distinct_and_lead_with_the_given_one() {
        let p = ports(4242, 6);
        assert_eq!(p.len(), 6);
        assert_eq!(p[0], 4242);
        let distinct: std::collections::BTreeSet<_> = p.iter().collect();
        assert_eq!(distinct.len(), 6);
        assert_eq!(ports(0, 3), [0, 0, 0]);
        assert!(ports(7, 0).is_empty());
    }

    #[test]
    fn a_tfjob_runs_its_chief_first_with_one_cluster_port_per_member() {
        let job = json!({"kind": "TFJob", "spec": {"tfReplicaSpecs": {
            "Worker": replica(2, "tensorflow", &["python", "w.py"]),
            "PS": replica(1, "tensorflow", &["python", "ps.py"]),
            "Evaluator": replica(1, "tensorflow", &["python", "e.py"]),
            "Chief": replica(1, "tensorflow", &["python", "c.py"])}}});
        let plan = plan(&job, "tensorflow", 4242);
        assert_eq!(
            names(&plan),
            ["chief-0", "ps-0", "worker-0", "worker-1", "evaluator-0"]
        );
        assert_eq!(plan[0].argv, ["python", "c.py"]);
        assert_eq!(env_of(&plan[0], "USER_VAR"), Some("u"));
        let chief = tf_config(&plan[0]);
        assert_eq!(chief["cluster"]["chief"], json!(["127.0.0.1:4242"]));
        assert_eq!(chief["task"], json!({"type": "chief", "index": 0}));
        assert_eq!(chief["environment"], "cloud");
        let keys: Vec<_> = chief["cluster"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["chief", "ps", "worker"], "sorted, no evaluator");
        let addresses: std::collections::BTreeSet<_> = chief["cluster"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|v| v.as_array().unwrap().iter().map(Value::to_string))
            .collect();
        assert_eq!(addresses.len(), 4, "a distinct port per member");
        assert!(
            plan.iter()
                .all(|c| tf_config(c)["cluster"] == chief["cluster"])
        );
        assert_eq!(
            tf_config(&plan[3])["task"],
            json!({"type": "worker", "index": 1})
        );
        assert_eq!(
            tf_config(&plan[4])["task"],
            json!({"type": "evaluator", "index": 0})
        );
    }

    #[test]
    fn a_tfjob_without_chief_or_master_is_led_by_worker_0() {
        let job = json!({"kind": "TFJob", "spec": {"tfReplicaSpecs": {
            "PS": replica(2, "tensorflow", &["ps"]),
            "worker": replica(2, "tensorflow", &["w"])}}});
        let plan = plan(&job, "tensorflow", 4242);
        assert_eq!(names(&plan), ["worker-0", "worker-1", "ps-0", "ps-1"]);
        assert_eq!(
            tf_config(&plan[0])["cluster"]["worker"][0],
            "127.0.0.1:4242"
        );
        let master = json!({"kind": "TFJob", "spec": {"tfReplicaSpecs": {
            "Worker": replica(1, "tensorflow", &["w"]),
            "Master": replica(1, "tensorflow", &["m"])}}});
        assert_eq!(
            names(&super::plan(&master, "tensorflow", 1)),
            ["master-0", "worker-0"]
        );
    }

    #[test]
    fn tf_config_is_left_out_as_the_operator_does() {
        // One replica in all: not distributed.
        let single = json!({"kind": "TFJob", "spec": {"tfReplicaSpecs": {
            "Worker": replica(1, "tensorflow", &["w"])}}});
        let plan_single = plan(&single, "tensorflow", 1);
        assert_eq!(plan_single.len(), 1);
        assert_eq!(env_of(&plan_single[0], "TF_CONFIG"), None);
        // Only a container named `tensorflow` gets it.
        let named = json!({"kind": "TFJob", "spec": {"tfReplicaSpecs": {
            "Worker": replica(2, "trainer", &["w"])}}});
        let plan_named = plan(&named, "trainer", 1);
        assert_eq!(plan_named.len(), 2);
        assert!(plan_named.iter().all(|c| env_of(c, "TF_CONFIG").is_none()));
    }

    #[test]
    fn a_dynamic_tfjob_gets_the_sparse_cluster() {
        let job = json!({"kind": "TFJob", "spec": {"enableDynamicWorker": true, "tfReplicaSpecs": {
            "PS": replica(1, "tensorflow", &["ps"]),
            "Worker": replica(2, "tensorflow", &["w"])}}});
        let plan = plan(&job, "tensorflow", 4242);
        assert_eq!(names(&plan), ["worker-0", "worker-1", "ps-0"]);
        let w1 = tf_config(&plan[1]);
        assert_eq!(w1["task"], json!({"type": "worker", "index": 1}));
        let workers = w1["sparseCluster"]["worker"].as_object().unwrap();
        assert_eq!(workers.keys().collect::<Vec<_>>(), ["1"]);
        assert_eq!(w1["sparseCluster"]["ps"].as_array().unwrap().len(), 1);
        let ps = tf_config(&plan[2]);
        assert_eq!(ps["sparseCluster"]["worker"], json!({}));
        assert_eq!(ps["sparseCluster"]["ps"], w1["sparseCluster"]["ps"]);
    }

    #[test]
    fn an_xgboostjob_ranks_workers_after_the_master() {
        let job = json!({"kind": "XGBoostJob", "spec": {"xgbReplicaSpecs": {
            "Worker": replica(2, "xgboost", &["python", "w.py"]),
            "Master": replica(1, "xgboost", &["python", "m.py"])}}});
        let plan = plan(&job, "xgboost", 4242);
        assert_eq!(names(&plan), ["master-0", "worker-0", "worker-1"]);
        let ranks: Vec<_> = plan.iter().map(|c| env_of(c, "RANK").unwrap()).collect();
        assert_eq!(ranks, ["0", "1", "2"]);
        for c in &plan {
            assert_eq!(env_of(c, "MASTER_ADDR"), Some("127.0.0.1"));
            assert_eq!(env_of(c, "MASTER_PORT"), Some("4242"));
            assert_eq!(env_of(c, "WORLD_SIZE"), Some("3"));
            assert_eq!(env_of(c, "WORKER_ADDRS"), Some("127.0.0.1,127.0.0.1"));
            assert_ne!(env_of(c, "WORKER_PORT"), Some("4242"));
            assert_eq!(env_of(c, "WORKER_PORT"), env_of(&plan[0], "WORKER_PORT"));
        }
        let alone = json!({"kind": "XGBoostJob", "spec": {"xgbReplicaSpecs": {
            "Master": replica(1, "xgboost", &["m"])}}});
        let plan_alone = super::plan(&alone, "xgboost", 1);
        assert_eq!(env_of(&plan_alone[0], "WORKER_PORT"), None);
        assert_eq!(env_of(&plan_alone[0], "WORKER_ADDRS"), None);
        let masterless = json!({"kind": "XGBoostJob", "spec": {"xgbReplicaSpecs": {
            "Worker": replica(2, "xgboost", &["w"])}}});
        assert!(super::plan(&masterless, "xgboost", 1).is_empty());
    }

    #[test]
    fn a_paddlejob_with_a_master_runs_in_parameter_server_mode() {
        let job = json!({"kind": "PaddleJob", "metadata": {"name": "trial-1"}, "spec": {"paddleReplicaSpecs": {
            "Worker": replica(2, "paddle", &["w"]),
            "Master": replica(1, "paddle", &["m"])}}});
        let plan = plan(&job, "paddle", 4242);
        assert_eq!(names(&plan), ["master-0", "worker-0", "worker-1"]);
        for c in &plan {
            assert_eq!(env_of(c, "PADDLE_MASTER"), Some("127.0.0.1:4242"));
            assert_eq!(env_of(c, "PADDLE_NNODES"), Some("3"));
            assert_eq!(env_of(c, "PADDLE_JOB_ID"), Some("trial-1"));
        }
        assert_eq!(env_of(&plan[0], "PADDLE_SERVER_NUM"), Some("1"));
        assert_eq!(env_of(&plan[0], "POD_IP_DUMMY"), Some("127.0.0.1"));
        assert_eq!(env_of(&plan[1], "PADDLE_TRAINER_NUM"), Some("1"));
        assert_eq!(env_of(&plan[1], "PADDLE_SERVER_NUM"), None);
        assert_eq!(env_of(&plan[1], "POD_IP_DUMMY"), None);
    }

    #[test]
    fn a_collective_paddlejob_is_led_by_worker_0() {
        let job = json!({"kind": "PaddleJob", "spec": {"paddleReplicaSpecs": {
            "Worker": replica(2, "paddle", &["w"])}}});
        let plan = plan(&job, "paddle", 4242);
        assert_eq!(names(&plan), ["worker-0", "worker-1"]);
        assert_eq!(env_of(&plan[0], "POD_IP_DUMMY"), Some("127.0.0.1"));
        assert_eq!(env_of(&plan[1], "POD_IP_DUMMY"), None);
        assert!(
            plan.iter()
                .all(|c| env_of(c, "PADDLE_TRAINER_NUM").is_none()
                    && env_of(c, "PADDLE_MASTER") == Some("127.0.0.1:4242"))
        );
    }

    #[test]
    fn a_jaxjob_numbers_its_workers_from_the_coordinator() {
        let job = json!({"kind": "JAXJob", "spec": {"jaxReplicaSpecs": {
            "Worker": replica(3, "jax", &["python", "t.py"])}}});
        let plan = plan(&job, "jax", 4242);
        assert_eq!(names(&plan), ["worker-0", "worker-1", "worker-2"]);
        let ids: Vec<_> = plan
            .iter()
            .map(|c| env_of(c, "PROCESS_ID").unwrap())
            .collect();
        assert_eq!(ids, ["0", "1", "2"]);
        assert!(
            plan.iter()
                .all(|c| env_of(c, "COORDINATOR_ADDRESS") == Some("127.0.0.1")
                    && env_of(c, "COORDINATOR_PORT") == Some("4242")
                    && env_of(c, "NUM_PROCESSES") == Some("3"))
        );
    }

    #[test]
    fn an_mpijob_runs_its_launcher_alone() {
        let job = json!({"apiVersion": "kubeflow.org/v2beta1", "kind": "MPIJob", "spec": {"slotsPerWorker": 2, "mpiReplicaSpecs": {
            "Launcher": replica(1, "mpi-launcher", &["mpirun", "-np", "4", "python", "t.py"]),
            "Worker": {"replicas": 2, "template": {"spec": {"containers": [{"name": "mpi-worker"}]}}}}}});
        let plan = plan(&job, "mpi-launcher", 4242);
        assert_eq!(names(&plan), ["launcher"]);
        assert_eq!(plan[0].argv[0], "mpirun");
        assert_eq!(env_of(&plan[0], "K_MPI_JOB_ROLE"), Some("launcher"));
        assert_eq!(
            env_of(&plan[0], "OMPI_MCA_rmaps_base_oversubscribe"),
            Some("1")
        );
        assert_eq!(env_of(&plan[0], "OMPI_MCA_orte_default_hostfile"), None);
        assert_eq!(env_of(&plan[0], "USER_VAR"), Some("u"));
        // Another primary name: the launcher's first container still runs.
        assert_eq!(super::plan(&job, "other", 1).len(), 1);
        let no_launcher = json!({"kind": "MPIJob", "spec": {"mpiReplicaSpecs": {
            "Worker": replica(2, "mpi", &["sshd"])}}});
        assert!(super::plan(&no_launcher, "mpi", 1).is_empty());
    }

    #[test]
    fn the_default_container_runs_when_the_primary_is_elsewhere() {
        let job = json!({"kind": "TFJob", "spec": {"tfReplicaSpecs": {
            "Chief": replica(1, "metrics", &["c"]),
            "PS": replica(1, "tensorflow", &["ps"])}}});
        let plan = plan(&job, "metrics", 1);
        assert_eq!(names(&plan), ["chief-0", "ps-0"]);
        assert_eq!(plan[1].argv, ["ps"]);
    }

    #[test]
    fn a_replica_type_without_a_command_empties_the_plan_unless_it_has_none() {
        let without = |replicas: u64| {
            json!({"kind": "PyTorchJob", "spec": {"pytorchReplicaSpecs": {
                "Master": replica(1, "pytorch", &["m"]),
                "Worker": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "pytorch", "image": "x"}]}}}}}})
        };
        assert!(plan(&without(2), "pytorch", 1).is_empty());
        let plan_zero = plan(&without(0), "pytorch", 1);
        assert_eq!(names(&plan_zero), ["master-0"]);
        assert_eq!(env_of(&plan_zero[0], "WORLD_SIZE"), Some("1"));
        let empty_command = json!({"kind": "JAXJob", "spec": {"jaxReplicaSpecs": {
            "Worker": replica(2, "jax", &[])}}});
        assert!(plan(&empty_command, "jax", 1).is_empty());
        let too_many = json!({"kind": "JAXJob", "spec": {"jaxReplicaSpecs": {
            "Worker": replica(MAX_REPLICAS + 1, "jax", &["t"])}}});
        assert!(plan(&too_many, "jax", 1).is_empty());
    }

    fn arbitrary_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (0u64..5).prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            prop::sample::select(vec![
                "Master",
                "Worker",
                "Chief",
                "PS",
                "Evaluator",
                "Launcher",
                "replicas",
                "template",
                "spec",
                "containers",
                "name",
                "command",
                "args",
                "env",
                "tensorflow",
                "pytorch",
                "jax",
                "mpi",
                "xgboost",
                "paddle",
            ])
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            let keys = prop::sample::select(vec![
                "Master",
                "Worker",
                "Chief",
                "PS",
                "Evaluator",
                "Launcher",
                "replicas",
                "template",
                "spec",
                "containers",
                "name",
                "command",
                "args",
                "env",
                "value",
                "enableDynamicWorker",
                "metadata",
            ]);
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((keys, inner), 0..5).prop_map(|kv| Value::Object(
                    kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                )),
            ]
        })
    }

    /// Replica specs of the right shape with any counts, names and commands.
    fn replica_specs() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let rtype = prop::sample::select(vec![
            "Master",
            "Worker",
            "worker",
            "Chief",
            "PS",
            "Evaluator",
            "Launcher",
        ]);
        let replicas = prop_oneof![
            (0u64..4).prop_map(Value::from),
            Just(Value::Null),
            any::<i64>().prop_map(Value::from),
            Just(json!("2")),
        ];
        let container = (
            prop::sample::select(vec!["tensorflow", "pytorch", "jax", "mpi", "other"]),
            prop::option::of(prop::collection::vec("[a-z]{0,3}", 0..3)),
        )
            .prop_map(|(name, command)| match command {
                Some(command) => json!({"name": name, "command": command}),
                None => json!({"name": name}),
            });
        prop::collection::vec((rtype, replicas, container), 0..5).prop_map(|roles| {
            Value::Object(
                roles
                    .into_iter()
                    .map(|(rtype, replicas, container)| {
                        let spec = json!({"replicas": replicas,
                            "template": {"spec": {"containers": [container]}}});
                        (rtype.to_owned(), spec)
                    })
                    .collect(),
            )
        })
    }

    proptest::proptest! {
        #[test]
        fn plans_never_panic_on_arbitrary_workloads(
            kind in proptest::sample::select(vec![
                "PyTorchJob", "TrainJob", "TFJob", "XGBoostJob", "PaddleJob", "JAXJob", "MPIJob", "Job",
            ]),
            field in proptest::sample::select(vec![
                "pytorchReplicaSpecs", "tfReplicaSpecs", "xgbReplicaSpecs", "paddleReplicaSpecs",
                "jaxReplicaSpecs", "mpiReplicaSpecs", "trainer",
            ]),
            specs in proptest::prop_oneof![arbitrary_json(), replica_specs()],
            whole in arbitrary_json(),
            primary in proptest::sample::select(vec!["tensorflow", "pytorch", "main", "Worker"]),
            port in proptest::prop_oneof![proptest::strategy::Just(0u16), 1024u16..65000],
            dynamic in proptest::bool::ANY,
        ) {
            let job = json!({"kind": kind, "spec": {field: specs, "enableDynamicWorker": dynamic}});
            for workload in [&job, &whole] {
                let plan = plan(workload, primary, port);
                proptest::prop_assert!(plan.len() as u64 <= MAX_REPLICAS);
                // A plain workload's container may lack a command (the launch
                // refuses it later); a Kubeflow job's replicas never do.
                let distributed = workload["kind"].as_str().is_some_and(|k| k.ends_with("Job") && k != "Job");
                proptest::prop_assert!(plan.iter().all(|c| !c.name.is_empty() && !c.argv.is_empty()
                    || !distributed));
            }
        }
    }

    #[tokio::test]
    async fn the_log_limit_bounds_the_output_of_all_replicas_together() {
        let dir = std::env::temp_dir().join(format!("ktune-replicas-logs-{}", std::process::id()));
        let base = LaunchSpec {
            argv: Vec::new(),
            env: Vec::new(),
            trial_dir: dir.clone(),
            working_dir: std::env::temp_dir(),
            timeout: None,
            log_limit: Some(4096),
        };
        // Each writes 3000 bytes, under the limit alone but not together.
        let command = |name: &str| ReplicaCommand {
            name: name.to_owned(),
            argv: vec![
                "sh".into(),
                "-c".into(),
                "head -c 3000 /dev/zero; sleep 5".into(),
            ],
            env: Vec::new(),
        };
        let commands = [command("master-0"), command("worker-0")];
        let mut set = ReplicaSet::launch(&base, &commands).await.unwrap();
        let exit = tokio::time::timeout(Duration::from_secs(4), async {
            loop {
                if let Some(exit) = set.poll(Duration::from_secs(1)).await {
                    break exit;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert_eq!(exit.ok(), Some(Exit::LogLimitExceeded));
        let written: u64 = [dir.join("stdout.log"), dir.join("worker-0/stdout.log")]
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        assert_eq!(written, 4096);
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn a_failing_worker_fails_the_trial_and_stops_the_master() {
        let dir = std::env::temp_dir().join(format!("ktune-replicas-{}", std::process::id()));
        let base = LaunchSpec {
            argv: Vec::new(),
            env: Vec::new(),
            trial_dir: dir.clone(),
            working_dir: std::env::temp_dir(),
            timeout: None,
            log_limit: None,
        };
        let command = |name: &str, script: &str| ReplicaCommand {
            name: name.to_owned(),
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: Vec::new(),
        };
        let commands = [
            command("master-0", "sleep 30"),
            command("worker-0", "exit 3"),
        ];
        let mut set = ReplicaSet::launch(&base, &commands).await.unwrap();
        let started = std::time::Instant::now();
        let exit = loop {
            if let Some(exit) = set.poll(Duration::from_secs(1)).await {
                break exit;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(exit, Exit::Failed { code: 3 });
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the master was stopped, not waited for"
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
