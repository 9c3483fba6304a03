"""The platform as its users meet it: each stack's generated edge in front of the real Next.js
site, the real Fastify API and n8n at the pinned version, opened in Debian's Chromium.

Per platform, one set of processes: PostgreSQL 16 initialised by the stack's own init SQL, n8n, the
API and the site with their containers' environments, nginx with the generated configuration,
and the browser reaching every host on its public port through `testsupport/browser.EdgeGateway`
(443, and 8443 for dev with `edgePorts` moved, as on a laptop where 80/443 are taken). Grafana
cannot run here: its host is checked for its headers only (docs/ has what stays unproven).

The cluster placement (`production-cluster`, `staging-cluster`): everything from the plan's ECS
task definitions instead: the edge's nginx.conf from the release its task carries, the API's,
the site's and n8n's environments with their Secrets Manager references resolved from the plan's
secret values; n8n in queue mode (main, webhook and worker processes on Redis 7 over TLS with an
AUTH token, PostgreSQL over TLS). Cloudflare's stand-in reaches the load balancer's stand-in
(`testsupport/alb.LoadBalancer`, built from the plan's load balancer, listener and target group:
TLS with the stack's certificate, mutual TLS, the headers an ALB adds), which forwards plain
HTTP/1.1 to the edge. The same checks run there, but those of what the cluster has not: Grafana,
nginx's own plain-HTTP redirect (the load balancer listens on 443 only; the zone's Always Use
HTTPS has Cloudflare answer http://) and the README's `docker exec` purge.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import re
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

from configs import edge_headers, edge_release
from configs import nginx as ng
from configs import postgres as pg
from offline import harness
from testsupport import apps
from testsupport.alb import AlbConfig, LoadBalancer
from testsupport.browser import Browser, EdgeGateway
from testsupport.edge import Nginx, OriginClient, TestPki
from testsupport.plans import EDGE_CONF, STACKS, container_env, plan_for, service_of, task_container, task_env
from testsupport.servers import free_port, loopback_tls, pg_for_n8n, wait_for
from testsupport.tools import ROOT
from tools.plan import write_files

CONTAINER = "docker:index/container:Container"
OWNER = {"email": "owner@example.com", "firstName": "Ada", "lastName": "Lovelace",
         "password": "Correct-horse-7-battery"}
WEBHOOK_PATH = "e2e-answer"
# Each platform: its stack, its placement and the settings it overrides. `dev-8443` is dev with
# its published ports moved: every URL the applications are given and every redirect then carries
# the port, and n8n and Next.js compare the port in the browser's Origin with the edge's
# X-Forwarded-Host. `<stack>-cluster`: the stack with `placement: cluster`.
MOVED_PORTS = {"http": 8080, "https": 8443}
PLATFORMS = {stack: (stack, "local" if stack == "dev" else "host", {}) for stack in STACKS} | \
    {"dev-8443": ("dev", "local", {"edgePorts": MOVED_PORTS})} | \
    {f"{stack}-cluster": (stack, "cluster", {"placement": "cluster"}) for stack in ("production", "staging")}
# The platforms from the Docker plans: a check of what only they have is parametrized over these.
# They come first in PLATFORMS, so their indices are the same in both lists and pytest keeps each
# platform's processes for all of its tests (it groups a module fixture's tests by the index).
DOCKER_PLATFORMS = [name for name, (_, placement, _) in PLATFORMS.items() if placement != "cluster"]
assert DOCKER_PLATFORMS == list(PLATFORMS)[:len(DOCKER_PLATFORMS)]


@dataclass
class Platform:
    stack: str
    placement: str  # local (dev), host or cluster
    port: int  # the HTTPS port in the browser's URLs
    plan: harness.Plan
    domain: str
    nginx: Nginx
    # What Cloudflare connects to: nginx itself, or on the cluster the load balancer in front of it.
    origin: OriginClient
    gateway: EdgeGateway
    browser: Browser
    site: apps.Process
    api: apps.Process
    n8n: apps.Process  # the main process
    conf: str  # the stack's generated nginx.conf, before it is tied to this machine
    site_env: dict[str, str]
    upstreams: dict[str, int]  # each upstream of `conf` -> the loopback port serving it
    # The cluster's n8n webhook process and worker (queue mode); none on the Docker placements.
    n8n_queue: dict[str, apps.Process]

    def url(self, kind: str, path: str = "/") -> str:
        return f"https://{self.host(kind)}{'' if self.port == 443 else f':{self.port}'}{path}"

    def host(self, kind: str) -> str:
        return self.domain if kind == "site" else f"{kind}.{self.domain}"

    @contextlib.contextmanager
    def another_edge(self, conf: str | None = None, **upstreams: int) -> Iterator[OriginClient]:
        """An edge of its own (this platform's configuration, or `conf`) on this platform's
        applications (or those `upstreams` name), reached as Cloudflare reaches this platform's:
        nginx itself, or on the cluster a load balancer of the plan's in front of it."""
        edge = _edge(self.placement, conf or self.conf, self.domain, self.nginx.pki, {**self.upstreams, **upstreams})
        edge.start()
        try:
            if not isinstance(self.origin, LoadBalancer):
                yield edge
                return
            balancer = LoadBalancer(self.origin.config, self.nginx.pki, _targets(edge))
            try:
                yield balancer
            finally:
                balancer.close()
        finally:
            edge.stop()


def first_replica(plan, service: str):
    """The first (or only) container of a service (`sos-<stack>-api-0`)."""
    return min((c for c in plan.of_type(CONTAINER) if service_of(c) == service), key=lambda c: c.name)


@dataclass
class Deployment:
    """What a placement's plan deploys, as this machine runs it: the edge's configuration and
    each application's environment."""

    conf: str
    site_env: dict[str, str]
    api_env: dict[str, str]
    n8n_env: dict[str, str]  # the main process's; the cluster's webhook and worker have their own
    n8n_queue_envs: dict[str, dict[str, str]]


def docker_deployment(plan: harness.Plan, files: Path) -> Deployment:
    write_files(plan, files)
    return Deployment(conf=(files / EDGE_CONF).read_text(), site_env=container_env(first_replica(plan, "frontend")),
                      api_env=container_env(first_replica(plan, "api")),
                      n8n_env=container_env(plan.one(CONTAINER, "n8n-svc")), n8n_queue_envs={})


def cluster_deployment(plan: harness.Plan) -> Deployment:
    """The ECS task definitions: the edge task's command unpacks the release its environment
    carries (configs/edge_scripts/cluster-entrypoint.sh; run under BusyBox in
    tests/test_cluster_runtime.py) and runs nginx on its nginx.conf."""
    edge = task_container(plan, "edge")
    assert edge["command"] == ["sh", "-c", edge_release.cluster_entrypoint()], edge["command"]
    release = edge_release.cluster_unbundle(task_env(plan, "edge")[edge_release.CLUSTER_RELEASE_VARIABLE])
    return Deployment(conf=release[edge_release.CONF_FILE].content, site_env=task_env(plan, "frontend"),
                      api_env=task_env(plan, "api"), n8n_env=task_env(plan, "n8n"),
                      n8n_queue_envs={task: task_env(plan, task) for task in ("n8n-webhook", "n8n-worker")})


def _edge(placement: str, conf: str, domain: str, pki: TestPki, upstreams: dict[str, int]) -> Nginx:
    # On the cluster the load balancer (loopback here) is inside the VPC range the edge takes
    # Cloudflare's client address from, as the real one is.
    return Nginx(conf, domain, pki=pki, upstreams=upstreams,
                 extra_real_ip=["127.0.0.1/32"] if placement == "cluster" else None)


def _targets(edge: Nginx) -> dict[int, int]:
    """The edge task's container ports -> where this nginx listens for them."""
    return {ng.HTTP_PORT: edge.ports[ng.HTTP_PORT], ng.HEALTH_PORT: edge.ports[ng.HEALTH_PORT]}


@contextlib.contextmanager
def running_platform(name: str, work: Path) -> Iterator[Platform]:
    """Every process of one platform, torn down in reverse order whatever happens."""
    stack, placement, overrides = PLATFORMS[name]
    overrides = dict(overrides)
    if stack != "dev":
        # An operator's own address is the only one admitted to n8n and Grafana on the cloud
        # stacks; here the operator is on loopback.
        overrides["adminCidrs"] = ["127.0.0.1/32"]
    plan = harness.run(stack, overrides=overrides) if overrides else plan_for(stack)
    port = overrides.get("edgePorts", {}).get("https", 443)
    files = work / "files"
    files.mkdir()
    deployed = cluster_deployment(plan) if placement == "cluster" else docker_deployment(plan, files)
    domain = urlparse(deployed.site_env["SITE_URL"]).hostname
    assert urlparse(deployed.site_env["SITE_URL"]).port == (None if port == 443 else port)
    with contextlib.ExitStack() as stack_:
        n8n_env, queue = deployed.n8n_env, None
        tls = None
        if placement == "cluster":
            # RDS and ElastiCache: TLS (n8n verifies neither's certificate, as its environment
            # says; Node trusts the stand-in CA as it trusts Amazon's).
            tls = loopback_tls(files)
            redis = apps.start_redis_tls(tls, n8n_env["QUEUE_BULL_REDIS_PASSWORD"], files)
            stack_.callback(redis.stop)
            queue = {"QUEUE_BULL_REDIS_PORT": str(redis.port), "NODE_EXTRA_CA_CERTS": str(tls["ca"])}
        # The cluster's RDS gets its roles and databases from a bootstrap task (run against an
        # RDS-like master in tests/test_cluster_runtime.py); here the host's first-boot SQL makes
        # the same n8n role and database.
        cluster = pg_for_n8n(files, n8n_env["DB_POSTGRESDB_PASSWORD"], tls=tls,
                             init_sql=pg.init_sql() if placement == "cluster" else None)
        stack_.callback(cluster.destroy)
        n8n, home = apps.start_n8n(n8n_env, cluster.port, queue=queue)
        stack_.callback(apps.cleanup, home)
        stack_.callback(n8n.stop)
        api = apps.start_api(deployed.api_env)
        stack_.callback(api.stop)
        site = apps.start_site(deployed.site_env)
        stack_.callback(site.stop)
        (work / "pki").mkdir()
        pki = TestPki(work / "pki", domain)
        upstreams = {"api": api.port, "frontend": site.port, "n8n": n8n.port}
        if placement == "cluster":
            # The webhook process is not started yet (n8n's main process migrates the database
            # first); its port is taken now so the edge can name it.
            upstreams[ng.N8N_WEBHOOKS] = free_port()
        else:
            # Nothing listens here: Grafana cannot run on this machine.
            upstreams["grafana"] = free_port()
        nginx = _edge(placement, deployed.conf, domain, pki, upstreams)
        nginx.start()
        stack_.callback(nginx.stop)
        origin: OriginClient = nginx
        if placement == "cluster":
            origin = LoadBalancer(AlbConfig.from_plan(plan), pki, _targets(nginx))
            stack_.callback(origin.close)
        gateway = EdgeGateway(origin.origin_port, public_port=port, play_cloudflare=stack != "dev",
                              server_cert=pki.server_cert, server_key=pki.server_key,
                              client_cert=pki.client_cert, client_key=pki.client_key)
        stack_.callback(gateway.close)
        browser = Browser(gateway, pki.server_cert)
        stack_.callback(browser.close)
        assert wait_for(lambda: _n8n_ready(n8n.port), 120), n8n.output()[-4000:]
        n8n_queue = {}
        if placement == "cluster":
            # After the main process's migrations (each n8n process migrates on start); the
            # webhook process and the worker side by side.
            def start(task: str) -> tuple[apps.Process, Path]:
                command = task.removeprefix("n8n-")
                return apps.start_n8n(deployed.n8n_queue_envs[task], cluster.port, command=command, queue=queue,
                                      port=upstreams[ng.N8N_WEBHOOKS] if command == "webhook" else None)

            with ThreadPoolExecutor() as pool:
                futures = {task: pool.submit(start, task) for task in deployed.n8n_queue_envs}
            # Whatever started is stopped at the end, even when the other did not start.
            for task, future in futures.items():
                if future.exception() is None:
                    process, task_home = future.result()
                    stack_.callback(apps.cleanup, task_home)
                    stack_.callback(process.stop)
                    n8n_queue[task] = process
            for future in futures.values():
                future.result()
        yield Platform(stack, placement, port, plan, domain, nginx, origin, gateway, browser, site, api, n8n,
                       deployed.conf, deployed.site_env, upstreams, n8n_queue)


@pytest.fixture(scope="module", params=PLATFORMS)
def platform(request, tmp_path_factory):
    with running_platform(request.param, tmp_path_factory.mktemp(f"e2e-{request.param}")) as running:
        yield running


def _n8n_ready(port: int) -> bool:
    """The editor's page is served: n8n listens (and answers its health check) while its
    migrations still run, and mounts the editor only after them."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/")
        response = conn.getresponse()
        # "n8n is starting up" is a 200 too, and a 404 follows until the editor is mounted.
        return response.status == 200 and response.read().lstrip().startswith(b"<!DOCTYPE html>")
    except OSError:
        return False


def _assert_clean(page, log, what: str, expected: frozenset[tuple[int, str]] = frozenset(),
                  console_excused: tuple[str, ...] = ()) -> None:
    """No CSP violation, no console error, no failed request, no status >= 400 (so no 429)
    but the application's own `expected` answers, each named where it is excused."""
    violations = Browser.csp_violations(page)
    assert violations == [], f"{what}: CSP violations {json.dumps(violations, indent=1)}"
    problems = [p for p in log.problems(expected) if not p.startswith(console_excused or ("\0",))]
    assert problems == [], f"{what}: {problems}"
    assert not any(status == 429 for status, _ in log.statuses), f"{what}: a real page load met a 429"


# ------------------------------------------------------------------------------ the program's n8n settings

def n8n_reads() -> set[str]:
    """Every environment variable the installed n8n reads: its config decorators and each
    `process.env.X` in n8n and its own packages."""
    modules = apps.n8n_root() / "node_modules"
    pattern = re.compile(r"Env\)\('([A-Z0-9_]+)'|process\.env\.([A-Z0-9_]+)|process\.env\[['\"]([A-Z0-9_]+)")
    names: set[str] = set()
    for top in [modules / "n8n", modules / "n8n-core", *(modules / "@n8n").iterdir()]:
        for path in (top / "dist").rglob("*.js"):
            for match in pattern.finditer(path.read_text(errors="replace")):
                names.add(next(g for g in match.groups() if g))
    return names


def test_the_suite_runs_the_n8n_version_the_program_pins():
    for stack in STACKS:
        image = plan_for(stack).one("docker:index/remoteImage:RemoteImage", "n8n-svc-image").inputs["name"]
        assert image == f"ghcr.io/n8n-io/n8n:{apps.N8N_VERSION}", image
    installed = json.loads((apps.n8n_root() / "node_modules" / "n8n" / "package.json").read_text())
    assert installed["version"] == apps.N8N_VERSION


def test_every_variable_the_program_gives_n8n_is_one_n8n_reads():
    reads = n8n_reads()
    # Able to fail: a misspelt variable would be silently ignored by n8n.
    assert "N8N_BLOCK_ENV_ACESS_IN_NODE" not in reads and "N8N_BLOCK_ENV_ACCESS_IN_NODE" in reads
    for stack in STACKS:
        env = container_env(plan_for(stack).one(CONTAINER, "n8n-svc"))
        # TZ is read by the C library and Node.js, not by n8n's code.
        unknown = sorted(set(env) - reads - {"TZ"})
        assert unknown == [], f"{stack}: n8n {apps.N8N_VERSION} does not read {unknown}"


# ------------------------------------------------------------------------------ the site

def test_site_renders_hydrates_and_talks_to_the_api(platform):
    with platform.browser.page() as (page, log):
        page.goto(platform.url("site"), wait_until="networkidle")
        assert page.inner_text("#ssr").startswith("Rendered at ")
        # Functions, not strings: Playwright polls a string predicate with eval() in the page,
        # which the site's CSP (no 'unsafe-eval') refuses whenever the first check is not true yet.
        page.wait_for_function("() => document.querySelector('#hydrated').textContent === 'hydrated'")
        # A credentialed cross-origin fetch (CORS from the site's origin) and a WebSocket, both
        # to the API host through the edge.
        page.wait_for_function("() => document.querySelector('#api-json').textContent !== 'pending'")
        page.wait_for_function("() => document.querySelector('#api-ws').textContent !== 'pending'")
        assert page.inner_text("#api-json") == "world"
        assert page.inner_text("#api-ws") == "pong"
        # next/image through the optimiser: decoded, so the bytes arrived and were an image.
        width = page.eval_on_selector("#logo", "img => img.complete && img.naturalWidth")
        assert width == 64
        assert "/_next/image" in page.get_attribute("#logo", "src")
        assert any("/_next/static/" in url for url in log.requests)
        _assert_clean(page, log, "site /")


def test_isr_page_and_route_handler(platform):
    with platform.browser.page() as (page, log):
        response = page.goto(platform.url("site", "/isr"), wait_until="networkidle")
        assert response.status == 200
        assert page.inner_text("#isr").startswith("Generated at ")
        # Next.js's own caching header for a static page passes through the edge untouched.
        assert "s-maxage=60" in response.headers["cache-control"]
        health = page.goto(platform.url("site", "/api/health"), wait_until="networkidle")
        assert health.status == 200 and json.loads(health.text()) == {"ok": True}
        # A JSON document has no <link rel=icon>: the browser asks for /favicon.ico itself.
        page.wait_for_timeout(500)
        _assert_clean(page, log, "site /isr")


def _raw(platform: Platform, kind: str, path: str, method: str = "GET", body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
    """One request to the origin as Cloudflare makes it (with the origin-pull certificate): nginx,
    or on the cluster its load balancer; all headers kept."""
    response = platform.origin.https(platform.host(kind), path, headers, method, body=body)
    return response.status, response.getheaders(), response.body


def _count(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name.lower()]


def _headers_once_each(platform: Platform, kind: str, path: str) -> None:
    _, headers, _ = _raw(platform, kind, path)
    for name in edge_headers.SECURITY_HEADERS:
        assert len(_count(headers, name)) == 1, (name, _count(headers, name))
    assert _count(headers, "X-Powered-By") == [] and _count(headers, "X-XSS-Protection") == []
    assert len(_count(headers, "Cache-Control")) <= 1


@pytest.mark.parametrize("kind,path", [("site", "/"), ("site", "/isr"), ("www", "/"), ("api", "/v1/hello"),
                                       ("n8n", "/"), ("n8n", "/rest/settings"),
                                       # On the cluster: the webhook processes (queue mode).
                                       ("n8n", f"/webhook/{WEBHOOK_PATH}")])
def test_security_headers_appear_once_each(platform, kind, path):
    _headers_once_each(platform, kind, path)


@pytest.mark.parametrize("platform", DOCKER_PLATFORMS, indirect=True)
def test_grafana_s_security_headers_appear_once_each(platform):
    """The Docker placements' Grafana (the cluster runs none)."""
    _headers_once_each(platform, "grafana", "/")


def _static_chunk(platform: Platform) -> str:
    status, _, body = _raw(platform, "site", "/")
    assert status == 200
    match = re.search(rb'/_next/static/[^"\']+\.js', body)
    assert match, "the page names no static chunk"
    return match.group().decode()


def test_static_assets_one_cache_control_and_errors_not_kept(platform):
    chunk = _static_chunk(platform)
    for _ in range(2):  # a MISS, then a HIT from nginx's cache: the same single header
        status, headers, _ = _raw(platform, "site", chunk)
        assert status == 200
        assert _count(headers, "Cache-Control") == ["public, max-age=31536000, immutable"]
    assert _count(headers, "X-Cache-Status") == ["HIT"]
    # A chunk this replica does not have (a deploy in progress): never kept by Cloudflare.
    status, headers, _ = _raw(platform, "site", "/_next/static/chunks/not-built-yet-0123456789.js")
    assert status == 404
    assert _count(headers, "Cache-Control") == ["no-store"]
    # ... nor by nginx: a second request reaches the application again.
    _, headers, _ = _raw(platform, "site", "/_next/static/chunks/not-built-yet-0123456789.js")
    assert _count(headers, "X-Cache-Status") != ["HIT"]


# ------------------------------------------------------------------------------ n8n

def _sign_in(page, platform: Platform) -> None:
    """The owner set-up on a fresh n8n (or the sign-in on one already set up), as a person does
    it in the editor's form."""
    page.goto(platform.url("n8n"), wait_until="networkidle")
    page.wait_for_url(re.compile(r"/(setup|signin)"), timeout=60000)
    if "/setup" in page.url:
        for name in ("email", "firstName", "lastName", "password"):
            page.fill(f"input[name={name}]", OWNER[name])
        page.get_by_role("button", name="Next").click()
    else:
        page.fill("input[name=emailOrLdapLoginId]", OWNER["email"])
        page.fill("input[name=password]", OWNER["password"])
        page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/home/"), timeout=60000)
    page.wait_for_load_state("networkidle")


def _rest(page, method: str, path: str, body: dict | None = None) -> dict:
    """A call to n8n's REST API from the signed-in editor page, as its own code makes it."""
    result = page.evaluate("""async ([method, path, body]) => {
        const r = await fetch(path, {method, credentials: 'include',
            headers: {'Content-Type': 'application/json',
                      'browser-id': localStorage.getItem('n8n-browserId') || ''},
            body: body === null ? undefined : JSON.stringify(body)});
        return {status: r.status, text: await r.text()};
    }""", [method, path, body])
    assert result["status"] == 200, result
    return json.loads(result["text"])["data"]


def _n8n_own(platform: Platform, *pairs: tuple[int, str]) -> frozenset[tuple[int, str]]:
    return frozenset((status, platform.url("n8n", path)) for status, path in pairs)


def _n8n_versions_store_bug(log) -> list[tuple[str, str]]:
    """n8n 1.123.5's editor reads its version-notification settings from the settings it loaded
    before anyone signed in, which lack them, so the first sign-in in a page throws once in
    versions.store (a fresh page load afterwards does not: checked below)."""
    own = [(text, url) for text, url in log.console_errors
           if text.startswith("uncaught: Cannot read properties of undefined (reading 'enabled')")
           and "versions.store" in text and "checkForNewVersions" in text]
    log.console_errors[:] = [e for e in log.console_errors if e not in own]
    return own


def test_n8n_editor_owner_setup_expression_and_webhook(platform):
    with platform.browser.page() as (page, log):
        _sign_in(page, platform)
        assert page.url.startswith(platform.url("n8n", "/home/"))
        assert len(_n8n_versions_store_bug(log)) <= 1
        # Before signing in, the editor asks whether a session exists; 401 is the answer.
        _assert_clean(page, log, "n8n sign-in", _n8n_own(platform, (401, "/rest/login")))
        created = _rest(page, "POST", "/rest/workflows", apps.answer_workflow("e2e answer", WEBHOOK_PATH))

    with platform.browser.page() as (page, log):
        # n8n's push channel: the editor's live updates. n8n refuses it ("Invalid origin!", then
        # close 1008) unless the Origin, port included, matches the edge's X-Forwarded-Host.
        sockets, pushed = [], []
        page.on("websocket", lambda ws: (sockets.append(ws), ws.on("framereceived", lambda frame: pushed.append(frame))))
        # A fresh load of the editor, signed in: every module and REST call under the edge's
        # CSP and rate limits.
        page.goto(platform.url("n8n", f"/workflow/{created['id']}"), wait_until="networkidle")
        page.dblclick("[data-test-id='canvas-node'][data-node-name='Answer']")
        # The expression is evaluated in the browser for the node's parameter preview; under a
        # CSP without 'unsafe-eval' it comes out empty.
        preview = page.locator("[data-test-id='parameter-expression-preview-value']").first
        preview.wait_for(timeout=30000)
        assert preview.inner_text().strip() == "42"
        page.wait_for_load_state("networkidle")
        assert _n8n_versions_store_bug(log) == []
        _assert_clean(page, log, "n8n workflow editor", _n8n_own(
            platform,
            # The community edition has no AI assistant licence; the editor asks anyway.
            (403, "/rest/ai/sessions/metadata"),
            # A workflow that never ran has no last successful execution.
            (404, f"/rest/workflows/{created['id']}/executions/last-successful")),
            console_excused=("Failed to fetch sessions metadata: ResponseError: Plan lacks license",))
        _rest(page, "POST", f"/rest/workflows/{created['id']}/activate", {"versionId": created["versionId"]})
        push = [ws for ws in sockets if "/rest/push" in ws.url]
        assert push and not any(ws.is_closed() for ws in push), [ws.url for ws in sockets]
        assert "Invalid origin!" not in pushed, pushed
        assert "Origin header does NOT match" not in platform.n8n.output()
    # A webhook from anywhere reaches n8n through the edge, and the workflow's answer comes back.
    status, _, body = _raw(platform, "n8n", f"/webhook/{WEBHOOK_PATH}", "POST", b"{}",
                           {"Content-Type": "application/json"})
    assert status == 200, body
    assert json.loads(body) == {"answer": 42}
    if platform.placement == "cluster":
        # Queue mode: the edge sent it to the webhook process, a worker ran it, the main process
        # ran nothing.
        worker = platform.n8n_queue["n8n-worker"]
        assert wait_for(lambda: "finished execution" in worker.output(), 30), worker.output()[-3000:]
        assert "finished execution" not in platform.n8n.output()


def test_gateway_played_the_right_part(platform):
    """On the cloud stacks every browser connection went through a Cloudflare stand-in that
    presented the origin-pull certificate; the origin refuses a connection without it there:
    nginx answers 400, the cluster's load balancer (mutual TLS in verify mode) ends the
    handshake."""
    assert any(t == f"{platform.domain}:{platform.port}" for t in platform.gateway.connects)
    forwarded = platform.origin.requests if isinstance(platform.origin, LoadBalancer) else 0
    try:
        answer: int | str = platform.origin.https(platform.domain, "/", client_cert=False).status
    except (ssl.SSLError, ConnectionError) as refused:
        # TLS 1.3: the client's handshake is done before the server has checked its certificate;
        # the refusal shows on the first read, as an alert or the connection closing.
        answer = f"refused: {refused!r}"
    if platform.stack == "dev":
        assert answer == 200, answer
    elif isinstance(platform.origin, LoadBalancer):
        assert str(answer).startswith("refused: ") and platform.origin.requests == forwarded, answer
    else:
        assert answer == 400, answer


@pytest.mark.parametrize("platform", DOCKER_PLATFORMS, indirect=True)
def test_plain_http_is_sent_to_the_address_the_browser_uses(platform):
    """nginx's port 80 sends the browser to the site's own URL, port included when it is not 443
    (nginx's $host never has one). The cluster's load balancer listens on 443 only (the plan's one
    listener): there Cloudflare answers http:// itself (the zone's Always Use HTTPS)."""
    plain = platform.nginx.http(platform.host("site"), "/isr?from=plain")
    assert (plain.status, plain.getheader("Location")) == (301, platform.url("site", "/isr?from=plain"))


def test_redirects_lead_to_the_address_the_browser_uses(platform):
    """The www host sends the browser to the site's own URL, port included when it is not 443."""
    status, headers, _ = _raw(platform, "www", "/isr?from=www")
    assert (status, _count(headers, "Location")) == (301, [platform.url("site", "/isr?from=www")])
    # nginx's own redirect of a prefix location asked without its slash: relative, so it keeps
    # the address the browser used, not nginx's listen port inside the container.
    status, headers, _ = _raw(platform, "n8n", "/rest")
    assert status == 301 and urljoin(platform.url("n8n", "/rest"), _count(headers, "Location")[0]) == \
        platform.url("n8n", "/rest/")


# ------------------------------------------------------------------------------ rate limits

def _burst(platform: Platform, kind: str, path: str, count: int, method: str = "GET",
           body: bytes | None = None, headers: dict[str, str] | None = None) -> list[int]:
    return platform.origin.https_burst(platform.host(kind), count, headers, path, method, body)


def test_bursts_against_the_api_and_logins_are_still_stopped(platform):
    """Last for each stack: it spends this client's bursts. The editor still loads afterwards
    (its GET /rest/login session probe is not a password attempt)."""
    api = _burst(platform, "api", "/v1/posts", 60)
    assert api.count(200) >= 20 and 429 in api, api
    login_body = json.dumps({"email": "x@example.com", "password": "guess"}).encode()
    json_headers = {"Content-Type": "application/json"}
    logins = _burst(platform, "api", "/v1/auth/login", 20, "POST", login_body, json_headers)
    assert logins.count(429) >= 10 and logins[0] == 401, logins
    n8n_logins = _burst(platform, "n8n", "/rest/login", 20, "POST",
                        json.dumps({"emailOrLdapLoginId": "x@example.com", "password": "guess"}).encode(),
                        json_headers)
    assert n8n_logins.count(429) >= 10, n8n_logins
    hooks = _burst(platform, "n8n", "/webhook/does-not-exist", 60, "POST", b"{}", json_headers)
    assert 429 in hooks, hooks
    with platform.browser.page() as (page, log):
        page.goto(platform.url("n8n", "/home/workflows"), wait_until="networkidle")
        assert not any(status == 429 for status, _ in log.statuses), log.statuses


# ------------------------------------------------------------------------------ the edge's cache

def _cache_status(headers: list[tuple[str, str]]) -> list[str]:
    return _count(headers, "X-Cache-Status")


def test_pages_are_kept_as_long_as_nextjs_says_and_per_request_pages_never(platform):
    isr = f"/isr?cache-check={uuid.uuid4().hex}"
    first, second = _raw(platform, "site", isr), _raw(platform, "site", isr)
    assert first[0] == second[0] == 200
    assert "s-maxage=60" in _count(first[1], "Cache-Control")[0]
    assert (_cache_status(first[1]), _cache_status(second[1])) == (["MISS"], ["HIT"])
    assert first[2] == second[2], "the ISR page came from the edge's copy"
    # The SSR page says `private, no-cache, no-store`: every request reaches Next.js.
    ssr = [_raw(platform, "site", "/") for _ in range(2)]
    for _, headers, _ in ssr:
        assert "no-store" in _count(headers, "Cache-Control")[0]
        assert _cache_status(headers) == ["MISS"]
    assert ssr[0][2] != ssr[1][2], "rendered twice (the timestamps differ)"


def test_no_personal_answer_is_ever_served_from_the_cache_to_someone_else(platform):
    # A request with a session cookie is neither answered from the cache nor stored in it.
    page = f"/isr?user-check={uuid.uuid4().hex}"
    _, headers, _ = _raw(platform, "site", page, headers={"Cookie": "session=alice"})
    assert _cache_status(headers) == ["BYPASS"]
    _, headers, _ = _raw(platform, "site", page)
    assert _cache_status(headers) == ["MISS"], "alice's answer was stored"
    _, headers, _ = _raw(platform, "site", page, headers={"Authorization": "Bearer alice-token"})
    assert _cache_status(headers) == ["BYPASS"]
    # A per-user page: each visitor gets their own, whoever came first.
    for _ in range(2):
        _, _, body = _raw(platform, "site", "/account", headers={"Cookie": "session=alice"})
        assert b"Signed in as alice" in body
        _, _, body = _raw(platform, "site", "/account")
        assert b"Signed out" in body and b"alice" not in body
    # A response that sets a cookie is never kept, even when the application marks it public.
    answers = [_raw(platform, "site", "/api/welcome") for _ in range(2)]
    cookies = [_count(h, "Set-Cookie")[0] for _, h, _ in answers]
    assert "public" in _count(answers[0][1], "Cache-Control")[0]
    assert cookies[0] != cookies[1], "the second visitor got the first visitor's session"
    assert [_cache_status(h) for _, h, _ in answers] == [["MISS"], ["MISS"]]


def test_the_session_check_can_fail(platform, tmp_path):
    """The same request against the same Next.js, through an edge told to ignore Set-Cookie:
    the second visitor gets the first one's session, and the check above would say so."""
    conf = platform.conf.replace("proxy_cache_revalidate on;", "proxy_cache_revalidate on;\n"
                                 "            proxy_ignore_headers Set-Cookie;")
    assert conf != platform.conf
    with platform.another_edge(conf) as leaky:
        answers = [leaky.https(platform.host("site"), "/api/welcome") for _ in range(2)]
        cookies = [a.getheader("Set-Cookie") for a in answers]
        assert cookies[0] == cookies[1] and answers[1].getheader("X-Cache-Status") == "HIT"


def test_a_kept_page_is_served_while_the_frontend_is_down(platform):
    """A frontend of its own, so the platform's keeps serving the other tests."""
    site = apps.start_site(platform.site_env)
    try:
        with platform.another_edge(frontend=site.port) as edge:
            first = edge.https(platform.host("site"), "/isr")
            assert first.status == 200 and first.getheader("X-Cache-Status") == "MISS"
            site.stop()
            down = edge.https(platform.host("site"), "/isr")
            assert down.status == 200 and down.body == first.body
            assert down.getheader("X-Cache-Status") in ("HIT", "STALE")
            # A page it never kept: the frontend's absence shows, as a 503 that says when to
            # come back (configs/nginx.py's unavailable()), over HTTP/1.1 and through the load
            # balancer alike.
            never_kept = edge.https(platform.host("site"), "/")
            assert never_kept.status == 503 and never_kept.getheader("Retry-After") == "10"
            assert b"<title>Back in a moment</title>" in never_kept.body
    finally:
        site.stop()


@pytest.mark.parametrize("platform", DOCKER_PLATFORMS, indirect=True)
def test_the_readmes_purge_commands_purge(platform):
    """The README's two purge commands, run by BusyBox's sh on the cache as nginx keeps it.
    They are `docker exec` into the edge's container: the cluster has none (and its tasks no ECS
    Exec), so they are the Docker placements' only."""
    from testsupport.rollout import busybox_path

    readme = (ROOT / "README.md").read_text()
    everything = re.search(r"`docker exec sos-<stack>-nginx (find [^`]+)`", readme).group(1)
    one = re.search(r'`docker exec sos-<stack>-nginx sh -c "([^"]+)"`', readme.replace("\n  ", " ")).group(1)
    cache = platform.nginx.work / "cache"
    busybox = busybox_path(platform.nginx.work / "busybox")

    def sh(command: str) -> None:
        command = command.replace(ng.CACHE_DIR, str(cache))
        result = subprocess.run([str(busybox / "sh"), "-c", command], capture_output=True, text=True,
                                env={"PATH": str(busybox)})
        assert result.returncode == 0, result.stderr

    page = f"/isr?purge-check={uuid.uuid4().hex}"
    for command in (one.replace("<host><path>", f"{platform.domain}{page}"), everything):
        _raw(platform, "site", page)
        assert _cache_status(_raw(platform, "site", page)[1]) == ["HIT"]
        sh(command)
        assert _cache_status(_raw(platform, "site", page)[1]) == ["MISS"], command


# ------------------------------------------------------------------------------ the load balancer's stand-in

# What an Application Load Balancer adds to each request on this plan's listener (testsupport/alb.py
# cites AWS for each): the X-Forwarded trio, the trace id, and mutual TLS's verify-mode headers.
ALB_ADDS = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-port", "x-amzn-trace-id",
            "x-amzn-mtls-clientcert-serial-number", "x-amzn-mtls-clientcert-issuer",
            "x-amzn-mtls-clientcert-subject", "x-amzn-mtls-clientcert-validity", "x-amzn-mtls-clientcert-leaf"}


@pytest.fixture(scope="module")
def balancer(tmp_path_factory):
    """The stand-in as production's cluster plan configures it, in front of a target that records
    what reaches it."""
    from testsupport.edge import StandIn
    from testsupport.plans import cluster_plan_for

    pki = TestPki(tmp_path_factory.mktemp("alb-pki"), "storiesofsoftware.com")
    target = StandIn("edge")
    config = AlbConfig.from_plan(cluster_plan_for("production"))
    lb = LoadBalancer(config, pki, {config.target_port: target.port, config.health_port: target.port})
    yield lb, target, pki
    lb.close()
    target.close()


def test_the_load_balancer_stand_in_adds_what_an_alb_adds(balancer):
    lb, target, pki = balancer
    lb.https("storiesofsoftware.com", "/first")
    seen = target.seen_headers[-1]
    # http.client's own two, and exactly what the load balancer adds.
    assert set(seen) == {"host", "accept-encoding", *ALB_ADDS}, sorted(seen)
    assert seen["host"] == "storiesofsoftware.com"  # a 443 listener leaves it as it is
    assert (seen["x-forwarded-for"], seen["x-forwarded-proto"], seen["x-forwarded-port"]) == ("127.0.0.1", "https", "443")
    root = seen["x-amzn-trace-id"]
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}", root), root
    assert seen["x-amzn-mtls-clientcert-subject"] == "CN=cloudflare stand-in"
    assert seen["x-amzn-mtls-clientcert-issuer"] == "CN=test origin pull CA"
    assert re.fullmatch(r"[0-9A-F]+", seen["x-amzn-mtls-clientcert-serial-number"])
    assert re.fullmatch(r"NotBefore=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ;NotAfter=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                        seen["x-amzn-mtls-clientcert-validity"])
    assert unquote(seen["x-amzn-mtls-clientcert-leaf"]) == pki.client_cert.read_text()

    # What a client sent: its X-Forwarded-For is appended to, its trace gets a Self field, its
    # protocol and forged certificate headers are replaced, a header name with "_" is dropped.
    lb.https("storiesofsoftware.com", "/second", headers={
        "X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "http", "X-Amzn-Trace-Id": root,
        "X-Amzn-Mtls-Clientcert-Subject": "CN=forged", "Bad_Name": "1"})
    seen = target.seen_headers[-1]
    assert seen["x-forwarded-for"] == "198.51.100.7, 127.0.0.1" and seen["x-forwarded-proto"] == "https"
    assert re.fullmatch(rf"Self=1-[0-9a-f]{{8}}-[0-9a-f]{{24}};{root}", seen["x-amzn-trace-id"])
    assert seen["x-amzn-mtls-clientcert-subject"] == "CN=cloudflare stand-in" and "bad_name" not in seen

    # Without the origin-pull certificate: no answer, and nothing reaches the target.
    count = len(target.seen_headers)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        lb.https("storiesofsoftware.com", "/third", client_cert=False)
    assert len(target.seen_headers) == count


def test_the_stand_in_refuses_a_load_balancer_setting_it_does_not_model():
    """A plan that changed how the load balancer treats requests fails here, not silently."""
    from testsupport.plans import cluster_plan_for

    plan = cluster_plan_for("production")
    assert AlbConfig.from_plan(plan).mtls_mode == "verify"
    renamed = [dataclasses.replace(r, inputs={**r.inputs, "routingHttpRequestXAmznMtlsClientcertSubjectHeaderName":
                                              "X-Client"}) if r.type == "aws:lb/listener:Listener" else r
               for r in plan.resources]
    with pytest.raises(NotImplementedError, match="routingHttpRequestXAmznMtlsClientcertSubjectHeaderName"):
        AlbConfig.from_plan(dataclasses.replace(plan, resources=renamed))
