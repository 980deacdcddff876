#!/usr/bin/env bash
# The postgres:16 stand-in's entrypoint: what the official image's does for a first start
# (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, POSTGRES_HOST_AUTH_METHOD,
# POSTGRES_INITDB_ARGS, /docker-entrypoint-initdb.d/*.sh|*.sql|*.sql.gz; UTF-8; local
# connections trusted, the network's with scram-sha-256), then the server as user postgres.
set -Eeuo pipefail

if [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi

if [ "$1" = 'postgres' ] && [ "$(id -u)" = '0' ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    find "$PGDATA" /var/run/postgresql \! -user postgres -exec chown postgres:postgres '{}' +
    chmod 700 "$PGDATA"
    chmod 3777 /var/run/postgresql
    exec gosu postgres "$BASH_SOURCE" "$@"
fi

initialize() {
    local user="${POSTGRES_USER:-postgres}"
    local db="${POSTGRES_DB:-$user}"
    local auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != 'trust' ]; then
        cat >&2 <<'EOM'
Error: Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the
       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".
EOM
        exit 1
    fi
    # shellcheck disable=SC2086
    initdb --username="$user" --pwfile=<(printf '%s\n' "${POSTGRES_PASSWORD:-}") \
        --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host="$auth" \
        ${POSTGRES_INITDB_ARGS:-} -D "$PGDATA"
    printf '\nhost all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"

    # a server on the socket only while the database and init scripts are made
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
    export PGUSER="$user" PGPASSWORD="${POSTGRES_PASSWORD:-}"
    if [ "$db" != 'postgres' ]; then
        psql -X -v ON_ERROR_STOP=1 --dbname postgres --set db="$db" <<<'CREATE DATABASE :"db";'
    fi
    local f
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh) echo "running $f"; . "$f" ;;
            *.sql) echo "running $f"; psql -X -v ON_ERROR_STOP=1 --dbname "$db" -f "$f" ;;
            *.sql.gz) echo "running $f"; gunzip -c "$f" | psql -X -v ON_ERROR_STOP=1 --dbname "$db" ;;
            *) [ -e "$f" ] && echo "ignoring $f" ;;
        esac
    done
    unset PGPASSWORD
    pg_ctl -D "$PGDATA" -m fast -w stop
    echo
    echo 'PostgreSQL init process complete; ready for start up.'
    echo
}

if [ "$1" = 'postgres' ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    initialize
fi

exec "$@"
