# Airflow image for zuora-workflow-sync (used by every Airflow service in docker-compose.yaml).
# Base tag must match the pins: apache-airflow==3.3.2 in requirements.txt, Python 3.11
# (tests/test_docker_compose.py checks both).
FROM apache/airflow:3.3.2-python3.11

# Fail the build (not the first task run) if the installed set is inconsistent. The base image
# bundles providers (FAB auth manager, Celery executor, ...) that are not in our lock file.
# Set to false only to get an image for debugging.
ARG STRICT_PIP_CHECK=true

# Official pattern: install extra packages as the airflow user, never as root.
USER airflow
COPY --chown=airflow:0 requirements.txt requirements-lock.txt /opt/airflow/requirements/
# apache-airflow is pinned again from the base image's own AIRFLOW_VERSION so that a pin in
# requirements.txt that drifts from the FROM tag fails here instead of silently swapping Airflow.
RUN pip install --no-cache-dir \
        "apache-airflow==${AIRFLOW_VERSION}" \
        -r /opt/airflow/requirements/requirements.txt \
        -c /opt/airflow/requirements/requirements-lock.txt \
    && if [ "${STRICT_PIP_CHECK}" = "true" ]; then pip check; fi

# The Zuora simulator (compose profile `demo`) and the embedded-Postgres dev helpers.
# dags/, plugins/ and include/ are bind-mounted by docker-compose.yaml, not baked in.
COPY --chown=airflow:0 zuora_simulator/ /opt/airflow/zuora_simulator/
COPY --chown=airflow:0 devstack/ /opt/airflow/devstack/
# `python -m zuora_simulator` works from the image's WORKDIR (/opt/airflow); compose also
# sets PYTHONPATH=/opt/airflow for the simulator service.
WORKDIR /opt/airflow
