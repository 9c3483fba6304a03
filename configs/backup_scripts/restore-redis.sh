# shellcheck shell=sh
# usage: restore-redis SET_DIR DATA_DIR, with the Redis image while Redis is stopped (docs/runbook.md).
set -eu
set_dir="$1"
data="$2"
(cd "$set_dir" && sha256sum -c SHA256SUMS >/dev/null) || { echo "$set_dir fails its SHA256SUMS" >&2; exit 1; }
# The previous data stays on the volume (Redis ignores the directory), never deleted.
if [ -n "$(find "$data" -mindepth 1 -maxdepth 1 ! -name 'before-restore-*')" ]; then
  aside="$data/before-restore-$(date -u +%Y%m%dT%H%M%SZ)"
  mkdir -p "$aside"
  find "$data" -mindepth 1 -maxdepth 1 ! -name 'before-restore-*' -exec mv {} "$aside"/ \;
  echo "kept the previous data as $aside"
fi
cp "$set_dir/dump.rdb" "$data/dump.rdb"
sock="${TMPDIR:-/tmp}/restore-redis.$$.sock"
redis-server --port 0 --unixsocket "$sock" --dir "$data" --dbfilename dump.rdb \
  --appendonly no --save "" --daemonize no &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
i=0
until [ "$(redis-cli -s "$sock" ping 2>/dev/null)" = PONG ]; do
  i=$((i + 1)); [ "$i" -lt 300 ] || { echo "redis did not start" >&2; exit 1; }; sleep 0.2
done
keys=$(redis-cli -s "$sock" dbsize)
redis-cli -s "$sock" config set appendonly yes >/dev/null
until redis-cli -s "$sock" info persistence | grep -q '^aof_rewrite_in_progress:0' \
  && redis-cli -s "$sock" info persistence | grep -q '^aof_rewrite_scheduled:0' \
  && redis-cli -s "$sock" info persistence | grep -q '^aof_enabled:1'; do
  sleep 0.2
done
redis-cli -s "$sock" shutdown >/dev/null 2>&1 || true
wait "$server" || true
trap - EXIT
# Run as root to read the backups volume: the files go to the data directory's owner.
if [ "$(id -u)" = 0 ]; then chown -R "$(stat -c %u:%g "$data")" "$data"; fi
echo "restored $keys keys into $data"
