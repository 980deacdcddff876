# Airflow image for zuora-workflow-sync (used by every Airflow service in docker-compose.yaml):
# the official image plus this project's package, installed as any team would add it to its
# own image. The base tag must match apache-airflow in requirements.txt and the lock (Python
# 3.11; tests/test_docker_compose.py checks both).
FROM apache/airflow:3.3.2-python3.11

# Fail the build (not the first task run) if the installed set is inconsistent.
# Set to false only to get an image for debugging.
ARG STRICT_PIP_CHECK=true

# Official pattern: install extra packages as the airflow user, never as root, and keep the
# image's Airflow (`apache-airflow==${AIRFLOW_VERSION}`). The constraints are the versions the
# tests ran (requirements-lock.txt), not the image's own constraints file: requirements.txt
# names what runs (providers, celery, psycopg, ...), so those, the package's dependencies and
# Airflow's own dependencies all get the lock's versions. Packages the image bundles that
# nothing here needs (other providers) keep the image's versions; `pip check` holds the whole.
USER airflow
COPY --chown=airflow:0 requirements.txt requirements-lock.txt pyproject.toml README.md /opt/airflow/src/
COPY --chown=airflow:0 plugins/ /opt/airflow/src/plugins/
COPY --chown=airflow:0 include/ /opt/airflow/src/include/
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" \
        -r /opt/airflow/src/requirements.txt /opt/airflow/src \
        --constraint /opt/airflow/src/requirements-lock.txt \
    && if [ "${STRICT_PIP_CHECK}" = "true" ]; then pip check; fi

# The Zuora simulator (compose profile `demo`: the simulator and zuora-demo-init run
# `python -m zuora_simulator...` from the WORKDIR, with PYTHONPATH=/opt/airflow).
# dags/ is bind-mounted by docker-compose.yaml, not baked in; devstack/ (embedded Postgres and
# Redis for running without Docker) is not in the image.
COPY --chown=airflow:0 zuora_simulator/ /opt/airflow/zuora_simulator/
WORKDIR /opt/airflow
