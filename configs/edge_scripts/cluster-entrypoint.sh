#!/bin/sh
# The edge on the cluster (placement cluster): the task definition carries the release as
# SOS_EDGE_RELEASE (a gzipped tar, base64: nginx.conf and release.conf); unpack it into the
# task's writable /tmp and run it. A new release is a new task definition, rolled out like any
# other deploy, so there is no reload here.
set -eu
dir="${SOS_EDGE_DIR:-/tmp/edge}"
rm -rf "$dir"
mkdir -p "$dir" "${SOS_EDGE_CACHE:-/tmp/nginx-cache}"
printf '%s' "$SOS_EDGE_RELEASE" | base64 -d | tar -xzf - -C "$dir"
exec nginx -c "$dir/nginx.conf" -g 'daemon off;'
