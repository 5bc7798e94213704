# One image for all of Granula's Dagster processes: the code location (the default command below),
# the webserver and the daemon. docker-compose.yml chooses the process with `command:`.
FROM python:3.11-slim

# The inbox is bind-mounted from the host: build with your own ids (docker-compose.yml passes
# GRANULA_UID/GRANULA_GID) so the container can move finished files out of data/inbox/.
ARG GRANULA_UID=1000
ARG GRANULA_GID=1000

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    DATA_DIR=/opt/dagster/app/data

RUN groupadd --gid "${GRANULA_GID}" granula \
    && useradd --uid "${GRANULA_UID}" --gid granula --create-home --shell /usr/sbin/nologin granula

# Installed from a scratch copy, not from the working directory, so the code that runs is the
# installed package (with its migrations as package data), never a stray source tree.
COPY pyproject.toml README.md /tmp/granula/
COPY granula_pipeline /tmp/granula/granula_pipeline
RUN pip install /tmp/granula && rm -rf /tmp/granula

# storage/ holds the captured op and sensor logs; docker-compose.yml mounts a volume there that the
# webserver shares, and a new volume takes this directory's owner.
RUN mkdir -p /opt/dagster/dagster_home/storage \
        /opt/dagster/app/data/inbox /opt/dagster/app/data/processed /opt/dagster/app/data/failed \
    && chown -R granula:granula /opt/dagster
COPY dagster.yaml /opt/dagster/dagster_home/dagster.yaml
COPY workspace.docker.yaml /opt/dagster/app/workspace.docker.yaml

WORKDIR /opt/dagster/app
USER granula
EXPOSE 3000 4000

CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", \
     "-m", "granula_pipeline.definitions", "--location-name", "granula"]
