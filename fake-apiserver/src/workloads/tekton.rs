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
use std::path::Path;
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
    let run_name = owner.name.clone();
    let pipeline_lookup = |k: &str| -> Option<String> {
        if k == "context.pipelineRun.name" {
            return Some(run_name.clone());
        }
        if let Some(p) = k.strip_prefix("params.") {
            return pipeline_params.get(p).cloned();
        }
        results.get(k).cloned()
    };
    let mut task_params = task.get("params").cloned().unwrap_or_else(|| json!([]));
    substitute(&mut task_params, "$(", ")", &pipeline_lookup);
    let mut values = params(spec.get("params"), "default");
    values.extend(params(Some(&task_params), "value"));
    let task_dir = dir.join(task_name);
    std::fs::create_dir_all(task_dir.join("results"))?;
    let step_lookup = |k: &str| -> Option<String> {
        if let Some(p) = k
            .strip_prefix("params.")
            .or_else(|| k.strip_prefix("inputs.params."))
        {
            return values.get(p).cloned();
        }
        if let Some(r) = k
            .strip_prefix("results.")
            .and_then(|r| r.strip_suffix(".path"))
        {
            return Some(
                task_dir
                    .join("results")
                    .join(r)
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        pipeline_lookup(k)
    };
    let mut containers = Vec::new();
    for (i, step) in spec
        .get("steps")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let mut step = step.clone();
        substitute(&mut step, "$(", ")", &step_lookup);
        let name = str_at(&step, "/name");
        let name = if name.is_empty() {
            format!("unnamed-{i}")
        } else {
            name.to_owned()
        };
        if let Some(source) = step.get("script").and_then(Value::as_str) {
            let argv = script_argv(&task_dir.join("scripts").join(&name), source, None)?;
            step["command"] = json!(argv);
            if let Some(m) = step.as_object_mut() {
                m.remove("script");
                m.remove("args");
            }
        }
        step["name"] = json!(format!("step-{name}"));
        containers.push(step);
    }
    let template = json!({
        "metadata": task.pointer("/taskSpec/metadata").cloned().unwrap_or_else(|| json!({})),
        "spec": {"restartPolicy": "Never", "containers": containers},
    });
    let labels = [
        ("tekton.dev/pipelineRun", owner.name.clone()),
        ("tekton.dev/pipeline", owner.name.clone()),
        ("tekton.dev/pipelineTask", task_name.to_owned()),
        ("tekton.dev/taskRun", format!("{}-{task_name}", owner.name)),
        ("tekton.dev/memberOf", "tasks".to_owned()),
        (
            "app.kubernetes.io/managed-by",
            "tekton-pipelines".to_owned(),
        ),
    ];
    let annotations = [(SEQUENTIAL, "true".to_owned())];
    Ok(owner.pod(
        &format!("{}-{task_name}-pod", owner.name),
        &template,
        &labels,
        &annotations,
    ))
}

fn condition(status: &str, reason: &str, message: &str) -> Value {
    json!({"type": "Succeeded", "status": status, "reason": reason, "message": message, "lastTransitionTime": now()})
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
    let progress = |done: usize, failed: usize| {
        format!(
            "Tasks Completed: {} (Failed: {failed}, Cancelled 0), Incomplete: {}, Skipped: 0",
            done + failed,
            total.saturating_sub(done + failed)
        )
    };
    owner.set_status(&ctx, json!({"conditions": [condition("Unknown", "Running", &progress(0, 0))], "startTime": start}));
    let dir = scratch(&owner);
    let mut results: HashMap<String, String> = HashMap::new();
    let mut succeeded: HashSet<String> = HashSet::new();
    let mut failed = 0usize;
    loop {
        let wave: Vec<&Value> = tasks
            .iter()
            .filter(|t| !succeeded.contains(str_at(t, "/name")))
            .filter(|t| dependencies(t).iter().all(|d| succeeded.contains(d)))
            .collect();
        if wave.is_empty() || failed > 0 {
            break;
        }
        let mut group = Group::default();
        for (i, task) in wave.iter().enumerate() {
            match task_pod(&owner, task, &pipeline_params, &results, &dir) {
                Ok(pod) => group.start(&ctx, i, pod),
                Err(e) => {
                    tracing::warn!(error = %e, "preparing a Tekton task");
                    failed += 1;
                }
            }
        }
        while let Some((i, end)) = group.next().await {
            let Some(task) = wave.get(i) else { continue };
            let name = str_at(task, "/name").to_owned();
            if end != PodEnd::Succeeded {
                failed += 1;
                continue;
            }
            for r in task
                .pointer("/taskSpec/results")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let result = str_at(r, "/name");
                let path = dir.join(&name).join("results").join(result);
                if let Ok(value) = std::fs::read_to_string(path) {
                    results.insert(format!("tasks.{name}.results.{result}"), value);
                }
            }
            succeeded.insert(name);
        }
        if !owner.alive(&ctx) {
            return;
        }
        owner.set_status(&ctx, json!({"conditions": [condition("Unknown", "Running", &progress(succeeded.len(), failed))], "startTime": start}));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let last = if failed == 0 && succeeded.len() == total {
        condition("True", "Succeeded", &progress(succeeded.len(), 0))
    } else {
        condition("False", "Failed", &progress(succeeded.len(), failed))
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
