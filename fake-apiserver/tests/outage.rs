//! The fake API server goes away and comes back on the same port with its
//! store kept, as a real one does when it restarts: clients see refused
//! connections and cut watches meanwhile, then find every object again.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use ktune_fake_apiserver::FakeApiServer;
use kube::api::{Api, PostParams, WatchParams};
use kube::{Client, Config};
use serde_json::json;

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

#[tokio::test]
async fn a_stopped_server_refuses_and_cuts_watches_then_comes_back_with_its_state() {
    let server = FakeApiServer::new();
    let (addr, handle) = server.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    assert_eq!(handle.addr(), addr);
    let config = Config::new(format!("http://{addr}").parse().unwrap());
    let client = Client::try_from(config).unwrap();
    let maps: Api<ConfigMap> = Api::namespaced(client, "default");
    maps.create(&PostParams::default(), &config_map("before"))
        .await
        .unwrap();
    let mut watch = maps
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    // The watch is live: it replays the object created before it.
    let first = tokio::time::timeout(Duration::from_secs(5), watch.next()).await;
    assert!(matches!(first, Ok(Some(Ok(_)))), "{first:?}");

    handle.stop();
    assert!(!handle.is_serving());
    // The open watch is cut (ends or fails), not left hanging.
    let cut = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = watch.next().await {}
    })
    .await;
    assert!(cut.is_ok(), "the watch outlived the server");
    // New connections are refused.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    let error = maps.get("before").await.unwrap_err();
    assert!(
        !matches!(error, kube::Error::Api(_)),
        "expected a connection error, got {error}"
    );
    // The cluster goes on meanwhile (a controller-less change, like the
    // executor's), and the store keeps it.
    server
        .create_manifest("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: during, namespace: default}\ndata: {k: v}\n")
        .unwrap();

    handle.restart().await.unwrap();
    assert!(handle.is_serving());
    assert_eq!(handle.addr(), addr);
    for name in ["before", "during"] {
        let map = maps.get(name).await.unwrap();
        assert_eq!(map.data.unwrap()["k"], "v");
    }
    // A second restart while serving changes nothing.
    handle.restart().await.unwrap();
    assert!(maps.get("before").await.is_ok());
}
