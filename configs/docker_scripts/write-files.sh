#!/bin/sh
# Runs where the docker CLI reaches the stack's engine (pulumi-command). stdin: a bundle, base64.
# Unpacks the bundle into a new config volume through a container that is never started, with
# the volume at the directory its service mounts it on. A read-only container cannot be given
# files by the Docker provider (it copies every upload to `/`, which the engine refuses on a
# read-only root filesystem), but the engine admits a copy into a volume.
# The caller sets: SOS_IMAGE (the service's image), SOS_VOLUME, SOS_DIR.
set -eu
bundle="$(mktemp)"
trap 'rm -f "$bundle"' EXIT
# Not a pipeline: sh has no pipefail, and a bundle that does not decode must stop here.
base64 -d > "$bundle"
holder="$(docker create --network none --label sos.config-writer="$SOS_VOLUME" \
    --mount "type=volume,src=$SOS_VOLUME,dst=$SOS_DIR" --entrypoint /sos-never-started "$SOS_IMAGE")"
trap 'rm -f "$bundle"; docker rm -f "$holder" > /dev/null' EXIT
docker cp - "$holder:$SOS_DIR" < "$bundle"
echo "wrote $SOS_VOLUME"
