//! Argo `Workflow` (`argoproj.io/v1alpha1`): runs the `entrypoint`
//! template — `container` and `script` templates as one pod each (the
//! user's container renamed `main`, as Argo's executor names it; a script
//! written to a file and appended to `command`), `steps` templates group
//! after group — and moves `status.phase` Running → Succeeded or Failed.
//! Pods carry `workflows.argoproj.io/workflow: <workflow>` and their
//! template's `metadata.labels` (how Katib singles out the training step).
//!
//! Parameters: `{{inputs.parameters.x}}` from a step's arguments,
//! `{{workflow.parameters.x}}` from `spec.arguments`, `{{workflow.name}}`
//! and `{{steps.<step>.outputs.result}}` (a finished step's trimmed
//! standard output). Not simulated: `dag` templates, artifacts, retries,
//! `when`, loops. The steps of one parallel group run side by side when
//! they are all container or script templates, else one after another.

use super::{Ctx, Group, Owner, now, scratch, script_argv, substitute};
use crate::pod::{PodEnd, str_at};
use crate::resource::ResourceType;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// What one workflow's run has seen so far.
struct Run<'a> {
    ctx: &'a Arc<Ctx>,
    owner: &'a Owner,
    templates: HashMap<String, Value>,
    workflow_params: HashMap<String, String>,
    /// Standard output of finished steps, by step name.
    results: HashMap<String, String>,
    nodes: serde_json::Map<String, Value>,
    pods: usize,
    message: String,
}

type Step<'b> = Pin<Box<dyn Future<Output = bool> + Send + 'b>>;

impl Run<'_> {
    fn lookup(&self, inputs: &HashMap<String, String>, key: &str) -> Option<String> {
        if key == "workflow.name" {
            return Some(self.owner.name.clone());
        }
        if let Some(p) = key.strip_prefix("inputs.parameters.") {
            return inputs.get(p).cloned();
        }
        if let Some(p) = key.strip_prefix("workflow.parameters.") {
            return self.workflow_params.get(p).cloned();
        }
        key.strip_prefix("steps.")
            .and_then(|r| r.strip_suffix(".outputs.result"))
            .and_then(|step| self.results.get(step).cloned())
    }

    /// Runs template `name` as step `step`; whether it succeeded.
    fn template<'b>(
        &'b mut self,
        name: &'b str,
        step: &'b str,
        inputs: HashMap<String, String>,
    ) -> Step<'b> {
        Box::pin(async move {
            let Some(template) = self.templates.get(name).cloned() else {
                self.message = format!("templates.{name} not found");
                return false;
            };
            if let Some(groups) = template.get("steps").and_then(Value::as_array) {
                for group in groups {
                    let steps: Vec<(String, String, HashMap<String, String>)> = group
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|s| {
                            let mut s = s.clone();
                            substitute(&mut s, "{{", "}}", &|k| self.lookup(&inputs, k));
                            let params = s
                                .pointer("/arguments/parameters")
                                .and_then(Value::as_array)
                                .into_iter()
                                .flatten()
                                .map(|p| {
                                    let value = p.get("value").map_or_else(String::new, |v| {
                                        v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                                    });
                                    (str_at(p, "/name").to_owned(), value)
                                })
                                .collect();
                            let (step, tname) = (str_at(&s, "/name"), str_at(&s, "/template"));
                            (step.to_owned(), tname.to_owned(), params)
                        })
                        .collect();
                    let leaves = steps.iter().all(|(_, t, _)| {
                        self.templates
                            .get(t)
                            .is_some_and(|t| t.get("steps").is_none())
                    });
                    let failed = if leaves && steps.len() > 1 {
                        self.parallel(steps).await
                    } else {
                        let mut failed = None;
                        for (step, tname, params) in steps {
                            if !self.template(&tname, &step, params).await {
                                failed = Some(step);
                                break;
                            }
                        }
                        failed
                    };
                    if let Some(step) = failed {
                        self.message = format!("child '{step}' failed");
                        return false;
                    }
                }
                return true;
            }
            let Some(pod) = self.leaf_pod(name, step, template, &inputs) else {
                return false;
            };
            let started = now();
            let end = match self.ctx.pods.create(&self.owner.ns, pod.1.clone()) {
                Ok(created) => self.ctx.pods.run(created, None).await,
                Err(e) => {
                    tracing::warn!(step, error = %e, "cannot create an Argo step's pod");
                    PodEnd::Failed
                }
            };
            self.record(name, step, &pod.0, end, &started)
        })
    }

    /// Runs the leaf steps of one parallel group side by side; the first
    /// that failed, if one did.
    async fn parallel(
        &mut self,
        steps: Vec<(String, String, HashMap<String, String>)>,
    ) -> Option<String> {
        let mut group = Group::default();
        let mut started = Vec::new();
        for (i, (step, tname, params)) in steps.iter().enumerate() {
            let Some(template) = self.templates.get(tname).cloned() else {
                self.message = format!("templates.{tname} not found");
                return Some(step.clone());
            };
            let Some((pod_name, pod)) = self.leaf_pod(tname, step, template, params) else {
                return Some(step.clone());
            };
            started.push((tname.clone(), step.clone(), pod_name, now()));
            group.start(self.ctx, i, pod);
        }
        let mut ends = vec![PodEnd::Failed; started.len()];
        while let Some((i, end)) = group.next().await {
            if let Some(slot) = ends.get_mut(i) {
                *slot = end;
            }
        }
        let mut failed = None;
        for ((tname, step, pod_name, at), end) in started.into_iter().zip(ends) {
            if !self.record(&tname, &step, &pod_name, end, &at) && failed.is_none() {
                failed = Some(step);
            }
        }
        failed
    }

    /// The pod (and its name) of a `container` or `script` template run as
    /// step `step`; `None` (with the message set) when it cannot run.
    fn leaf_pod(
        &mut self,
        name: &str,
        step: &str,
        mut template: Value,
        inputs: &HashMap<String, String>,
    ) -> Option<(String, Value)> {
        substitute(&mut template, "{{", "}}", &|k| self.lookup(inputs, k));
        self.pods += 1;
        let pod_name = format!("{}-{name}-{}", self.owner.name, self.pods);
        let mut container = if let Some(script) = template.get("script") {
            let mut c = script.clone();
            let path = scratch(self.owner).join(&pod_name);
            let source = str_at(script, "/source");
            match script_argv(&path, source, script.get("command")) {
                Ok(argv) => c["command"] = json!(argv),
                Err(e) => {
                    self.message = format!("writing the script of {step}: {e}");
                    return None;
                }
            }
            if let Some(m) = c.as_object_mut() {
                m.remove("source");
            }
            c
        } else if let Some(c) = template.get("container") {
            c.clone()
        } else {
            self.message =
                format!("template {name}: only container, script and steps templates run here");
            return None;
        };
        container["name"] = json!("main");
        let pod_template = json!({
            "metadata": template.get("metadata").cloned().unwrap_or_else(|| json!({})),
            "spec": {"restartPolicy": "Never", "containers": [container]},
        });
        let labels = [
            ("workflows.argoproj.io/workflow", self.owner.name.clone()),
            ("workflows.argoproj.io/completed", "false".to_owned()),
        ];
        let node_name = format!("{}.{step}", self.owner.name);
        let annotations = [("workflows.argoproj.io/node-name", node_name.clone())];
        let pod = self
            .owner
            .pod(&pod_name, &pod_template, &labels, &annotations);
        Some((pod_name, pod))
    }

    /// Records how step `step` (template `name`, pod `pod_name`) ended:
    /// its output for `{{steps.<step>.outputs.result}}` and its node.
    fn record(
        &mut self,
        name: &str,
        step: &str,
        pod_name: &str,
        end: PodEnd,
        started: &str,
    ) -> bool {
        let ok = end == PodEnd::Succeeded;
        let output = self.ctx.pods.log(&self.owner.ns, pod_name, "main");
        self.results
            .insert(step.to_owned(), output.trim().to_owned());
        let node_name = format!("{}.{step}", self.owner.name);
        self.nodes.insert(
            pod_name.to_owned(),
            json!({"id": pod_name, "name": node_name, "displayName": step, "type": "Pod", "templateName": name, "phase": if ok { "Succeeded" } else { "Failed" }, "startedAt": started, "finishedAt": now()}),
        );
        ok
    }
}

/// Runs one Workflow to its end.
pub(crate) async fn run(ctx: Arc<Ctx>, rt: ResourceType, workflow: Value) {
    let owner = Owner::new(rt, &workflow);
    let started = now();
    owner.set_status(
        &ctx,
        json!({"phase": "Running", "startedAt": started, "finishedAt": null}),
    );
    let templates = workflow
        .pointer("/spec/templates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| (str_at(t, "/name").to_owned(), t.clone()))
        .collect();
    let workflow_params = workflow
        .pointer("/spec/arguments/parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            (
                str_at(p, "/name").to_owned(),
                str_at(p, "/value").to_owned(),
            )
        })
        .collect();
    let mut run = Run {
        ctx: &ctx,
        owner: &owner,
        templates,
        workflow_params,
        results: HashMap::new(),
        nodes: serde_json::Map::new(),
        pods: 0,
        message: String::new(),
    };
    let entry = str_at(&workflow, "/spec/entrypoint").to_owned();
    let ok = run.template(&entry, &entry, HashMap::new()).await;
    if !owner.alive(&ctx) {
        return;
    }
    let (nodes, message) = (std::mem::take(&mut run.nodes), run.message.clone());
    let _ = std::fs::remove_dir_all(scratch(&owner));
    let mut status = json!({
        "phase": if ok { "Succeeded" } else { "Failed" },
        "startedAt": started,
        "finishedAt": now(),
        "nodes": nodes,
    });
    if !ok {
        status["message"] = json!(message);
    }
    owner.set_status(&ctx, status);
}
