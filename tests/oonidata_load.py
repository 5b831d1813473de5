"""Run by OONI's own interpreter (.venv-oonidata): load each JSONL line with oonidata, report per line.

Usage: .venv-oonidata/bin/python tests/oonidata_load.py FILE.jsonl -> one JSON object a line:
{"line": N, "uid": ..., "error": null | "Type: message"}. It imports nothing of blockmon's.
"""

from __future__ import annotations

import json
import sys

from oonidata.dataclient import load_measurement


def main(path: str) -> None:
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            measurement = json.loads(line)
            error = None
            try:
                load_measurement(msmt=measurement)
            except Exception as exc:  # every failure is the finding: report it, go on
                error = f"{type(exc).__name__}: {str(exc)[:300]}"
            print(json.dumps({"line": number, "uid": measurement.get("measurement_uid"), "error": error}))


if __name__ == "__main__":
    main(sys.argv[1])
