//! Tekton `PipelineRun` (`tekton.dev/v1` and `v1beta1`) with an inline
//! `pipelineSpec`: each task's `taskSpec` runs as one pod whose containers
//! are its steps (`step-<name>`), run in order as Tekton's entrypoint
//! wrapper orders them; tasks run in waves as their `runAfter` and result
//! references allow. Pods carry `tekton.dev/pipelineRun`,
//! `tekton.dev/pipelineTask` and `tekton.dev/taskRun`. The run's condition
//! `Succeeded` goes Unknown (Running) → True (Succeeded) or False (Failed).
//!
//! Parameters: `$(params.x)` (pipeline parameters in task parameters, task
//! parameters in steps), `$(tasks.<task>.results.<r>)`,
//! `$(results.<r>.path)` (a file in a per-run scratch folder) and
//! `$(context.pipelineRun.name)`. Not simulated: `pipelineRef`/`taskRef`
//! (the run fails as `CouldntGetPipeline`), workspaces, `when`, `finally`,
//! retries; no `TaskRun` objects are created.

use super::{Ctx, Group, Owner, now, scratch, script_argv, substitute};
use crate::pod::{PodEnd, SEQUENTIAL, str_at};
use crate::resource::{ResourceType, string_array};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

/// `name → value` of a params list (`value`, else `default`).
fn params(list: Option<&Value>, key: &str) -> HashMap<String, String> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| Some((str_at(p, "/name").to_owned(), text(p.get(key)?))))
        .collect()
}

/// The tasks a task waits for: `runAfter` and those whose results it reads.
fn dependencies(task: &Value) -> HashSet<String> {
    let mut deps: HashSet<String> = string_array(task.get("runAfter"));
    let mut rest = task.get("params").map(Value::to_string).unwrap_or_default();
    while let Some(i) = rest.find("$(tasks.") {
        rest = rest[i + 8..].to_owned();
        if let Some(name) = rest.split('.').next() {
            deps.insert(name.to_owned());
        }
    }
    deps
}

/// What `$(…)` references resolve to in one task of a run.
struct Scope<'a> {
    run_name: &'a str,
    pipeline_params: &'a HashMap<String, String>,
    /// `tasks.<task>.results.<r>` of the tasks done.
    results: &'a HashMap<String, String>,
    /// The task's parameters (its own defaults, then what the pipeline passes).
    task_params: HashMap<String, String>,
    /// The task's scratch folder (its `results/`, its scripts).
    task_dir: PathBuf,
}

impl Scope<'_> {
    /// A reference in the pipeline's task list: the run's name, a
    /// pipeline parameter, an earlier task's result.
    fn pipeline(&self, k: &str) -> Option<String> {
        if k == "context.pipelineRun.name" {
            return Some(self.run_name.to_owned());
        }
        if let Some(p) = k.strip_prefix("params.") {
            return self.pipeline_params.get(p).cloned();
        }
        self.results.get(k).cloned()
    }

    /// A reference in a step: a task parameter, a result's path, else as
    /// in the pipeline.
    fn step(&self, k: &str) -> Option<String> {
        if let Some(p) = k
            .strip_prefix("params.")
            .or_else(|| k.strip_prefix("inputs.params."))
        {
            return self.task_params.get(p).cloned();
        }
        if let Some(r) = k
            .strip_prefix("results.")
            .and_then(|r| r.strip_suffix(".path"))
        {
            let path = self.task_dir.join("results").join(r);
            return Some(path.to_string_lossy().into_owned());
        }
        self.pipeline(k)
    }
}

/// A task's steps as containers (`step-<name>`, scripts written out),
/// their references resolved.
fn steps(spec: &Value, scope: &Scope<'_>) -> std::io::Result<Vec<Value>> {
    let mut containers = Vec::new();
    for (i, step) in spec
        .get("steps")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let mut step = step.clone();
        substitute(&mut step, "$(", ")", &|k| scope.step(k));
        let name = match str_at(&step, "/name") {
            "" => format!("unnamed-{i}"),
            name => name.to_owned(),
        };
        if let Some(source) = step.get("script").and_then(Value::as_str) {
            let script = scope.task_dir.join("scripts").join(&name);
            step["command"] = json!(script_argv(&script, source, None)?);
            if let Some(m) = step.as_object_mut() {
                m.remove("script");
                m.remove("args");
            }
        }
        step["name"] = json!(format!("step-{name}"));
        containers.push(step);
    }
    Ok(containers)
}

/// The labels Tekton gives a task's pod.
fn labels(owner: &Owner, task_name: &str) -> [(&'static str, String); 6] {
    [
        ("tekton.dev/pipelineRun", owner.name.clone()),
        ("tekton.dev/pipeline", owner.name.clone()),
        ("tekton.dev/pipelineTask", task_name.to_owned()),
        ("tekton.dev/taskRun", format!("{}-{task_name}", owner.name)),
        ("tekton.dev/memberOf", "tasks".to_owned()),
        (
            "app.kubernetes.io/managed-by",
            "tekton-pipelines".to_owned(),
        ),
    ]
}

/// The pod of one task.
fn task_pod(
    owner: &Owner,
    task: &Value,
    pipeline_params: &HashMap<String, String>,
    results: &HashMap<String, String>,
    dir: &Path,
) -> std::io::Result<Value> {
    let task_name = str_at(task, "/name");
    let spec = task.get("taskSpec").cloned().unwrap_or_else(|| json!({}));
    let mut scope = Scope {
        run_name: &owner.name,
        pipeline_params,
        results,
        task_params: HashMap::new(),
        task_dir: dir.join(task_name),
    };
    let mut passed = task.get("params").cloned().unwrap_or_else(|| json!([]));
    substitute(&mut passed, "$(", ")", &|k| scope.pipeline(k));
    let mut values = params(spec.get("params"), "default");
    values.extend(params(Some(&passed), "value"));
    scope.task_params = values;
    std::fs::create_dir_all(scope.task_dir.join("results"))?;
    let template = json!({
        "metadata": task.pointer("/taskSpec/metadata").cloned().unwrap_or_else(|| json!({})),
        "spec": {"restartPolicy": "Never", "containers": steps(&spec, &scope)?},
    });
    let annotations = [(SEQUENTIAL, "true".to_owned())];
    Ok(owner.pod(
        &format!("{}-{task_name}-pod", owner.name),
        &template,
        &labels(owner, task_name),
        &annotations,
    ))
}

fn condition(status: &str, reason: &str, message: &str) -> Value {
    json!({"type": "Succeeded", "status": status, "reason": reason, "message": message, "lastTransitionTime": now()})
}

/// The condition's message: how many tasks are done, failed and left.
fn progress(total: usize, done: usize, failed: usize) -> String {
    format!(
        "Tasks Completed: {} (Failed: {failed}, Cancelled 0), Incomplete: {}, Skipped: 0",
        done + failed,
        total.saturating_sub(done + failed)
    )
}

/// A run's progress through its tasks.
struct Run<'a> {
    ctx: &'a Arc<Ctx>,
    owner: &'a Owner,
    pipeline_params: HashMap<String, String>,
    dir: PathBuf,
    results: HashMap<String, String>,
    succeeded: HashSet<String>,
    failed: usize,
}

impl Run<'_> {
    /// Runs one wave of tasks (those whose dependencies have succeeded)
    /// together, keeping their results.
    async fn wave(&mut self, wave: &[&Value]) {
        let mut group = Group::default();
        for (i, task) in wave.iter().enumerate() {
            match task_pod(
                self.owner,
                task,
                &self.pipeline_params,
                &self.results,
                &self.dir,
            ) {
                Ok(pod) => group.start(self.ctx, i, pod),
                Err(e) => {
                    tracing::warn!(error = %e, "preparing a Tekton task");
                    self.failed += 1;
                }
            }
        }
        while let Some((i, end)) = group.next().await {
            let Some(task) = wave.get(i) else { continue };
            if end != PodEnd::Succeeded {
                self.failed += 1;
                continue;
            }
            self.keep_results(task);
            self.succeeded.insert(str_at(task, "/name").to_owned());
        }
    }

    /// Reads the results a finished task wrote.
    fn keep_results(&mut self, task: &Value) {
        let name = str_at(task, "/name");
        for r in task
            .pointer("/taskSpec/results")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let result = str_at(r, "/name");
            let path = self.dir.join(name).join("results").join(result);
            if let Ok(value) = std::fs::read_to_string(path) {
                self.results
                    .insert(format!("tasks.{name}.results.{result}"), value);
            }
        }
    }
}

/// Runs one PipelineRun to its end.
pub(crate) async fn run(ctx: Arc<Ctx>, rt: ResourceType, pipeline_run: Value) {
    let owner = Owner::new(rt, &pipeline_run);
    let start = now();
    let Some(pipeline) = pipeline_run.pointer("/spec/pipelineSpec").cloned() else {
        let message = "only an inline pipelineSpec runs on the fake cluster";
        owner.set_status(&ctx, json!({"conditions": [condition("False", "CouldntGetPipeline", message)], "startTime": start, "completionTime": now()}));
        return;
    };
    let mut pipeline_params = params(pipeline.get("params"), "default");
    pipeline_params.extend(params(pipeline_run.pointer("/spec/params"), "value"));
    let tasks: Vec<Value> = pipeline
        .get("tasks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let total = tasks.len();
    let running = |done, failed| json!({"conditions": [condition("Unknown", "Running", &progress(total, done, failed))], "startTime": start});
    owner.set_status(&ctx, running(0, 0));
    let mut run = Run {
        ctx: &ctx,
        owner: &owner,
        pipeline_params,
        dir: scratch(&owner),
        results: HashMap::new(),
        succeeded: HashSet::new(),
        failed: 0,
    };
    loop {
        let wave: Vec<&Value> = tasks
            .iter()
            .filter(|t| !run.succeeded.contains(str_at(t, "/name")))
            .filter(|t| dependencies(t).iter().all(|d| run.succeeded.contains(d)))
            .collect();
        if wave.is_empty() || run.failed > 0 {
            break;
        }
        run.wave(&wave).await;
        if !owner.alive(&ctx) {
            return;
        }
        owner.set_status(&ctx, running(run.succeeded.len(), run.failed));
    }
    let _ = std::fs::remove_dir_all(&run.dir);
    let (done, failed) = (run.succeeded.len(), run.failed);
    let last = if failed == 0 && done == total {
        condition("True", "Succeeded", &progress(total, done, 0))
    } else {
        condition("False", "Failed", &progress(total, done, failed))
    };
    owner.set_status(
        &ctx,
        json!({"conditions": [last], "startTime": start, "completionTime": now()}),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_params_reach_the_steps() {
        let rt = crate::resource::builtins().remove(0);
        let owner = Owner::new(rt, &json!({"metadata": {"name": "pr", "uid": "u"}}));
        let task = json!({"name": "train", "params": [{"name": "lr", "value": "$(params.lr)"}, {"name": "n", "value": "$(tasks.prepare.results.n)"}],
            "taskSpec": {"params": [{"name": "lr"}, {"name": "n"}], "steps": [{"name": "s", "command": ["echo", "$(params.lr) $(params.n)"]}]}});
        let pipeline = HashMap::from([("lr".to_owned(), "0.5".to_owned())]);
        let results = HashMap::from([("tasks.prepare.results.n".to_owned(), "42".to_owned())]);
        let dir = std::env::temp_dir().join("ktune-fake-tekton-unit");
        let pod = task_pod(&owner, &task, &pipeline, &results, &dir).unwrap();
        assert_eq!(
            pod["spec"]["containers"][0]["command"],
            json!(["echo", "0.5 42"])
        );
        assert_eq!(dependencies(&task), HashSet::from(["prepare".to_owned()]));
    }
}
