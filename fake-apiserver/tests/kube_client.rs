//! The fake API server driven by a real kube 5 `Client` (in process, no socket).

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use ktune_fake_apiserver::{Config, ExecutorConfig, FakeApiServer};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{finalizer, wait::await_condition, watcher};
use kube::{Client, CustomResource, CustomResourceExt, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "fake.ktune.dev",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    shortname = "wd"
)]
struct WidgetSpec {
    size: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema)]
struct WidgetStatus {
    seen: i32,
}

async fn setup() -> (FakeApiServer, Client) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let server = FakeApiServer::with_config(Config {
        history_limit: 1000,
        bookmark_interval: Duration::from_millis(200),
        ..Config::default()
    });
    let client = Client::new(server.router(), "default");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &Widget::crd())
        .await
        .unwrap();
    (server, client)
}

fn widget(name: &str, size: i32) -> Widget {
    Widget::new(name, WidgetSpec { size })
}

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()},
        "data": {"k": "v"},
    }))
    .unwrap()
}

#[tokio::test]
async fn discovery_lists_builtins_and_crds() {
    let (_server, client) = setup().await;
    let v = client.apiserver_version().await.unwrap();
    assert_eq!(v.major, "1");
    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    let groups: Vec<String> = discovery.groups().map(|g| g.name().to_string()).collect();
    for g in [
        "",
        "batch",
        "coordination.k8s.io",
        "events.k8s.io",
        "apiextensions.k8s.io",
        "fake.ktune.dev",
    ] {
        assert!(
            groups.contains(&g.to_string()),
            "{g} missing from {groups:?}"
        );
    }
    let resources: Vec<String> = client
        .list_api_group_resources("fake.ktune.dev/v1")
        .await
        .unwrap()
        .resources
        .iter()
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(resources, ["widgets", "widgets/status"]);
    let core = client.list_core_api_resources("v1").await.unwrap();
    let pods = core.resources.iter().find(|r| r.name == "pods").unwrap();
    assert_eq!(pods.short_names.as_deref(), Some(&["po".to_string()][..]));
    assert!(core.resources.iter().any(|r| r.name == "pods/log"));
}

#[tokio::test]
async fn crud_selectors_paging_and_conflicts() {
    let (_server, client) = setup().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let pp = PostParams::default();
    let a = cms
        .create(&pp, &cm("a", &[("app", "x"), ("tier", "web")]))
        .await
        .unwrap();
    assert!(a.metadata.uid.is_some() && a.metadata.creation_timestamp.is_some());
    assert_eq!(a.metadata.generation, Some(1));
    cms.create(&pp, &cm("b", &[("app", "y")])).await.unwrap();
    let mut gen_named = cm("", &[]);
    gen_named.metadata.name = None;
    gen_named.metadata.generate_name = Some("gen-".into());
    let g = cms.create(&pp, &gen_named).await.unwrap();
    assert!(
        g.name_any().starts_with("gen-") && g.name_any().len() == 9,
        "{}",
        g.name_any()
    );

    let err = cms.create(&pp, &cm("a", &[])).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409 && s.reason == "AlreadyExists"),
        "{err:?}"
    );
    let err = cms.get("nope").await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 404 && s.reason == "NotFound"),
        "{err:?}"
    );
    let other: Api<ConfigMap> = Api::namespaced(client.clone(), "missing-ns");
    assert!(
        matches!(other.create(&pp, &cm("a", &[])).await.unwrap_err(), kube::Error::Api(s) if s.code == 404)
    );

    let names = |l: kube::core::ObjectList<ConfigMap>| {
        l.items
            .iter()
            .map(ResourceExt::name_any)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            cms.list(&ListParams::default().labels("app=x"))
                .await
                .unwrap()
        ),
        ["a"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().labels("app in (x,y),tier!=web"))
                .await
                .unwrap()
        ),
        ["b"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().labels("!tier,app"))
                .await
                .unwrap()
        ),
        ["b"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().fields("metadata.name=b"))
                .await
                .unwrap()
        ),
        ["b"]
    );
    let page = cms.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(page.items.len(), 2);
    let token = page.metadata.continue_.clone().unwrap();
    let rest = cms
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert!(rest.metadata.continue_.is_none());
    assert!(page.metadata.resource_version.is_some());

    // Update with the current resourceVersion works; a stale one is a 409.
    let mut a2 = a.clone();
    a2.data = Some([("k".to_string(), "w".to_string())].into());
    let updated = cms.replace("a", &pp, &a2).await.unwrap();
    assert_ne!(updated.resource_version(), a.resource_version());
    let err = cms.replace("a", &pp, &a2).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409 && s.reason == "Conflict"),
        "{err:?}"
    );
    // A no-op update keeps the resourceVersion.
    let same = cms.replace("a", &pp, &updated).await.unwrap();
    assert_eq!(same.resource_version(), updated.resource_version());

    cms.delete("a", &DeleteParams::default()).await.unwrap();
    assert!(cms.get_opt("a").await.unwrap().is_none());
}

#[tokio::test]
async fn four_patch_types() {
    let (_server, client) = setup().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    cms.create(&PostParams::default(), &cm("p", &[("a", "1")]))
        .await
        .unwrap();
    let pp = PatchParams::default();

    let merged = cms
        .patch(
            "p",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"b": "2", "a": null}}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.labels().get("b").map(String::as_str), Some("2"));
    assert!(!merged.labels().contains_key("a"));

    let strategic = cms
        .patch("p", &pp, &Patch::Strategic(json!({"data": {"x": "y"}})))
        .await
        .unwrap();
    assert_eq!(strategic.data.as_ref().unwrap().len(), 2);

    let ok: json_patch_ops::Ops = serde_json::from_value(json!([
        {"op": "test", "path": "/data/x", "value": "y"},
        {"op": "replace", "path": "/data/x", "value": "z"},
    ]))
    .unwrap();
    let patched = cms.patch("p", &pp, &Patch::<()>::Json(ok)).await.unwrap();
    assert_eq!(patched.data.as_ref().unwrap()["x"], "z");
    let failing: json_patch_ops::Ops = serde_json::from_value(json!([
        {"op": "test", "path": "/data/x", "value": "nope"},
        {"op": "remove", "path": "/data/x"},
    ]))
    .unwrap();
    let err = cms
        .patch("p", &pp, &Patch::<()>::Json(failing))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422),
        "{err:?}"
    );

    // Server-side apply creates when missing and merges otherwise.
    let ssa = PatchParams::apply("test").force();
    let applied = cms
        .patch(
            "fresh",
            &ssa,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}})),
        )
        .await
        .unwrap();
    assert_eq!(applied.data.as_ref().unwrap()["a"], "b");
    let applied = cms
        .patch(
            "fresh",
            &ssa,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"c": "d"}})),
        )
        .await
        .unwrap();
    assert_eq!(applied.data.as_ref().unwrap().len(), 2);
    let err = cms
        .patch("fresh", &ssa, &Patch::Apply(json!({"data": {}})))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 400),
        "{err:?}"
    );

    // A patch carrying a stale resourceVersion is a conflict.
    let err = cms
        .patch(
            "p",
            &pp,
            &Patch::Merge(json!({"metadata": {"resourceVersion": "1"}, "data": {"q": "r"}})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "{err:?}"
    );
}

/// `Patch::Json` takes a `json_patch::Patch`.
mod json_patch_ops {
    pub type Ops = json_patch::Patch;
}

#[tokio::test]
async fn status_subresource_and_generation() {
    let (_server, client) = setup().await;
    let widgets: Api<Widget> = Api::default_namespaced(client.clone());
    let mut w = widget("w", 1);
    w.status = Some(WidgetStatus { seen: 99 });
    let created = widgets.create(&PostParams::default(), &w).await.unwrap();
    assert!(created.status.is_none(), "status is dropped on create");
    assert_eq!(created.metadata.generation, Some(1));

    let st = widgets
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"seen": 1}, "spec": {"size": 50}})),
        )
        .await
        .unwrap();
    assert_eq!(st.status.as_ref().unwrap().seen, 1);
    assert_eq!(st.spec.size, 1, "/status ignores spec");
    assert_eq!(
        st.metadata.generation,
        Some(1),
        "status writes do not bump generation"
    );

    let main = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"seen": 7}, "spec": {"size": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(
        main.status.as_ref().unwrap().seen,
        1,
        "the main endpoint ignores status"
    );
    assert_eq!(main.spec.size, 2);
    assert_eq!(main.metadata.generation, Some(2));

    let labelled = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"l": "v"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        labelled.metadata.generation,
        Some(2),
        "metadata changes do not bump generation"
    );

    let ssa = widgets
        .patch_status(
            "w",
            &PatchParams::apply("ctl").force(),
            &Patch::Apply(
                json!({"apiVersion": "fake.ktune.dev/v1", "kind": "Widget", "status": {"seen": 3}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(ssa.status.unwrap().seen, 3);
}

#[tokio::test]
async fn finalizers_hold_deletion() {
    let (_server, client) = setup().await;
    let widgets: Api<Widget> = Api::default_namespaced(client.clone());
    let mut w = widget("f", 1);
    w.metadata.finalizers = Some(vec!["ktune.dev/cleanup".into()]);
    widgets.create(&PostParams::default(), &w).await.unwrap();
    let deleted = widgets.delete("f", &DeleteParams::default()).await.unwrap();
    let obj = deleted
        .left()
        .expect("the object comes back while finalizers remain");
    assert!(obj.metadata.deletion_timestamp.is_some());
    let still = widgets.get("f").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_some());
    // No new finalizers on an object being deleted.
    let err = widgets
        .patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["ktune.dev/cleanup", "other"]}})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422),
        "{err:?}"
    );
    widgets
        .patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    assert!(widgets.get_opt("f").await.unwrap().is_none());
}

#[tokio::test]
async fn owner_references_cascade() {
    let (_server, client) = setup().await;
    let widgets: Api<Widget> = Api::default_namespaced(client.clone());
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let owner = widgets
        .create(&PostParams::default(), &widget("owner", 1))
        .await
        .unwrap();
    let mut child = cm("child", &[]);
    child.metadata.owner_references = Some(vec![owner.controller_owner_ref(&()).unwrap()]);
    cms.create(&PostParams::default(), &child).await.unwrap();
    let mut orphan = cm("orphan", &[]);
    orphan.metadata.owner_references = child.metadata.owner_references.clone();
    cms.create(&PostParams::default(), &orphan).await.unwrap();
    let keep = widgets
        .create(&PostParams::default(), &widget("keep", 1))
        .await
        .unwrap();
    let mut kept = cm("kept", &[]);
    kept.metadata.owner_references = Some(vec![
        owner.controller_owner_ref(&()).unwrap(),
        keep.owner_ref(&()).unwrap(),
    ]);
    cms.create(&PostParams::default(), &kept).await.unwrap();

    widgets
        .delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    assert!(cms.get_opt("child").await.unwrap().is_none());
    assert!(cms.get_opt("orphan").await.unwrap().is_none());
    assert!(
        cms.get_opt("kept").await.unwrap().is_some(),
        "another owner remains"
    );

    let mut o = cm("o", &[]);
    o.metadata.owner_references = Some(vec![keep.owner_ref(&()).unwrap()]);
    cms.create(&PostParams::default(), &o).await.unwrap();
    widgets
        .delete("keep", &DeleteParams::orphan())
        .await
        .unwrap();
    let o = cms.get("o").await.unwrap();
    assert!(
        o.metadata.owner_references.unwrap_or_default().is_empty(),
        "orphaned dependents lose the reference"
    );
}

#[tokio::test]
async fn raw_watch_bookmarks_timeout_and_gone() {
    let (server, client) = setup().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let first = cms
        .create(&PostParams::default(), &cm("w1", &[]))
        .await
        .unwrap();
    let rv = first.resource_version().unwrap();
    cms.create(&PostParams::default(), &cm("w2", &[("sel", "yes")]))
        .await
        .unwrap();

    // From an rv: the later events, then bookmarks, then the end at timeoutSeconds.
    let wp = WatchParams::default().timeout(1);
    let started = std::time::Instant::now();
    let events: Vec<_> = cms
        .watch(&wp, &rv)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the stream ends at timeoutSeconds"
    );
    assert!(
        matches!(&events[0], WatchEvent::Added(c) if c.name_any() == "w2"),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| matches!(e, WatchEvent::Bookmark(_))),
        "{events:?}"
    );

    // Selectors apply to watches; a label change out of the selector reads as DELETED.
    let wp = WatchParams::default().labels("sel=yes").timeout(2);
    let mut stream = cms.watch(&wp, "0").await.unwrap().boxed();
    assert!(
        matches!(stream.try_next().await.unwrap(), Some(WatchEvent::Added(c)) if c.name_any() == "w2")
    );
    cms.patch(
        "w2",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"sel": "no"}}})),
    )
    .await
    .unwrap();
    assert!(
        matches!(stream.try_next().await.unwrap(), Some(WatchEvent::Deleted(c)) if c.name_any() == "w2")
    );

    server.compact();
    let mut stream = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => assert_eq!(e.code, 410),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
}

#[tokio::test]
async fn watcher_relists_after_gone() {
    let (server, client) = setup().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    cms.create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap();
    let mut events = watcher(cms.clone(), watcher::Config::default().timeout(1)).boxed();
    let mut init = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), events.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            watcher::Event::InitApply(o) => init.push(o.name_any()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(init, ["a"]);
    // Compaction ends open watches with 410: the watcher relists and sees both objects.
    server.compact();
    cms.create(&PostParams::default(), &cm("b", &[]))
        .await
        .unwrap();
    let mut relisted = Vec::new();
    let mut saw_init = false;
    let mut saw_gone = false;
    loop {
        // The watcher yields the 410 as an error, then relists on its own.
        match tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .unwrap()
            .unwrap()
        {
            Err(watcher::Error::WatchError(s)) if s.code == 410 => saw_gone = true,
            Err(e) => panic!("unexpected watcher error {e:?}"),
            Ok(watcher::Event::Init) => saw_init = true,
            Ok(watcher::Event::InitApply(o)) if saw_init => relisted.push(o.name_any()),
            Ok(watcher::Event::InitDone) if saw_init => break,
            Ok(_) => {}
        }
    }
    assert!(saw_gone);
    relisted.sort();
    assert_eq!(relisted, ["a", "b"]);
}

#[derive(Debug, thiserror::Error)]
#[error("status write failed: {0}")]
struct ReconcileError(kube::Error);

#[tokio::test]
async fn controller_reconciles_with_finalizer_and_status() {
    let (_server, client) = setup().await;
    let widgets: Api<Widget> = Api::default_namespaced(client.clone());
    widgets
        .create(&PostParams::default(), &widget("c1", 4))
        .await
        .unwrap();

    let ctx = Arc::new(widgets.clone());
    let reconcile = |w: Arc<Widget>, api: Arc<Api<Widget>>| async move {
        finalizer(&api, "fake.ktune.dev/cleanup", w, |ev| async {
            match ev {
                finalizer::Event::Apply(w) => {
                    let status = json!({"apiVersion": "fake.ktune.dev/v1", "kind": "Widget", "status": {"seen": w.spec.size}});
                    api.patch_status(&w.name_any(), &PatchParams::apply("ctl").force(), &Patch::Apply(status)).await.map_err(ReconcileError)?;
                    Ok(Action::await_change())
                }
                finalizer::Event::Cleanup(_) => Ok::<_, ReconcileError>(Action::await_change()),
            }
        })
        .await
    };
    let controller = Controller::new(widgets.clone(), watcher::Config::default())
        .run(
            reconcile,
            |_, _, _| Action::requeue(Duration::from_millis(100)),
            ctx,
        )
        .for_each(|_| async {});
    let handle = tokio::spawn(controller);

    let seen = |n: i32| {
        move |w: Option<&Widget>| {
            w.and_then(|w| w.status.as_ref())
                .is_some_and(|s| s.seen == n)
        }
    };
    tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(widgets.clone(), "c1", seen(4)),
    )
    .await
    .unwrap()
    .unwrap();
    let w = widgets.get("c1").await.unwrap();
    assert_eq!(w.finalizers(), ["fake.ktune.dev/cleanup"]);
    widgets
        .patch(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 5}})),
        )
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(widgets.clone(), "c1", seen(5)),
    )
    .await
    .unwrap()
    .unwrap();
    // Deleting runs Cleanup, which lets the finalizer go and the object with it.
    widgets
        .delete("c1", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(
            widgets.clone(),
            "c1",
            kube::runtime::conditions::is_deleted(&w.uid().unwrap()),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    handle.abort();
}

fn job(name: &str, script: &str, backoff: i32) -> Job {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"backoffLimit": backoff, "template": {"spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": "ignored", "command": ["sh", "-c", script], "env": [{"name": "GREETING", "value": "hi"}],
        }]}}},
    }))
    .unwrap()
}

fn has_condition(ty: &'static str) -> impl Fn(Option<&Job>) -> bool {
    move |j| {
        j.and_then(|j| j.status.as_ref()?.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == ty && c.status == "True"))
    }
}

#[tokio::test]
async fn executor_runs_jobs_and_serves_logs() {
    let (server, client) = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let _executor = server.start_executor(ExecutorConfig {
        workdir: dir.path().to_path_buf(),
        grace: Duration::from_secs(1),
        ..ExecutorConfig::default()
    });
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());

    jobs.create(
        &PostParams::default(),
        &job("ok", "echo $GREETING; echo err >&2; pwd > where", 0),
    )
    .await
    .unwrap();
    let done = tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(jobs.clone(), "ok", has_condition("Complete")),
    )
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    let status = done.status.unwrap();
    assert_eq!(status.succeeded, Some(1));
    assert!(status.completion_time.is_some() && status.start_time.is_some());
    let types: Vec<_> = status
        .conditions
        .unwrap()
        .iter()
        .map(|c| c.type_.clone())
        .collect();
    assert_eq!(types, ["SuccessCriteriaMet", "Complete"]);
    let pod_list = pods
        .list(&ListParams::default().labels("job-name=ok"))
        .await
        .unwrap();
    let pod = &pod_list.items[0];
    assert!(pod.name_any().starts_with("ok-"));
    assert_eq!(
        pod.status.as_ref().unwrap().phase.as_deref(),
        Some("Succeeded")
    );
    assert_eq!(pod.owner_references()[0].name, "ok");
    let log = pods
        .logs(&pod.name_any(), &Default::default())
        .await
        .unwrap();
    assert_eq!(log, "hi\nerr\n");
    assert!(
        dir.path().join("where").exists(),
        "the process ran in the workdir"
    );

    // Failures are retried up to backoffLimit, then the Job fails.
    jobs.create(&PostParams::default(), &job("bad", "exit 3", 1))
        .await
        .unwrap();
    let failed = tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(jobs.clone(), "bad", has_condition("Failed")),
    )
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    assert_eq!(failed.status.unwrap().failed, Some(2));

    // Following a running pod's log streams it; deleting the Job kills the process group.
    jobs.create(
        &PostParams::default(),
        &job("long", "echo started; exec sleep 30", 0),
    )
    .await
    .unwrap();
    let running =
        |p: Option<&Pod>| p.and_then(|p| p.status.as_ref()?.phase.as_deref()) == Some("Running");
    let name = loop {
        if let Some(p) = pods
            .list(&ListParams::default().labels("job-name=long"))
            .await
            .unwrap()
            .items
            .first()
        {
            break p.name_any();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::timeout(
        Duration::from_secs(5),
        await_condition(pods.clone(), &name, running),
    )
    .await
    .unwrap()
    .unwrap();
    let mut follow = pods
        .log_stream(
            &name,
            &kube::api::LogParams {
                follow: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut first = String::new();
    use futures::AsyncBufReadExt;
    follow.read_line(&mut first).await.unwrap();
    assert_eq!(first, "started\n");
    let t = std::time::Instant::now();
    jobs.delete("long", &DeleteParams::background())
        .await
        .unwrap();
    assert!(
        pods.get_opt(&name).await.unwrap().is_none(),
        "the pod goes with its Job"
    );
    let mut rest = String::new();
    tokio::time::timeout(Duration::from_secs(5), follow.read_line(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "SIGTERM ended the process"
    );
}

#[tokio::test]
async fn recorder_events_show_up_as_core_v1_events() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let (_server, client) = setup().await;
    let widgets: Api<Widget> = Api::default_namespaced(client.clone());
    let w = widgets
        .create(&PostParams::default(), &widget("ev", 1))
        .await
        .unwrap();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "ktune".into(),
            instance: Some("test".into()),
        },
    );
    let ev = Event {
        type_: EventType::Normal,
        reason: "Created".into(),
        note: Some("made it".into()),
        action: "Create".into(),
        secondary: None,
    };
    recorder.publish(&ev, &w.object_ref(&())).await.unwrap();
    // A repeat is a merge patch of the series on events.k8s.io/v1.
    recorder.publish(&ev, &w.object_ref(&())).await.unwrap();
    let core: Api<CoreEvent> = Api::default_namespaced(client.clone());
    let list = core
        .list(&ListParams::default().fields("involvedObject.name=ev,involvedObject.kind=Widget"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    let e = &list.items[0];
    assert_eq!(e.message.as_deref(), Some("made it"));
    assert_eq!(e.reason.as_deref(), Some("Created"));
    assert_eq!(e.reporting_component.as_deref(), Some("ktune"));
    assert_eq!(e.series.as_ref().and_then(|s| s.count), Some(2));
}
