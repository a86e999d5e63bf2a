//! A trial as a distributed training job on one machine: the workload's
//! replicas (as the trial-kind table, `ktune-kinds`, lists them) each run
//! as a local process with the environment their operator injects (the
//! table's rules), every address being `127.0.0.1` and every port one the
//! kernel reports free. The replica that leads (the one whose pod Katib's
//! default primary-pod labels select) comes first: its output is the
//! trial's, and the trial fails as soon as any replica fails.
//!
//! | kind | replicas run, primary first |
//! |---|---|
//! | `PyTorchJob`, `XGBoostJob`, `PaddleJob` | Master, Workers (else Worker 0 leads) |
//! | `TrainJob`, JobSet-shaped kinds | each replicated job's pods in order (a TrainJob's `numNodes` nodes) |
//! | `TFJob` | Chief, Master, PS, Workers, Evaluators (without Chief or Master, Worker 0 leads) |
//! | `JAXJob` | Workers, index 0 leading |
//! | `MPIJob` | the Launcher only: its `mpirun` starts the ranks itself |
//!
//! Any other kind runs its primary container alone.
//!
//! A replica's container is the one named `primaryContainerName`, else
//! its kind's default (`pytorch`, …). A replica type that would run but
//! has no such container with a command makes the whole plan empty (the
//! trial then fails as having no command): on a cluster that pod would run
//! its image's entrypoint, which ktune cannot, and leaving it out would
//! hang the others' rendezvous.

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use ktune_kinds::{Replica, TrialKind};
use serde_json::Value;

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
pub use ktune_kinds::MAX_REPLICAS;

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

/// The processes a rendered workload describes, primary first (see the
/// module's table). Empty when there is nothing runnable: no container
/// named `primary` (or the kind's default container) with a command, a
/// replica type that would run without one, or more than
/// [`MAX_REPLICAS`] processes. `port` is the rendezvous port (the
/// primary's); further ports are asked of the kernel, unless `port` is 0.
#[must_use]
pub fn plan(workload: &Value, primary: &str, port: u16) -> Vec<ReplicaCommand> {
    let Some(kind) = ktune_kinds::of_workload(workload) else {
        return alone(workload, primary);
    };
    match kind.replicas(workload) {
        // Jobs and workflows: their pods are not listed up front.
        Ok(replicas) if replicas.is_empty() => alone(workload, primary),
        Ok(replicas) => commands(kind, workload, &replicas, primary, port).unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// The primary container alone.
fn alone(workload: &Value, primary: &str) -> Vec<ReplicaCommand> {
    primary_container(workload, primary)
        .map(|c| {
            vec![ReplicaCommand {
                name: "main".to_owned(),
                argv: container_argv(c),
                env: container_env(c),
            }]
        })
        .unwrap_or_default()
}

/// A command per replica that starts something (idle ones aside), each
/// with its container's environment and its operator's variables; `None`
/// when a replica has no container to run.
fn commands(
    kind: &TrialKind,
    workload: &Value,
    replicas: &[Replica],
    primary: &str,
    port: u16,
) -> Option<Vec<ReplicaCommand>> {
    let ports = ports(port, kind.environment.ports(replicas));
    let variables = kind.environment.variables(workload, replicas, &ports);
    replicas
        .iter()
        .zip(variables)
        .filter(|(replica, _)| !replica.idle)
        .map(|(replica, variables)| {
            let container = main_container(kind, &replica.template, primary)?;
            let mut env = container_env(container);
            let name = container.get("name").and_then(Value::as_str);
            if kind
                .environment
                .container()
                .is_none_or(|only| name == Some(only))
            {
                env.extend(variables.into_iter().map(|v| (v.name, v.value)));
            }
            Some(ReplicaCommand {
                name: kind.replica_name(replica),
                argv: container_argv(container),
                env,
            })
        })
        .collect()
}

/// The container of a pod template that runs the replica: the first of
/// the kind's candidates (the one named `primary`, its default, its
/// first) that has a command.
fn main_container<'a>(kind: &TrialKind, template: &'a Value, primary: &str) -> Option<&'a Value> {
    kind.container
        .candidates(primary)
        .into_iter()
        .find_map(|name| {
            match name {
                Some(name) => primary_container(template, name),
                None => template.pointer("/spec/containers/0"),
            }
            .filter(|c| !container_argv(c).is_empty())
        })
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

    #[test]
    fn a_jobset_runs_every_pod_with_its_completion_index() {
        let job = |name: &str, jobs: u64, pods: u64, command: &str| {
            json!({"name": name, "replicas": jobs, "template": {"spec": {"completions": pods,
                "template": {"spec": {"containers": [{"name": "c", "command": [command]}]}}}}})
        };
        let js = json!({"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
            "spec": {"replicatedJobs": [job("driver", 1, 1, "d"), job("workers", 1, 2, "w")]}});
        let plan = plan(&js, "main", 4242);
        assert_eq!(names(&plan), ["driver-0-0", "workers-0-0", "workers-0-1"]);
        assert_eq!(
            plan[0].argv,
            ["d"],
            "the first container when none is named main"
        );
        let indexes: Vec<_> = plan
            .iter()
            .map(|c| env_of(c, "JOB_COMPLETION_INDEX").unwrap())
            .collect();
        assert_eq!(indexes, ["0", "0", "1"]);
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
