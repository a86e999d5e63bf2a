//! TensorBoard event files (`events.out.tfevents.*`), read as Katib's
//! TensorFlowEvent collector reads them (katib-reference.md §6.4), for the
//! TensorFlowEvent collector kind.
//!
//! A file is a sequence of TFRecords — `u64` length (little-endian), the
//! masked CRC-32C of those 8 bytes, the data, the masked CRC-32C of the
//! data — each holding one `tensorflow.Event` protobuf. Scalars come as a
//! summary value's `simple_value` (TF1, tensorboardX) or as a scalar
//! `tensor` (TF2's `tf.summary.scalar`, PyTorch's SummaryWriter): both are
//! read. The messages below declare only the fields read (prost skips the
//! others), after the public `event.proto`, `summary.proto` and
//! `tensor.proto` of TensorFlow.
//!
//! Files are read as they grow: a record cut short at the end of a file is
//! read again at the next poll; a record whose CRC does not match ends the
//! reading of that file (with a warning), as TensorBoard does.
//!
//! A metric name matches as in Katib: `name` matches a tag that starts
//! with its last `/`-separated element, in a file whose folder ends with
//! the name's folder part (`train/accuracy` matches tag `accuracy` in
//! `…/train/events.out.tfevents…`); a name without `/` matches in any
//! folder. The report keeps the metric's name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use super::MetricLog;

/// `tensorflow.Event`, the fields read.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// The global step.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// A summary of values.
    #[prost(message, optional, tag = "5")]
    pub summary: Option<Summary>,
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// Its values.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value`, the fields read.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryValue {
    /// The tag.
    #[prost(string, tag = "1")]
    pub tag: String,
    /// A TF1 scalar.
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
    /// A tensor (TF2 scalars).
    #[prost(message, optional, tag = "8")]
    pub tensor: Option<TensorProto>,
}

/// `tensorflow.TensorProto`, the fields read.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// `DataType`: 1 float, 2 double, 3 int32, 9 int64.
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    /// The values as raw little-endian bytes.
    #[prost(bytes = "vec", tag = "4")]
    pub tensor_content: Vec<u8>,
    /// Float values.
    #[prost(float, repeated, tag = "5")]
    pub float_val: Vec<f32>,
    /// Double values.
    #[prost(double, repeated, tag = "6")]
    pub double_val: Vec<f64>,
    /// Int32 values.
    #[prost(int32, repeated, tag = "7")]
    pub int_val: Vec<i32>,
    /// Int64 values.
    #[prost(int64, repeated, tag = "10")]
    pub int64_val: Vec<i64>,
}

const DT_FLOAT: i32 = 1;
const DT_DOUBLE: i32 = 2;
const DT_INT32: i32 = 3;
const DT_INT64: i32 = 9;

impl TensorProto {
    /// The tensor's first value as text (a scalar's value), as Python
    /// prints the number; `None` for another type or no value.
    #[must_use]
    pub fn scalar_text(&self) -> Option<String> {
        let raw = |n: usize| self.tensor_content.get(..n);
        match self.dtype {
            DT_FLOAT => self
                .float_val
                .first()
                .copied()
                .or_else(|| Some(f32::from_le_bytes(raw(4)?.try_into().ok()?)))
                .map(|v| v.to_string()),
            DT_DOUBLE => self
                .double_val
                .first()
                .copied()
                .or_else(|| Some(f64::from_le_bytes(raw(8)?.try_into().ok()?)))
                .map(|v| v.to_string()),
            DT_INT32 => self
                .int_val
                .first()
                .copied()
                .or_else(|| Some(i32::from_le_bytes(raw(4)?.try_into().ok()?)))
                .map(|v| v.to_string()),
            DT_INT64 => self
                .int64_val
                .first()
                .copied()
                .or_else(|| Some(i64::from_le_bytes(raw(8)?.try_into().ok()?)))
                .map(|v| v.to_string()),
            _ => None,
        }
    }
}

/// CRC-32C as TFRecord masks it.
fn masked_crc(bytes: &[u8]) -> u32 {
    const CASTAGNOLI: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
    let crc = CASTAGNOLI.checksum(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Why a file's records cannot be read on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A length or data checksum does not match.
    #[error("corrupt record at byte {0} (CRC mismatch)")]
    Corrupt(u64),
    /// A record's data is not an Event.
    #[error("record at byte {0} is not a tensorflow.Event: {1}")]
    NotAnEvent(u64, String),
}

/// The complete records in `bytes` from `offset`: each record's data, and
/// the offset after the last complete one (a record cut short stays for
/// the next read).
///
/// # Errors
/// [`RecordError::Corrupt`] at the first record whose checksums fail.
pub fn records(bytes: &[u8], mut offset: usize) -> Result<(Vec<&[u8]>, usize), RecordError> {
    let mut out = Vec::new();
    loop {
        let corrupt = || RecordError::Corrupt(offset as u64);
        let Some(header) = bytes.get(offset..offset.saturating_add(12)) else {
            return Ok((out, offset));
        };
        let (length, length_crc) = header.split_at(8);
        if masked_crc(length) != u32::from_le_bytes(length_crc.try_into().map_err(|_| corrupt())?) {
            return Err(corrupt());
        }
        let length = u64::from_le_bytes(length.try_into().map_err(|_| corrupt())?);
        let length = usize::try_from(length).map_err(|_| corrupt())?;
        // The length is the file's word: a huge one must not overflow.
        let start = offset + 12;
        let (Some(end), Some(next)) = (
            start.checked_add(length),
            start.checked_add(length).and_then(|e| e.checked_add(4)),
        ) else {
            return Err(corrupt());
        };
        let (Some(data), Some(data_crc)) = (bytes.get(start..end), bytes.get(end..next)) else {
            return Ok((out, offset));
        };
        if masked_crc(data) != u32::from_le_bytes(data_crc.try_into().map_err(|_| corrupt())?) {
            return Err(corrupt());
        }
        out.push(data);
        offset = next;
    }
}

/// Whether metric `name` matches `tag` in a file whose folder is `folder`
/// (Katib's rule; see the module's doc).
#[must_use]
pub fn matches(name: &str, tag: &str, folder: &Path) -> bool {
    let (parent, last) = match name.rsplit_once('/') {
        Some((parent, last)) => (Some(parent), last),
        None => (None, name),
    };
    tag.starts_with(last) && parent.is_none_or(|p| folder.ends_with(p))
}

/// The reports of `metrics` in one event.
#[must_use]
pub fn event_reports(event: &Event, metrics: &[String], folder: &Path) -> Vec<MetricLog> {
    let time = Timestamp::from_nanosecond((event.wall_time * 1e9) as i128).ok();
    let Some(summary) = &event.summary else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for value in &summary.value {
        let text = value
            .simple_value
            .map(|v| v.to_string())
            .or_else(|| value.tensor.as_ref().and_then(TensorProto::scalar_text));
        let Some(text) = text else {
            continue;
        };
        for name in metrics.iter().filter(|m| matches(m, &value.tag, folder)) {
            out.push(MetricLog {
                name: name.clone(),
                value: text.clone(),
                time,
            });
        }
    }
    out
}

/// How far one file was read.
#[derive(Debug, Clone, Default)]
struct Progress {
    /// The offset after the last complete record read.
    offset: usize,
    /// The file's first bytes as read (up to [`SIGNATURE`]): a file that
    /// no longer starts with them was written anew (writers name files by
    /// the second they open them, so a trial that starts within the same
    /// second as the one before it truncates and rewrites that file).
    start: Vec<u8>,
    /// Proved corrupt: not read on.
    corrupt: bool,
}

/// How many first bytes identify a file (its first record holds the
/// writer's start time to the microsecond).
const SIGNATURE: usize = 64;

/// Every event file below a folder, read as it grows.
#[derive(Debug, Clone)]
pub struct EventFiles {
    dir: PathBuf,
    metrics: Vec<String>,
    read: BTreeMap<PathBuf, Progress>,
}

impl EventFiles {
    /// The event files below `dir`, for `metrics`.
    #[must_use]
    pub fn new(dir: PathBuf, metrics: Vec<String>) -> Self {
        Self {
            dir,
            metrics,
            read: BTreeMap::new(),
        }
    }

    /// The reports written since the last poll, file by file in name order.
    pub fn poll(&mut self) -> Vec<MetricLog> {
        let mut out = Vec::new();
        for file in event_files(&self.dir) {
            let progress = self.read.entry(file.clone()).or_default();
            let Some(tail) = read_new(&file, progress) else {
                continue;
            };
            let folder = file.parent().unwrap_or(&self.dir).to_path_buf();
            match records(&tail, 0) {
                Ok((found, read)) => {
                    for data in found {
                        match <Event as prost::Message>::decode(data) {
                            Ok(event) => {
                                out.extend(event_reports(&event, &self.metrics, &folder));
                            }
                            Err(e) => tracing::warn!(
                                file = %file.display(),
                                "{}",
                                RecordError::NotAnEvent(progress.offset as u64, e.to_string())
                            ),
                        }
                    }
                    progress.offset += read;
                }
                Err(e) => {
                    tracing::warn!(file = %file.display(), "event file not read on: {e}");
                    progress.corrupt = true;
                }
            }
        }
        out
    }
}

/// What `file` holds past `progress` (from its start when it was written
/// anew since, see [`Progress::start`]): only its first bytes and what it
/// gained are read, not the whole file each time. `None` when there is
/// nothing new, or it cannot be read, or it proved corrupt.
fn read_new(file: &Path, progress: &mut Progress) -> Option<Vec<u8>> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut handle = std::fs::File::open(file).ok()?;
    let length = usize::try_from(handle.metadata().ok()?.len()).ok()?;
    let mut head = vec![0; length.min(SIGNATURE)];
    handle.read_exact(&mut head).ok()?;
    if !head.starts_with(&progress.start) || length < progress.offset {
        *progress = Progress::default();
    }
    progress.start = head;
    if progress.corrupt || length == progress.offset {
        return None;
    }
    handle.seek(SeekFrom::Start(progress.offset as u64)).ok()?;
    let mut tail = Vec::with_capacity(length - progress.offset);
    handle.read_to_end(&mut tail).ok()?;
    Some(tail)
}

/// The event files below `dir` (names containing `tfevents`), sorted.
fn event_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => folders.push(path),
                Ok(t)
                    if t.is_file()
                        && path
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().contains("tfevents")) =>
                {
                    out.push(path);
                }
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// Event files for tests, written as TensorBoard's writers write them.
#[cfg(test)]
pub(crate) mod tests_support {
    use prost::Message as _;

    use super::{Event, Summary, SummaryValue, masked_crc};

    /// One TFRecord holding `data`.
    pub(crate) fn record(data: &[u8]) -> Vec<u8> {
        let length = (data.len() as u64).to_le_bytes();
        let mut out = length.to_vec();
        out.extend(masked_crc(&length).to_le_bytes());
        out.extend(data);
        out.extend(masked_crc(data).to_le_bytes());
        out
    }

    /// A file of one TF1 scalar event per (tag, value), steps from 1.
    pub(crate) fn scalar_file(scalars: &[(&str, f32)]) -> Vec<u8> {
        scalar_file_at(1_700_000_000.0, scalars)
    }

    /// [`scalar_file`] with its events' times from `start` (seconds).
    pub(crate) fn scalar_file_at(start: f64, scalars: &[(&str, f32)]) -> Vec<u8> {
        scalars
            .iter()
            .zip(1_i64..)
            .flat_map(|((tag, value), step)| {
                let event = Event {
                    wall_time: start + step as f64,
                    step,
                    summary: Some(Summary {
                        value: vec![SummaryValue {
                            tag: (*tag).to_owned(),
                            simple_value: Some(*value),
                            tensor: None,
                        }],
                    }),
                };
                record(&event.encode_to_vec())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::record;
    use super::*;
    use prost::Message as _;

    fn scalar_event(step: i64, tag: &str, value: SummaryValue) -> Vec<u8> {
        Event {
            wall_time: 1_700_000_000.5 + step as f64,
            step,
            summary: Some(Summary {
                value: vec![SummaryValue {
                    tag: tag.into(),
                    ..value
                }],
            }),
        }
        .encode_to_vec()
    }

    fn simple(v: f32) -> SummaryValue {
        SummaryValue {
            tag: String::new(),
            simple_value: Some(v),
            tensor: None,
        }
    }

    fn tensor(dtype: i32, content: Vec<u8>) -> SummaryValue {
        SummaryValue {
            tag: String::new(),
            simple_value: None,
            tensor: Some(TensorProto {
                dtype,
                tensor_content: content,
                ..TensorProto::default()
            }),
        }
    }

    /// TFRecord's checksum: CRC-32C (its standard check value), masked as
    /// TensorFlow's `crc32c::Mask` does (rotate right by 15, add
    /// 0xa282ead8). Real files written by tensorboardX are read in
    /// tests/tfevent_collector.rs.
    #[test]
    fn the_checksum_is_masked_crc32c() {
        let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(b"123456789");
        assert_eq!(crc, 0xe306_9283, "CRC-32C check value");
        assert_eq!(masked_crc(b"123456789"), 0x_c78a_b0e5);
    }

    #[test]
    fn records_are_read_whole_and_a_cut_one_waits() {
        let mut bytes = record(b"one");
        bytes.extend(record(b"two"));
        let full = bytes.len();
        bytes.extend(&record(b"three")[..7]);
        let (found, next) = records(&bytes, 0).unwrap();
        assert_eq!(found, [&b"one"[..], &b"two"[..]]);
        assert_eq!(next, full);
        let mut corrupt = record(b"bad");
        corrupt[13] ^= 1;
        assert_eq!(records(&corrupt, 0), Err(RecordError::Corrupt(0)));
        // A length near the end of the address space, with a valid CRC:
        // refused, not an overflow.
        let huge = (u64::MAX - 8).to_le_bytes();
        let mut framed = huge.to_vec();
        framed.extend(masked_crc(&huge).to_le_bytes());
        framed.extend(b"data");
        assert_eq!(records(&framed, 0), Err(RecordError::Corrupt(0)));
    }

    #[test]
    fn scalars_of_every_kind_become_reports_named_as_katib_names_them() {
        let folder = Path::new("/logs/run/train");
        let metrics = vec![
            "accuracy".to_owned(),
            "train/loss".to_owned(),
            "test/loss".to_owned(),
        ];
        let events = [
            scalar_event(1, "accuracy", simple(0.5)),
            scalar_event(2, "loss", tensor(DT_FLOAT, 0.25_f32.to_le_bytes().to_vec())),
            scalar_event(
                3,
                "accuracy_top5",
                tensor(DT_DOUBLE, 0.75_f64.to_le_bytes().to_vec()),
            ),
            scalar_event(4, "steps", tensor(DT_INT64, 7_i64.to_le_bytes().to_vec())),
        ];
        let got: Vec<(String, String)> = events
            .iter()
            .flat_map(|e| event_reports(&Event::decode(&e[..]).unwrap(), &metrics, folder))
            .map(|l| (l.name, l.value))
            .collect();
        assert_eq!(
            got,
            [
                ("accuracy".to_owned(), "0.5".to_owned()),
                ("train/loss".to_owned(), "0.25".to_owned()),
                // Katib's prefix rule: `accuracy` matches `accuracy_top5`.
                ("accuracy".to_owned(), "0.75".to_owned()),
            ]
        );
    }

    #[test]
    fn a_folder_of_growing_event_files_is_read_once_each() {
        let dir = std::env::temp_dir().join(format!("ktune-tfevent-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("train")).unwrap();
        let file = dir.join("train/events.out.tfevents.1.host");
        std::fs::write(&file, record(&scalar_event(1, "loss", simple(0.5)))).unwrap();
        std::fs::write(dir.join("notes.txt"), "not an event file").unwrap();
        let mut files = EventFiles::new(dir.clone(), vec!["loss".into()]);
        let first = files.poll();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].value, "0.5");
        assert!(first[0].time.is_some());
        assert!(files.poll().is_empty(), "nothing new");
        let mut more = std::fs::read(&file).unwrap();
        more.extend(record(&scalar_event(2, "loss", simple(0.25))));
        std::fs::write(&file, more).unwrap();
        let second = files.poll();
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].value, "0.25");
        // Another writer opens the same name and writes it anew, as long
        // as it was: read from its start.
        let rewritten =
            tests_support::scalar_file_at(2_000_000_000.0, &[("loss", 0.125), ("loss", 0.0625)]);
        assert_eq!(rewritten.len(), std::fs::read(&file).unwrap().len());
        std::fs::write(&file, rewritten).unwrap();
        let third: Vec<String> = files.poll().into_iter().map(|l| l.value).collect();
        assert_eq!(third, ["0.125", "0.0625"]);
        let _ = std::fs::remove_dir_all(dir);
    }
}
