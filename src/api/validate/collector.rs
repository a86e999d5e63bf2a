//! Validation of `spec.metricsCollectorSpec` (katib-reference.md §6.9), plus
//! the filter regexes for every kind (Katib skips them for StdOut and then
//! fails at collection time).

use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Report;
use crate::api::defaults::prometheus_port;
use crate::api::enums::{CollectorKind, FileFormat, FileSystemKind};
use crate::api::experiment::{ExperimentSpec, FileSystemPath, MetricsCollectorSpec, SourceSpec};

const PATH: &str = "spec.metricsCollectorSpec";

pub(super) fn validate_collector(spec: &ExperimentSpec, report: &mut Report) {
    let Some(mc) = &spec.metrics_collector_spec else {
        return;
    };
    let kind = mc
        .collector
        .as_ref()
        .and_then(|c| c.kind.clone())
        .unwrap_or(CollectorKind::StdOut);
    let source = mc.source.clone().unwrap_or_default();
    let fs = source.file_system_path.as_ref();
    let fs_path = format!("{PATH}.source.fileSystemPath");
    match &kind {
        CollectorKind::Other(k) => report.error(
            format!("{PATH}.collector.kind"),
            format!(
                "unknown collector kind {k:?}; expected one of {}",
                CollectorKind::KNOWN.join(", ")
            ),
        ),
        CollectorKind::File => file_source(&source, report),
        CollectorKind::TensorFlowEvent => {
            require_path(fs, &fs_path, &[FileSystemKind::Directory], report);
            if fs.is_some_and(|f| f.format.is_some()) {
                report.error(
                    format!("{fs_path}.format"),
                    "TensorFlowEvent takes no format",
                );
            }
        }
        CollectorKind::PrometheusMetric => prometheus_source(&source, report),
        CollectorKind::Custom => custom_collector(mc, report),
        CollectorKind::StdOut | CollectorKind::Push => {}
    }
    if let Some(filter) = &source.filter {
        for (i, pattern) in filter.metrics_format.iter().enumerate() {
            let path = format!("{PATH}.source.filter.metricsFormat[{i}]");
            if let Err(e) = crate::metrics::filter::compile_filter(pattern) {
                report.error(path, e.to_string());
            }
        }
    }
}

/// A File collector: a file to read, and a filter only for TEXT.
fn file_source(source: &SourceSpec, report: &mut Report) {
    let fs = source.file_system_path.as_ref();
    let fs_path = format!("{PATH}.source.fileSystemPath");
    require_path(fs, &fs_path, &[FileSystemKind::File], report);
    match fs.and_then(|fs| fs.format.as_ref()) {
        Some(FileFormat::Other(f)) => report.error(
            format!("{fs_path}.format"),
            format!("unknown format {f:?}; expected TEXT or JSON"),
        ),
        Some(FileFormat::Json) if source.filter.is_some() => report.error(
            format!("{PATH}.source.filter"),
            "filters apply to TEXT metrics only; JSON metrics need none",
        ),
        _ => {}
    }
}

/// A PrometheusMetric collector: an endpoint whose port the collectors
/// can scrape ([`prometheus_port`], the one rule) and an absolute path.
fn prometheus_source(source: &SourceSpec, report: &mut Report) {
    let Some(http) = &source.http_get else {
        report.error(
            format!("{PATH}.source.httpGet"),
            "required for PrometheusMetric",
        );
        return;
    };
    if prometheus_port(&http.port).is_none() {
        let port = match &http.port {
            IntOrString::Int(p) => p.to_string(),
            IntOrString::String(s) => format!("{s:?}"),
        };
        report.error(
            format!("{PATH}.source.httpGet.port"),
            format!("must be a port number (1–65535), got {port}; named ports are not resolved"),
        );
    }
    if !http.path.as_deref().unwrap_or("/").starts_with('/') {
        report.error(format!("{PATH}.source.httpGet.path"), "must start with '/'");
    }
}

/// A Custom collector: a valid container, and a path if one is given.
fn custom_collector(mc: &MetricsCollectorSpec, report: &mut Report) {
    let custom = mc
        .collector
        .as_ref()
        .and_then(|c| c.custom_collector.as_ref());
    let custom_path = format!("{PATH}.collector.customCollector");
    match custom {
        None => report.error(custom_path, "required for a Custom collector"),
        Some(value) => {
            if let Err(e) = serde_path_to_error::deserialize::<_, Container>(value) {
                report.error(
                    format!("{custom_path}.{}", e.path()),
                    format!("not a valid container: {}", e.inner()),
                );
            }
        }
    }
    let fs = mc.source.as_ref().and_then(|s| s.file_system_path.as_ref());
    if fs.is_some() {
        require_path(
            fs,
            &format!("{PATH}.source.fileSystemPath"),
            &[FileSystemKind::File, FileSystemKind::Directory],
            report,
        );
    }
}

fn require_path(
    fs: Option<&FileSystemPath>,
    path: &str,
    kinds: &[FileSystemKind],
    report: &mut Report,
) {
    let Some(fs) = fs else {
        report.error(path, "required for this collector kind");
        return;
    };
    if !fs.path.starts_with('/') {
        report.error(
            format!("{path}.path"),
            format!("must be an absolute path, got {:?}", fs.path),
        );
    }
    match &fs.kind {
        Some(kind) if kinds.contains(kind) => {}
        other => {
            let want: Vec<_> = kinds.iter().map(FileSystemKind::as_str).collect();
            let got = other.as_ref().map_or("nothing", FileSystemKind::as_str);
            report.error(
                format!("{path}.kind"),
                format!("must be {}, got {got}", want.join(" or ")),
            );
        }
    }
}
