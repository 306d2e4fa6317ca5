# The ledger's workers (journey relay | ingest | project --source kafka | ...): one image,
# the subcommand is the container's command. See docker-compose.yml and docs/deployment.md.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    JOURNEY_HOME=/data

# Runtime dependencies only (no [test] extra). Every dependency ships manylinux wheels
# (psycopg[binary] bundles libpq), so no compiler is needed. The source is removed after the
# install: the package lives in site-packages.
COPY . /tmp/src
RUN pip install /tmp/src && rm -rf /tmp/src

# A non-root user owning the data directory. A named volume mounted on /data takes this
# ownership the first time it is mounted.
RUN groupadd --system --gid 10001 journey \
 && useradd --system --uid 10001 --gid journey --home-dir /data --no-create-home \
            --shell /usr/sbin/nologin journey \
 && mkdir -p /data \
 && chown journey:journey /data

USER journey
WORKDIR /data
VOLUME ["/data"]

ENTRYPOINT ["journey"]
CMD ["--help"]
