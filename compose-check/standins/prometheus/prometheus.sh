#!/bin/sh
# The prom/prometheus stand-in's entrypoint: Debian's prometheus, which stores its data in
# /var/lib/prometheus/metrics2 unless told (a Debian patch), stores it in data/ under the
# working directory (/prometheus, the volume) as the official binary does.
case " $* " in
    *" --storage.tsdb.path"*) ;;
    *) set -- "$@" --storage.tsdb.path=data/ ;;
esac
exec /usr/bin/prometheus "$@"
