//! Container logs: an append-only buffer per (namespace, pod, container)
//! that followers can wait on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// One container's log.
#[derive(Debug)]
pub struct LogBuf {
    data: Mutex<(Vec<u8>, bool)>,
    changed: watch::Sender<()>,
}

impl Default for LogBuf {
    fn default() -> Self {
        Self {
            data: Mutex::new((Vec::new(), false)),
            changed: watch::channel(()).0,
        }
    }
}

impl LogBuf {
    /// Appends output.
    pub fn append(&self, bytes: &[u8]) {
        self.data
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .extend_from_slice(bytes);
        self.changed.send_replace(());
    }

    /// Marks the container finished: followers stop at the end.
    pub fn finish(&self) {
        self.data.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
        self.changed.send_replace(());
    }

    /// Bytes from `offset`, and whether the log is finished.
    pub fn read_from(&self, offset: usize) -> (Vec<u8>, bool) {
        let d = self.data.lock().unwrap_or_else(|p| p.into_inner());
        (
            d.0.get(offset..).map(<[u8]>::to_vec).unwrap_or_default(),
            d.1,
        )
    }

    /// A receiver that wakes on every append or finish.
    pub fn subscribe(&self) -> watch::Receiver<()> {
        self.changed.subscribe()
    }
}

/// All pods' logs.
#[derive(Debug, Default)]
pub struct Logs(Mutex<HashMap<(String, String), PodLogs>>);

/// One pod's containers' logs, in container order.
type PodLogs = Vec<(String, Arc<LogBuf>)>;

impl Logs {
    /// The buffer for a container, created if new.
    pub fn buffer(&self, ns: &str, pod: &str, container: &str) -> Arc<LogBuf> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let list = m.entry((ns.to_string(), pod.to_string())).or_default();
        if let Some((_, b)) = list.iter().find(|(c, _)| c == container) {
            return b.clone();
        }
        let b = Arc::new(LogBuf::default());
        list.push((container.to_string(), b.clone()));
        b
    }

    /// The buffer for a container, if it has one.
    pub fn get(&self, ns: &str, pod: &str, container: &str) -> Option<Arc<LogBuf>> {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&(ns.to_string(), pod.to_string()))?
            .iter()
            .find(|(c, _)| c == container)
            .map(|(_, b)| b.clone())
    }

    /// Forgets a pod's logs.
    pub fn remove(&self, ns: &str, pod: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(ns.to_string(), pod.to_string()));
    }
}
