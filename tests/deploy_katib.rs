//! `deploy/katib/` installs ktune as Katib's replacement: rendered with the
//! real `kubectl kustomize`, it holds Katib's group's CRDs, RBAC for that
//! group, the controller in that mode and the `katib-db-manager` Service
//! Katib's SDK calls, all in namespace `kubeflow`.

mod support;

use std::process::Command;

use serde_json::Value;

fn render(folder: &str) -> Vec<Value> {
    let path = support::repo_root().join(folder);
    let out = Command::new("kubectl")
        .args(["kustomize", path.to_str().unwrap()])
        .output()
        .expect("kubectl runs");
    assert!(out.status.success(), "{}", support::describe(&out));
    serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout)).unwrap()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn the_katib_overlay_installs_ktune_in_katibs_place() {
    let objects = render("deploy/katib");
    for crd in ["experiments.kubeflow.org", "trials.kubeflow.org"] {
        let crd = find(&objects, "CustomResourceDefinition", crd);
        assert_eq!(crd["spec"]["group"], "kubeflow.org");
    }
    assert!(
        !objects.iter().any(|o| o["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .ends_with("ktune.dev")),
        "ktune.dev's CRDs are not installed"
    );
    for o in &objects {
        let namespaced = !matches!(
            o["kind"].as_str(),
            Some("CustomResourceDefinition" | "ClusterRole" | "ClusterRoleBinding" | "Namespace")
        );
        if namespaced {
            assert_eq!(o["metadata"]["namespace"], "kubeflow", "{}", o["metadata"]);
        }
    }
    let role = find(&objects, "ClusterRole", "ktune-katib-controller");
    assert!(role["rules"].as_array().unwrap().iter().any(|r| {
        r["apiGroups"] == serde_json::json!(["kubeflow.org"])
            && r["resources"] == serde_json::json!(["experiments"])
    }));
    let binding = find(&objects, "ClusterRoleBinding", "ktune-katib-controller");
    assert_eq!(binding["subjects"][0]["namespace"], "kubeflow");

    let deployment = find(&objects, "Deployment", "ktune-controller");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(args.contains(&"--api-group=kubeflow.org"), "{args:?}");
    assert!(
        args.contains(&"--push-url=http://ktune-controller.kubeflow:8081"),
        "{args:?}"
    );
    let service = find(&objects, "Service", "katib-db-manager");
    let port = &service["spec"]["ports"][0];
    assert_eq!(port["port"], 6789);
    let target = port["targetPort"].as_str().unwrap();
    assert!(
        container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == target && p["containerPort"] == 6789),
        "the Service's target port is the controller's: {container}"
    );
    // The controller's pods, the one holding the lease only.
    let mut selector = deployment["spec"]["selector"]["matchLabels"].clone();
    selector["ktune.dev/leader"] = "true".into();
    assert_eq!(service["spec"]["selector"], selector);
}

/// The default install is unchanged by the shared controller folder.
#[test]
fn the_default_install_still_serves_ktune_dev() {
    let objects = render("deploy");
    find(
        &objects,
        "CustomResourceDefinition",
        "experiments.ktune.dev",
    );
    find(&objects, "ClusterRole", "ktune-controller");
    let deployment = find(&objects, "Deployment", "ktune-controller");
    assert_eq!(deployment["metadata"]["namespace"], "ktune-system");
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(!args.contains("api-group"), "{args}");
}
