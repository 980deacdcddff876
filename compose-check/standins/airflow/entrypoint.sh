#!/usr/bin/env bash
# /entrypoint of the apache/airflow stand-in: the official image's entrypoint contract
# (https://airflow.apache.org/docs/docker-stack/entrypoint.html), written for compose-check:
#
#   * group 0 expected (uid 50000 with another group: a warning; any other uid: an error);
#     umask 0002; an arbitrary uid gets a passwd entry, HOME=/home/airflow
#   * unless CONNECTION_CHECK_MAX_COUNT=0: `airflow db check` until it passes
#     (CONNECTION_CHECK_MAX_COUNT tries, default 20, CONNECTION_CHECK_SLEEP_TIME apart, default 3 s)
#   * _AIRFLOW_DB_MIGRATE (or the old _AIRFLOW_DB_UPGRADE): `airflow db migrate`, a failure ignored
#   * _AIRFLOW_WWW_USER_CREATE: `airflow users create` (FAB) from _AIRFLOW_WWW_USER_* variables
#   * _PIP_ADDITIONAL_REQUIREMENTS: pip install them beside the image's Airflow, pip check, and
#     stop the container after 10 minutes (a development feature only)
#   * first argument `bash` or `python`: that program with the other arguments
#   * otherwise an Airflow command, with or without a leading `airflow`; for `scheduler` and
#     `celery`, first a wait for the Celery broker (CeleryExecutor only)
AIRFLOW_COMMAND="${1:-}"
set -euo pipefail

unset PIP_USER

warn() { >&2 echo "$@"; }

check_uid_gid() {
    [[ "$(id -g)" == "0" ]] && return
    if [[ "$(id -u)" == "50000" ]]; then
        warn "WARNING! You should run the image with GID (Group ID) set to 0 even if you use the 'airflow' user (UID=50000)."
        return
    fi
    warn "ERROR! You should run the image with GID=0 (you started it with UID=$(id -u) and GID=$(id -g))."
    exit 1
}

with_retries() {
    # run "$@" until it succeeds, at most CONNECTION_CHECK_MAX_COUNT times
    local left="${CONNECTION_CHECK_MAX_COUNT}" output
    while true; do
        if output=$("$@" 2>&1); then
            echo
            return 0
        fi
        echo -n "."
        left=$((left - 1))
        if ((left <= 0)); then
            echo
            echo "ERROR! Maximum number of retries (${CONNECTION_CHECK_MAX_COUNT}) reached."
            echo "Last check result:"
            echo "$ $*"
            echo "${output}"
            exit 1
        fi
        sleep "${CONNECTION_CHECK_SLEEP_TIME}"
    done
}

reachable() {
    # host port: TCP connect, the name looked up once (no reverse lookup)
    local ip
    ip=$(python -c "import socket, sys; print(socket.gethostbyname(sys.argv[1]))" "$1")
    nc -zn "${ip}" "$2"
}

wait_for_celery_broker() {
    [[ "$(airflow config get-value core executor)" == "CeleryExecutor" ]] || return 0
    local url host port
    url="$(airflow config get-value celery broker_url)"
    read -r host port < <(python - "${url}" <<'PY'
import sys
from urllib.parse import urlsplit
parts = urlsplit(sys.argv[1])
defaults = {"redis": 6379, "rediss": 6379, "amqp": 5672, "amqps": 5671, "sqla+postgresql": 5432}
print(parts.hostname or "localhost", parts.port or defaults.get(parts.scheme, ""))
PY
)
    if [[ -n "${host}" && -n "${port}" ]]; then
        echo "Waiting for the Celery broker at ${host}:${port}"
        with_retries reachable "${host}" "${port}"
    else
        warn "The broker's host and port could not be determined: not waiting for it."
    fi
}

create_www_user() {
    local password="${_AIRFLOW_WWW_USER_PASSWORD:-}"
    if [[ -n "${_AIRFLOW_WWW_USER_PASSWORD_CMD:-}" ]]; then
        password=$(eval "${_AIRFLOW_WWW_USER_PASSWORD_CMD}")
    fi
    unset _AIRFLOW_WWW_USER_PASSWORD _AIRFLOW_WWW_USER_PASSWORD_CMD
    if [[ -z "${password}" ]]; then
        echo "ERROR! Airflow Admin password not set via _AIRFLOW_WWW_USER_PASSWORD or _AIRFLOW_WWW_USER_PASSWORD_CMD variables!"
        exit 1
    fi
    airflow users create \
        --username "${_AIRFLOW_WWW_USER_USERNAME:-admin}" \
        --firstname "${_AIRFLOW_WWW_USER_FIRSTNAME:-Airflow}" \
        --lastname "${_AIRFLOW_WWW_USER_LASTNAME:-Admin}" \
        --email "${_AIRFLOW_WWW_USER_EMAIL:-airflowadmin@example.com}" \
        --role "${_AIRFLOW_WWW_USER_ROLE:-Admin}" \
        --password "${password}" || true
}

install_additional_requirements() {
    warn
    warn "Installing additional requirements: '${_PIP_ADDITIONAL_REQUIREMENTS}'"
    warn "WARNING: This is a development/test feature only. NEVER use it in production!"
    warn "         Build a custom image instead: https://airflow.apache.org/docs/docker-stack/build.html"
    warn
    # shellcheck disable=SC2086
    pip install "apache-airflow==${AIRFLOW_VERSION}" --root-user-action ignore --no-cache-dir ${_PIP_ADDITIONAL_REQUIREMENTS}
    pip check
    warn "Since you are using _PIP_ADDITIONAL_REQUIREMENTS, the container will shut down after 10 minutes."
    (
        sleep 600
        warn "Restarting the container after 10 minutes of running with _PIP_ADDITIONAL_REQUIREMENTS"
        kill -HUP 0
    ) &
}

check_uid_gid
umask 0002

: "${CONNECTION_CHECK_MAX_COUNT:=20}"
: "${CONNECTION_CHECK_SLEEP_TIME:=3}"
readonly CONNECTION_CHECK_MAX_COUNT CONNECTION_CHECK_SLEEP_TIME

if ! whoami &>/dev/null; then
    if [[ -w /etc/passwd ]]; then
        echo "${USER_NAME:-default}:x:$(id -u):0:${USER_NAME:-default} user:${AIRFLOW_USER_HOME_DIR}:/sbin/nologin" >> /etc/passwd
    fi
    export HOME="${AIRFLOW_USER_HOME_DIR}"
fi
if [[ "$(id -u)" == "0" ]]; then
    warn "The container is run as root user. For security, consider using a regular user account."
fi

if ((CONNECTION_CHECK_MAX_COUNT > 0)); then
    with_retries airflow db check
fi

if [[ -n "${_AIRFLOW_DB_MIGRATE:-}" || -n "${_AIRFLOW_DB_UPGRADE:-}" ]]; then
    airflow db migrate || true
fi
if [[ -n "${_AIRFLOW_DB_UPGRADE:-}" ]]; then
    warn "WARNING: Environment variable '_AIRFLOW_DB_UPGRADE' is deprecated please use '_AIRFLOW_DB_MIGRATE' instead"
fi
if [[ -n "${_AIRFLOW_WWW_USER_CREATE:-}" ]]; then
    create_www_user
fi
if [[ -n "${_PIP_ADDITIONAL_REQUIREMENTS:-}" ]]; then
    install_additional_requirements
fi

# bash and python run after the database check too
if [[ "${AIRFLOW_COMMAND}" == "bash" ]]; then
    shift
    exec /bin/bash "$@"
elif [[ "${AIRFLOW_COMMAND}" == "python" ]]; then
    shift
    exec python "$@"
fi

if [[ "${AIRFLOW_COMMAND}" == "airflow" ]]; then
    AIRFLOW_COMMAND="${2:-}"
    shift
fi

if [[ "${AIRFLOW_COMMAND}" =~ ^(scheduler|celery)$ ]] && ((CONNECTION_CHECK_MAX_COUNT > 0)); then
    wait_for_celery_broker
fi

exec airflow "$@"
