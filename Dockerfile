# blockmon: one image for the collector, the control helper and probes (the command picks the role).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /opt/blockmon
COPY pyproject.toml README.md ./
COPY probes ./probes
COPY monitor ./monitor
COPY targets ./targets
COPY reports ./reports
COPY lab ./lab
RUN pip install '.[postgres]' \
 && useradd --system --create-home --home-dir /var/lib/blockmon blockmon \
 && mkdir -p /data && chown blockmon /data

USER blockmon
WORKDIR /data
ENTRYPOINT ["blockmon"]
CMD ["--help"]
