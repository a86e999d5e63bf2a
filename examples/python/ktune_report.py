"""Report metrics to ktune from a trial: Katib's ``report_metrics`` for the
Push collector, with the standard library only.

ktune gives every Push trial the URL to post to and a bearer token of its
own in ``KTUNE_PUSH_URL`` and ``KTUNE_PUSH_TOKEN`` (``ktune run`` sets them
directly; ``ktune controller`` through a Secret). Copy this file next to
your training code, or run it as a command::

    from ktune_report import report_metrics
    report_metrics({"loss": 0.31, "accuracy": 0.9})

    python3 ktune_report.py loss=0.31 accuracy=0.9

Like Katib's SDK, every value must convert to a float (``ValueError``
otherwise), the reports are stamped with the time of the call, and a
failed request raises ``RuntimeError``. Each call appends; call it once per
epoch or step.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

URL_ENV = "KTUNE_PUSH_URL"
TOKEN_ENV = "KTUNE_PUSH_TOKEN"


def report_metrics(metrics, timeout=120):
    """Sends ``metrics`` (name -> number) as one report."""
    url = os.environ.get(URL_ENV)
    token = os.environ.get(TOKEN_ENV)
    if not url or not token:
        raise ValueError(f"{URL_ENV} and {TOKEN_ENV} must be set (is the collector kind Push?)")
    body = {}
    for name, value in metrics.items():
        try:
            body[str(name)] = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"metric {name!r}: {value!r} is not a number") from None
    body["timestamp"] = time.time()
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            reply.read()
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace").strip()
        raise RuntimeError(f"ktune refused the report: HTTP {e.code} {detail}") from None
    except OSError as e:
        raise RuntimeError(f"cannot reach ktune at {url}: {e}") from None


def main(args):
    metrics = {}
    for arg in args:
        name, sep, value = arg.partition("=")
        if not sep:
            print(f"usage: {sys.argv[0]} NAME=VALUE ...", file=sys.stderr)
            return 2
        metrics[name] = value
    try:
        report_metrics(metrics)
    except (ValueError, RuntimeError) as e:
        print(f"ktune_report: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
