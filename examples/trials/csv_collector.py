"""A Custom metrics collector (``metricsCollectorSpec.collector.kind:
Custom``): it follows a CSV file the trial appends ``epoch,accuracy``
rows to — a format none of Katib's collectors reads — and reports each row
to ktune's push endpoint (``KTUNE_PUSH_URL``, ``KTUNE_PUSH_TOKEN``) with
``examples/python/ktune_report.py``. Standard library only.

ktune runs it beside each trial (``ktune run``: a process in the trial's
folder; ``ktune controller``: a native sidecar in the trial's pod) and
sends it SIGTERM when the trial has ended; it then reads what is left of
the file, reports it and exits.

    python3 csv_collector.py --path /katib/progress.csv
"""

import argparse
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from ktune_report import report_metrics  # noqa: E402

stopping = False


def on_sigterm(_signum, _frame):
    global stopping
    stopping = True


def follow(path, poll_seconds):
    """Reports every complete row of ``path`` as it grows, until SIGTERM."""
    offset = 0
    reported = 0
    while True:
        last_round = stopping
        try:
            with open(path, encoding="utf-8") as f:
                f.seek(offset)
                chunk = f.read()
        except FileNotFoundError:
            chunk = ""
        complete = chunk[: chunk.rfind("\n") + 1]
        offset += len(complete.encode("utf-8"))
        for row in complete.splitlines():
            epoch, _, accuracy = row.partition(",")
            try:
                report_metrics({"epoch": epoch, "accuracy": accuracy})
                reported += 1
            except ValueError as e:
                print(f"csv_collector: skipped {row!r}: {e}", file=sys.stderr)
        if last_round:
            return reported
        time.sleep(poll_seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", required=True, help="the CSV file the trial writes")
    parser.add_argument("--poll", type=float, default=0.2, help="seconds between reads")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)
    reported = follow(args.path, args.poll)
    print(f"csv_collector: reported {reported} rows of {args.path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
