//! A trial as a distributed training job on one machine: the workload's
//! replicas (a PyTorchJob's Master and Workers, a TrainJob's nodes) each run
//! as a local process with the environment the Kubeflow operators inject —
//! `MASTER_ADDR=127.0.0.1`, a free `MASTER_PORT`, `WORLD_SIZE`, `RANK` and
//! the `PET_*` variables torchrun reads. The primary replica's output is
//! the trial's; the trial fails as soon as any replica fails.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::local::{Exit, LaunchSpec, RunnerError, RunningTrial, launch};
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

/// A free TCP port on 127.0.0.1 for the rendezvous (the kernel picks it).
#[must_use]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(29_500, |a| a.port())
}

fn count(value: Option<&Value>) -> u64 {
    value.and_then(Value::as_u64).unwrap_or(1).max(1)
}

fn torch_env(world: u64, rank: u64, port: u16, nproc: Option<&Value>) -> Vec<(String, String)> {
    let mut env = vec![
        ("PYTHONUNBUFFERED".to_owned(), "1".to_owned()),
        ("MASTER_ADDR".to_owned(), "127.0.0.1".to_owned()),
        ("MASTER_PORT".to_owned(), port.to_string()),
        ("PET_MASTER_ADDR".to_owned(), "127.0.0.1".to_owned()),
        ("PET_MASTER_PORT".to_owned(), port.to_string()),
        ("WORLD_SIZE".to_owned(), world.to_string()),
        ("RANK".to_owned(), rank.to_string()),
        ("PET_NNODES".to_owned(), world.to_string()),
        ("PET_NODE_RANK".to_owned(), rank.to_string()),
    ];
    if let Some(n) = nproc {
        let text = n.as_str().map_or_else(|| n.to_string(), str::to_owned);
        env.push(("PET_NPROC_PER_NODE".to_owned(), text));
    }
    env
}

/// The processes a rendered workload describes, primary first; empty when
/// it has no container named `primary` with a command.
#[must_use]
pub fn plan(workload: &Value, primary: &str, port: u16) -> Vec<ReplicaCommand> {
    let kind = workload
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match kind {
        "PyTorchJob" => pytorch(workload, primary, port),
        "TrainJob" => trainjob(workload, port),
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

fn pytorch(workload: &Value, primary: &str, port: u16) -> Vec<ReplicaCommand> {
    let Some(specs) = workload.pointer("/spec/pytorchReplicaSpecs") else {
        return Vec::new();
    };
    // The Master is rank 0; without one, Worker 0 is (the operator's rule).
    let roles: Vec<(&str, &Value)> = ["Master", "Worker"]
        .iter()
        .filter_map(|role| specs.get(*role).map(|s| (*role, s)))
        .collect();
    let world: u64 = roles.iter().map(|(_, s)| count(s.get("replicas"))).sum();
    let nproc = workload.pointer("/spec/nprocPerNode");
    let mut rank = 0;
    let mut out = Vec::new();
    for (role, spec) in roles {
        let Some(container) = spec
            .get("template")
            .and_then(|t| primary_container(t, primary))
        else {
            continue;
        };
        for index in 0..count(spec.get("replicas")) {
            let mut env = container_env(container);
            env.extend(torch_env(world, rank, port, nproc));
            out.push(ReplicaCommand {
                name: format!("{}-{index}", role.to_lowercase()),
                argv: container_argv(container),
                env,
            });
            rank += 1;
        }
    }
    out
}

fn trainjob(workload: &Value, port: u16) -> Vec<ReplicaCommand> {
    let Some(trainer) = workload.pointer("/spec/trainer") else {
        return Vec::new();
    };
    let nodes = count(trainer.get("numNodes"));
    let argv = container_argv(trainer);
    if argv.is_empty() {
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

/// The running processes of one trial; the first is the primary.
#[derive(Debug)]
pub struct ReplicaSet {
    replicas: Vec<RunningTrial>,
    ended: Vec<Option<Exit>>,
}

impl ReplicaSet {
    /// Starts every replica: the primary in `base.trial_dir`, the others in
    /// sub-folders named after their role. If one cannot start, those
    /// already started are stopped.
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
        let mut replicas = Vec::with_capacity(commands.len());
        for (i, command) in commands.iter().enumerate() {
            let mut spec = base.clone();
            spec.argv.clone_from(&command.argv);
            spec.env.extend(command.env.iter().cloned());
            if i > 0 {
                spec.trial_dir = base.trial_dir.join(&command.name);
            }
            match launch(&spec) {
                Ok(r) => replicas.push(r),
                Err(e) => {
                    for r in &mut replicas {
                        r.stop(Duration::from_secs(1)).await;
                    }
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

    /// Stops every replica still running.
    pub async fn stop(&mut self, grace: Duration) -> Exit {
        for (replica, ended) in self.replicas.iter_mut().zip(&self.ended) {
            if ended.is_none() {
                replica.stop(grace).await;
            }
        }
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
