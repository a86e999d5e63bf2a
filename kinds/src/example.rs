//! A small workload of each kind, for tests and documentation: every test
//! that runs "each kind of the table" builds its workloads here, so a kind
//! added to the table is exercised by them at once.

use serde_json::{Map, Value, json};

use crate::TrialKind;
use crate::replicas::Replicas;

impl TrialKind {
    /// A workload of this kind named `name` in which every replica runs
    /// `container`: one replica of the first lead type and two of every
    /// other type (further lead types left out); for JobSet-shaped kinds a
    /// single pod beside two Jobs of two pods (a TrainJob: two nodes).
    /// `None` for kinds whose pods come from a Job's template or a
    /// workflow's steps.
    #[must_use]
    pub fn example(&self, name: &str, container: &Value) -> Option<Value> {
        let template = json!({"spec": {"containers": [container]}});
        let spec = match self.replicas {
            Replicas::Typed(typed) => {
                let lead = typed.lead.types.first().copied();
                let specs: Map<String, Value> = typed
                    .types
                    .iter()
                    .filter(|t| Some(**t) == lead || !typed.lead.types.contains(t))
                    .map(|t| {
                        let n = if Some(*t) == lead { 1 } else { 2 };
                        (
                            (*t).to_owned(),
                            json!({"replicas": n, "template": template}),
                        )
                    })
                    .collect();
                json!({ typed.field: specs })
            }
            Replicas::ReplicatedJobs => json!({"replicatedJobs": [
                {"name": "driver", "template": {"spec": {"template": template}}},
                {"name": "workers", "replicas": 2, "template": {"spec": {"parallelism": 2, "completions": 2, "template": template}}},
            ]}),
            Replicas::Trainer => {
                let mut trainer = container.clone();
                if let Some(fields) = trainer.as_object_mut() {
                    fields.remove("name");
                    fields.insert("numNodes".to_owned(), json!(2));
                }
                json!({"trainer": trainer})
            }
            Replicas::Job | Replicas::Workflow(_) => return None,
        };
        Some(json!({
            "apiVersion": self.api_version(),
            "kind": self.kind,
            "metadata": {"name": name},
            "spec": spec,
        }))
    }
}
