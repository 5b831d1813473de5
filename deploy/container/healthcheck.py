"""Container health check for every role: asks the server that PID 1 runs on its own --listen port."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

# The path each server answers 200 on while it can serve (docs/collector-api.md, the helper's app).
HEALTH_PATHS = {"collector": ("/api/v1/health", 8470), "helper": ("/health", 8787)}


def listen_port(arguments: list[str], default: int) -> int:
    """The port of `--listen HOST:PORT` (or `--listen=HOST:PORT`), else the role's default."""
    for index, argument in enumerate(arguments):
        if argument == "--listen" and index + 1 < len(arguments):
            return int(arguments[index + 1].rsplit(":", 1)[1])
        if argument.startswith("--listen="):
            return int(argument.rsplit(":", 1)[1])
    return default


def main() -> int:
    arguments = Path("/proc/1/cmdline").read_bytes().decode().split("\0")
    role = next((word for word in arguments if word in HEALTH_PATHS or word == "run"), None)
    if role not in HEALTH_PATHS:
        # A probe (`blockmon run`) serves nothing; it is healthy while PID 1 lives.
        return 0
    path, default_port = HEALTH_PATHS[role]
    port = listen_port(arguments, default_port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as reply:
            return 0 if reply.status == 200 else 1
    except OSError as error:
        print(f"{role} on port {port}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
