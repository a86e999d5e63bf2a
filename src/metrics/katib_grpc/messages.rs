//! The protobuf messages of Katib's DBManager observation-log methods,
//! written by hand as prost structs from `proto/katib_api.proto` (Katib's
//! `pkg/apis/manager/v1beta1/api.proto`, package `api.v1.beta1`): field
//! names and tags are Katib's. Hand-written rather than generated, so the
//! build needs neither `protoc` nor a build script; the tests below pin the
//! tags against wire bytes, which is what a generated file would promise.

/// One metric's value (Katib keeps values as text).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Metric {
    /// The metric's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The value as text (`str(value)` in Katib's SDK).
    #[prost(string, tag = "2")]
    pub value: String,
}

/// One report: when, and which metric had which value.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct MetricLog {
    /// RFC 3339 (the SDK sends `%Y-%m-%dT%H:%M:%SZ`).
    #[prost(string, tag = "1")]
    pub time_stamp: String,
    /// The metric.
    #[prost(message, optional, tag = "2")]
    pub metric: Option<Metric>,
}

/// A trial's reports.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ObservationLog {
    /// The reports, in order.
    #[prost(message, repeated, tag = "1")]
    pub metric_logs: Vec<MetricLog>,
}

/// `ReportObservationLog`'s request.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ReportObservationLogRequest {
    /// The trial's name (the SDK reads it from `KATIB_TRIAL_NAME`).
    #[prost(string, tag = "1")]
    pub trial_name: String,
    /// What it reports.
    #[prost(message, optional, tag = "2")]
    pub observation_log: Option<ObservationLog>,
}

/// `ReportObservationLog`'s reply (empty).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ReportObservationLogReply {}

/// `GetObservationLog`'s request; empty filters select everything.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct GetObservationLogRequest {
    /// The trial's name.
    #[prost(string, tag = "1")]
    pub trial_name: String,
    /// Only this metric (all when empty).
    #[prost(string, tag = "2")]
    pub metric_name: String,
    /// Only reports at or after this RFC 3339 time (no bound when empty).
    #[prost(string, tag = "3")]
    pub start_time: String,
    /// Only reports at or before this RFC 3339 time (no bound when empty).
    #[prost(string, tag = "4")]
    pub end_time: String,
}

/// `GetObservationLog`'s reply.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct GetObservationLogReply {
    /// The stored reports, oldest first.
    #[prost(message, optional, tag = "1")]
    pub observation_log: Option<ObservationLog>,
}

/// `DeleteObservationLog`'s request.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct DeleteObservationLogRequest {
    /// The trial's name.
    #[prost(string, tag = "1")]
    pub trial_name: String,
}

/// `DeleteObservationLog`'s reply (empty).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct DeleteObservationLogReply {}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    fn report() -> ReportObservationLogRequest {
        ReportObservationLogRequest {
            trial_name: "t1".into(),
            observation_log: Some(ObservationLog {
                metric_logs: vec![MetricLog {
                    time_stamp: "2024-05-01T10:00:00Z".into(),
                    metric: Some(Metric {
                        name: "loss".into(),
                        value: "0.5".into(),
                    }),
                }],
            }),
        }
    }

    /// The bytes protoc's encoder gives for the same message (worked out
    /// by hand from api.proto: tag = field << 3 | wire type 2).
    #[test]
    fn a_report_encodes_to_katibs_wire_bytes() {
        let mut expected = vec![0x0a, 2, b't', b'1']; // field 1 trial_name
        let metric = [&[0x0a, 4][..], b"loss", &[0x12, 3], b"0.5"].concat(); // Metric{1,2}
        let time = b"2024-05-01T10:00:00Z";
        let log = [
            &[0x0a, 20][..], // MetricLog.time_stamp = 1
            time,
            &[0x12, 11], // MetricLog.metric = 2
            &metric,
        ]
        .concat();
        let observation_log = [&[0x0a, 35][..], &log].concat(); // ObservationLog.metric_logs = 1
        expected.extend([0x12, 37]); // field 2 observation_log
        expected.extend(&observation_log);
        assert_eq!(report().encode_to_vec(), expected);
        assert_eq!(
            ReportObservationLogRequest::decode(expected.as_slice()).unwrap(),
            report()
        );
    }

    #[test]
    fn get_and_delete_requests_use_katibs_tags() {
        let get = GetObservationLogRequest {
            trial_name: "a".into(),
            metric_name: "b".into(),
            start_time: "c".into(),
            end_time: "d".into(),
        };
        assert_eq!(
            get.encode_to_vec(),
            [0x0a, 1, b'a', 0x12, 1, b'b', 0x1a, 1, b'c', 0x22, 1, b'd']
        );
        let delete = DeleteObservationLogRequest {
            trial_name: "a".into(),
        };
        assert_eq!(delete.encode_to_vec(), [0x0a, 1, b'a']);
        let reply = GetObservationLogReply {
            observation_log: Some(ObservationLog::default()),
        };
        assert_eq!(reply.encode_to_vec(), [0x0a, 0]);
        assert!(ReportObservationLogReply {}.encode_to_vec().is_empty());
    }

    #[test]
    fn messages_round_trip_and_unknown_fields_are_skipped() {
        let bytes = report().encode_to_vec();
        assert_eq!(
            ReportObservationLogRequest::decode(bytes.as_slice()).unwrap(),
            report()
        );
        // A newer client's extra field (tag 9, varint) is ignored, as proto3 says.
        let mut newer = bytes.clone();
        newer.extend([0x48, 1]);
        assert_eq!(
            ReportObservationLogRequest::decode(newer.as_slice()).unwrap(),
            report()
        );
        // Garbage is an error, not a panic.
        assert!(ReportObservationLogRequest::decode(&[0x12, 200, 1][..]).is_err());
    }
}
