# Airflow image for zuora-workflow-sync (used by every Airflow service in docker-compose.yaml):
# the official image plus this project's package, installed as any team would add it to its
# own image. The base tag must match apache-airflow in requirements.txt (Python 3.11;
# tests/test_docker_compose.py checks both).
FROM apache/airflow:3.3.2-python3.11

# Fail the build (not the first task run) if the installed set is inconsistent.
# Set to false only to get an image for debugging.
ARG STRICT_PIP_CHECK=true

# Official pattern: install extra packages as the airflow user, never as root; keep the
# image's Airflow (`apache-airflow==${AIRFLOW_VERSION}`) and install under the constraints
# the image was built with, so nothing of Airflow's own set moves.
USER airflow
COPY --chown=airflow:0 pyproject.toml README.md /opt/airflow/src/
COPY --chown=airflow:0 plugins/ /opt/airflow/src/plugins/
COPY --chown=airflow:0 include/ /opt/airflow/src/include/
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" /opt/airflow/src \
        --constraint "${HOME}/constraints.txt" \
    && if [ "${STRICT_PIP_CHECK}" = "true" ]; then pip check; fi

# The Zuora simulator (compose profile `demo`) and the embedded-Postgres dev helpers.
# dags/ is bind-mounted by docker-compose.yaml, not baked in.
COPY --chown=airflow:0 zuora_simulator/ /opt/airflow/zuora_simulator/
COPY --chown=airflow:0 devstack/ /opt/airflow/devstack/
# `python -m zuora_simulator` works from the image's WORKDIR (/opt/airflow); compose also
# sets PYTHONPATH=/opt/airflow for the simulator service.
WORKDIR /opt/airflow
