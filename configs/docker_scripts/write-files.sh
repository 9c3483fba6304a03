#!/bin/sh
# Runs where the docker CLI reaches the stack's engine (pulumi-command). stdin: a bundle, base64.
# Unpacks the bundle into a new config volume through a container that is never started, with
# the volume at the directory its service mounts it on. A read-only container cannot be given
# files by the Docker provider (it copies every upload to `/`, which the engine refuses on a
# read-only root filesystem), but the engine admits a copy into a volume.
# The caller sets: SOS_IMAGE (the service's image), SOS_VOLUME, SOS_DIR.
set -eu
# The bundle may hold secrets: in memory where the machine has it, and removed on exit.
bundle="$(mktemp "${XDG_RUNTIME_DIR:-/dev/shm}/sos-bundle.XXXXXX" 2>/dev/null || mktemp)"
trap 'rm -f "$bundle"' EXIT
# Not a pipeline: sh has no pipefail, and a bundle that does not decode must stop here.
base64 -d > "$bundle"
# An empty stream is a valid (empty) copy to docker cp: refuse it.
[ -s "$bundle" ] || { echo "no bundle on stdin for $SOS_VOLUME" >&2; exit 1; }
# A holder left by an interrupted run would keep the volume in use.
stale="$(docker ps -aq --filter "label=sos.config-writer=$SOS_VOLUME")"
# shellcheck disable=SC2086 # one id per word
[ -z "$stale" ] || docker rm -f -v $stale > /dev/null
# nocopy: the image's directory at the mount point is not copied into the new volume, so it
# holds exactly the bundle. -v on removal: the image's own VOLUMEs leave no anonymous volume.
holder="$(docker create --network none --label sos.config-writer="$SOS_VOLUME" \
    --mount "type=volume,src=$SOS_VOLUME,dst=$SOS_DIR,volume-nocopy" --entrypoint /sos-never-started "$SOS_IMAGE")"
trap 'rm -f "$bundle"; docker rm -f -v "$holder" > /dev/null' EXIT
docker cp - "$holder:$SOS_DIR" < "$bundle"
echo "wrote $SOS_VOLUME"
