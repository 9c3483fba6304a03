#!/bin/sh
# Runs on the Docker host (pulumi-command). stdin: the release bundle, base64.
# Checks and installs the release in a throwaway container of the edge image, then has the
# running edge (if any) reload it with SIGHUP: nginx starts new workers on the new
# configuration and lets the old ones finish their requests, so no connection drops. Waits
# until the edge's health endpoint reports the new release; fails the deployment otherwise.
# The caller sets: SOS_IMAGE, SOS_VOLUME, SOS_CONTAINER, SOS_INSTALL (install-release.sh),
# SOS_EDGE_DIR, SOS_CACHE_DIR, SOS_HEALTH_URL, SOS_PID_FILE, SOS_USER.
set -eu
bundle="$(mktemp)"
installed="$(mktemp)"
trap 'rm -f "$bundle" "$installed"' EXIT
base64 -d > "$bundle"

# Not a pipeline: sh has no pipefail, and a refused release must stop here.
docker run --rm -i --network none --user "$SOS_USER" --read-only --cap-drop ALL \
    --security-opt no-new-privileges:true --pids-limit 64 --memory 128m \
    --tmpfs /tmp:rw,noexec,nosuid,size=16m \
    --tmpfs "$SOS_CACHE_DIR:rw,noexec,nosuid,size=1m,uid=${SOS_USER%%:*},gid=${SOS_USER##*:}" \
    --mount "type=volume,src=$SOS_VOLUME,dst=$SOS_EDGE_DIR" \
    --env "SOS_EDGE_DIR=$SOS_EDGE_DIR" --entrypoint /bin/sh \
    "$SOS_IMAGE" -c "$SOS_INSTALL" < "$bundle" > "$installed"
id="$(tail -n 1 "$installed")"

# Reloaded only if it runs and runs on releases: an edge from before releases (its files were
# uploads) is about to be replaced by one that starts on this release.
state="$(docker container inspect --format '{{.State.Running}}{{range .Mounts}} {{.Name}}{{end}} ' \
    "$SOS_CONTAINER" 2>/dev/null || true)"
case "$state" in
    "true"*" $SOS_VOLUME "*) ;;
    *)
        echo "edge release $id installed; $SOS_CONTAINER starts with it"
        exit 0
        ;;
esac
# From inside the container, not `docker kill --signal HUP`: the engine takes any signal sent
# through its kill API as the user stopping the container, and `unless-stopped` would then no
# longer restart the edge after a crash or a reboot (tests/test_docker_engine.py).
docker exec "$SOS_CONTAINER" sh -c 'kill -HUP "$(cat "$1")"' sh "$SOS_PID_FILE"
tries=0
until [ "$(docker exec "$SOS_CONTAINER" wget -q -O - "$SOS_HEALTH_URL" 2>/dev/null || true)" = "$id" ]; do
    tries=$((tries + 1))
    if [ "$tries" -ge 30 ]; then
        echo "$SOS_CONTAINER did not load edge release $id within 30 s; its log:" >&2
        docker logs --tail 30 "$SOS_CONTAINER" >&2 || true
        exit 1
    fi
    sleep 1
done
echo "edge release $id live in $SOS_CONTAINER"
