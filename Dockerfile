# blockmon: one image for the collector, the control helper and probes (the command picks the role).
# BASE_IMAGE: any Debian-like image with Python 3.11 and venv, e.g. one built with debootstrap
# where the official image cannot be pulled (docs/deploy.md, "Without a registry").
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/blockmon/venv/bin:$PATH
WORKDIR /opt/blockmon
COPY pyproject.toml README.md ./
COPY probes ./probes
COPY monitor ./monitor
COPY targets ./targets
COPY reports ./reports
# The lab package stays: `blockmon demo` and `blockmon lab` are part of the command line.
COPY lab ./lab
COPY deploy/container/healthcheck.py /opt/blockmon/healthcheck.py
# A venv, not the system Python: Debian's refuses pip installs (PEP 668), the slim image does not care.
RUN python3 -m venv /opt/blockmon/venv \
 && /opt/blockmon/venv/bin/pip install --no-compile '.[postgres]' \
 && rm -rf /opt/blockmon/build /opt/blockmon/*.egg-info \
 && useradd --system --create-home --home-dir /var/lib/blockmon blockmon \
 && mkdir -p /data && chown blockmon /data

USER blockmon
WORKDIR /data
# Collector and helper: their health endpoint on their own --listen port; a probe: alive.
HEALTHCHECK --interval=10s --timeout=5s --retries=6 CMD ["python", "/opt/blockmon/healthcheck.py"]
ENTRYPOINT ["blockmon"]
CMD ["--help"]
