//! PBT's checkpoints in a cluster, as Katib keeps them: one
//! PersistentVolumeClaim per experiment, `<experiment>-pbt`
//! (`ReadWriteMany`, 5Gi — Katib's defaults — owned by the Experiment, so
//! deleting it deletes them), and each trial's primary container mounts
//! the folder `<experiment>/<trial>` of it at the path the algorithm's
//! `suggestion_trial_dir` names. A child trial's pod first runs an init
//! container, `ktune copy-checkpoint`, that starts its folder as a copy of
//! its parent's (made beside it and renamed into place, so a pod killed
//! mid-copy leaves no half checkpoint; a folder that holds a checkpoint
//! already — the trial's own, after a pod restart — is kept).
//!
//! Everything lives on the volume and in the trials' labels, so a
//! restarted controller loses no generation.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use serde_json::{Value, json};

use crate::metrics::cluster::SidecarImage;
use crate::runner::{Checkpoint, pod_spec};

/// The pod volume holding the claim.
pub const VOLUME: &str = "ktune-checkpoints";
/// The init container that copies the parent's checkpoint.
pub const INIT_CONTAINER: &str = "ktune-checkpoint";
/// Where the init container mounts the whole volume.
const VOLUME_ROOT: &str = "/ktune-checkpoints";
/// Katib's size for the claim.
const SIZE: &str = "5Gi";

/// The claim's name: Katib's, `<experiment>-pbt`.
#[must_use]
pub fn claim_name(experiment: &str) -> String {
    format!("{experiment}-pbt")
}

/// The claim for an experiment's checkpoints, owned by it.
#[must_use]
pub fn claim(
    experiment: &str,
    owner: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
    storage_class: Option<&str>,
) -> PersistentVolumeClaim {
    let mut spec = json!({
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": SIZE}}
    });
    if let Some(class) = storage_class {
        spec["storageClassName"] = json!(class);
    }
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(claim_name(experiment)),
            owner_references: owner.map(|o| vec![o]),
            labels: Some(
                [(
                    super::workload::EXPERIMENT_LABEL.to_owned(),
                    experiment.to_owned(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        spec: serde_json::from_value(spec).ok(),
        ..PersistentVolumeClaim::default()
    }
}

/// Creates the claim unless it exists.
///
/// # Errors
/// The API's, other than "already exists".
pub async fn ensure_claim(
    client: &Client,
    namespace: &str,
    claim: &PersistentVolumeClaim,
) -> Result<(), kube::Error> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    match claims.create(&PostParams::default(), claim).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Mounts the trial's checkpoint folder in every pod template holding the
/// primary container, with the init container that starts it from the
/// parent's; returns how many templates got it.
pub fn mount(
    workload: &mut Value,
    primary: &str,
    (experiment, trial): (&str, &str),
    checkpoint: Checkpoint<'_>,
    image: &SidecarImage,
) -> usize {
    let volume =
        json!({"name": VOLUME, "persistentVolumeClaim": {"claimName": claim_name(experiment)}});
    let mount = json!({
        "name": VOLUME,
        "mountPath": checkpoint.path,
        "subPath": format!("{experiment}/{trial}"),
    });
    let copy = checkpoint.parent.map(|parent| {
        json!({
            "name": INIT_CONTAINER,
            "image": image.image,
            "command": [
                image.command, "copy-checkpoint",
                "--from", format!("{VOLUME_ROOT}/{experiment}/{parent}"),
                "--to", format!("{VOLUME_ROOT}/{experiment}/{trial}"),
            ],
            "volumeMounts": [{"name": VOLUME, "mountPath": VOLUME_ROOT}],
        })
    });
    pod_spec::each_primary_pod_spec(workload, primary, &mut |spec| {
        pod_spec::add_named(spec, "volumes", volume.clone());
        if let Some(copy) = &copy {
            pod_spec::add_named(spec, "initContainers", copy.clone());
        }
        pod_spec::mount_in_primary(spec, primary, &mount);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> SidecarImage {
        SidecarImage {
            image: "ghcr.io/ktune-dev/ktune:latest".into(),
            command: "/usr/local/bin/ktune".into(),
        }
    }

    #[test]
    fn a_child_mounts_its_folder_and_copies_its_parents_first() {
        let mut w = json!({"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
            "containers": [{"name": "main", "command": ["train", "--checkpoint=/ck/"]}, {"name": "side"}]
        }}}});
        let checkpoint = Checkpoint {
            path: "/ck/",
            parent: Some("exp-0003"),
        };
        assert_eq!(
            mount(&mut w, "main", ("exp", "exp-0007"), checkpoint, &image()),
            1
        );
        let spec = &w["spec"]["template"]["spec"];
        assert_eq!(
            spec["volumes"][0]["persistentVolumeClaim"]["claimName"],
            "exp-pbt"
        );
        assert_eq!(
            spec["containers"][0]["volumeMounts"][0],
            json!({"name": VOLUME, "mountPath": "/ck/", "subPath": "exp/exp-0007"})
        );
        assert!(spec["containers"][1].get("volumeMounts").is_none());
        let init = &spec["initContainers"][0];
        assert_eq!(init["name"], INIT_CONTAINER);
        assert_eq!(
            init["command"],
            json!([
                "/usr/local/bin/ktune",
                "copy-checkpoint",
                "--from",
                "/ktune-checkpoints/exp/exp-0003",
                "--to",
                "/ktune-checkpoints/exp/exp-0007"
            ])
        );
    }

    #[test]
    fn a_first_generation_member_only_mounts() {
        let mut w = json!({"spec": {"template": {"spec": {"containers": [{"name": "main"}]}}}});
        let checkpoint = Checkpoint {
            path: "/ck",
            parent: None,
        };
        mount(&mut w, "main", ("exp", "exp-0001"), checkpoint, &image());
        assert!(
            w["spec"]["template"]["spec"]
                .get("initContainers")
                .is_none()
        );
    }

    #[test]
    fn the_claim_is_katibs() {
        let c = claim("exp", None, Some("nfs"));
        assert_eq!(c.metadata.name.as_deref(), Some("exp-pbt"));
        let spec = serde_json::to_value(c.spec.unwrap()).unwrap();
        assert_eq!(spec["accessModes"], json!(["ReadWriteMany"]));
        assert_eq!(spec["resources"]["requests"]["storage"], "5Gi");
        assert_eq!(spec["storageClassName"], "nfs");
    }
}
