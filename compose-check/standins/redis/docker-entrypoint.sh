#!/bin/sh
# The redis:7.2-bookworm stand-in's entrypoint: `redis-server` for a first argument that is an
# option or a .conf file, the server as user redis; without a config file, protected mode off
# (the official image's build does that; Debian's binary defaults to on).
set -e

if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi

if [ "$1" = 'redis-server' ] && [ "$(id -u)" = '0' ]; then
    find . \! -user redis -exec chown redis '{}' +
    exec gosu redis "$0" "$@"
fi

if [ "$1" = 'redis-server' ] && [ "${2%.conf}" = "${2:-}" ]; then
    shift
    set -- redis-server --protected-mode no "$@"
fi

exec "$@"
