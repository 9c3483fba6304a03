"""dev's edge on a laptop: ports moved off 80/443 (`edgePorts`) reach every URL the program
hands out, and the preflight (components/local_docker_host.Preflight) refuses what the engine and
this machine already hold before anything is created, naming the setting and the stack, while
what the stack itself published on an earlier `up` is not. The facts are preflight.sh's lines;
the real script against the real engine is in tests/test_docker_engine.py, the moved ports in
Chromium in tests/test_e2e.py (`dev-8443`)."""

from __future__ import annotations

import json
import re

import pytest

from components.local_docker_host import Preflight
from offline import harness
from offline.canned import CannedMocks
from settings import EdgePorts

DEFAULT_PORTS = EdgePorts()
OUR_NET = "a1b2c3d4e5f6" + "0" * 52


def facts(*lines: str, engine: str = "engine\tlaptop\tlaptop\tname=seccomp,profile=default") -> str:
    return "\n".join([engine, f"network\tsos-dev-edge\tstoriesofsoftware\tdev\t{OUR_NET}\t10.213.0.0/24 ",
                      "network\tsos-dev-data\tstoriesofsoftware\tdev\tffff00000000\t172.18.0.0/16 ",
                      "network\thost\t<no value>\t<no value>\t1234\t", *lines]) + "\n"


def verdict(answer: str, ports: EdgePorts = DEFAULT_PORTS) -> list[str]:
    return Preflight("storiesofsoftware", "dev", ports, "127.0.0.1", "10.213.0.0/24", "sos-dev-nginx").verdict(answer)


REFUSED = [
    # Another container holds the port (another project's nginx), on any address or ours.
    ("other container, any address",
     facts("container\tblog-web-1\tblog\t\t0.0.0.0:80->80/tcp, :::80->80/tcp"), EdgePorts(),
     ["storiesofsoftware:edgePorts.http on stack dev", "published by container blog-web-1", "8443"]),
    ("other container, a range",
     facts("container\tgw\t\t\t127.0.0.1:440-450->440-450/tcp"), EdgePorts(),
     ["edgePorts.https on stack dev", "container gw"]),
    # Another dev stack on the same engine is not this stack.
    ("the same project's other stack",
     facts("container\tsos-alice-nginx\tstoriesofsoftware\tdev-alice\t127.0.0.1:443->8443/tcp"), EdgePorts(),
     ["edgePorts.https", "sos-alice-nginx"]),
    # A program of this machine (Linux ss, macOS netstat).
    ("a local program (ss)", facts("listen\t127.0.0.1:443"), EdgePorts(),
     ["edgePorts.https on stack dev", "not a container", '{"http": 8080, "https": 8443}']),
    ("a local program on every address (ss)", facts("listen\t0.0.0.0:80"), EdgePorts(), ["edgePorts.http"]),
    ("a local dual-stack program (ss)", facts("listen\t*:80"), EdgePorts(), ["edgePorts.http"]),
    ("a local program (macOS netstat)", facts("listen\t*.8443"), EdgePorts(8080, 8443), ["edgePorts.https"]),
    # Containers of this stack other than its edge (an orphan under another name).
    ("this stack's orphan",
     facts("container\tsos-dev-nginx-old\tstoriesofsoftware\tdev\t127.0.0.1:443->8443/tcp"), EdgePorts(),
     ["edgePorts.https", "sos-dev-nginx-old"]),
    # The subnet: another Docker network, or a route of this machine inside it.
    ("another Docker network",
     facts("network\tvpn-test\t\t\t99\t10.213.0.0/16 "), EdgePorts(),
     ["storiesofsoftware:edgeSubnet on stack dev", "Docker network vpn-test (10.213.0.0/16)"]),
    ("a narrower route (a LAN)", facts("route\t10.213.0.0/25\twlan0"), EdgePorts(),
     ["edgeSubnet on stack dev", "routes 10.213.0.0/25 (via wlan0)"]),
    ("the same block routed by a VPN", facts("route\t10.213.0.0/24\ttun0"), EdgePorts(), ["via tun0"]),
    ("a host route", facts("route\t10.213.0.9\ttun0"), EdgePorts(), ["10.213.0.9/32"]),
    ("beside routes the parser skips",
     facts("route\tblackhole\t", "route\t10.213.0.0/26\teth1"), EdgePorts(), ["10.213.0.0/26"]),
]


@pytest.mark.parametrize("answer,ports,expected", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_what_holds_the_ports_or_the_subnet_is_refused_by_name(answer, ports, expected):
    with pytest.raises(ValueError) as caught:
        verdict(answer, ports)
    for text in expected:
        assert text in str(caught.value)


ADMITTED = [
    ("nothing there", facts(), EdgePorts()),
    # A second `up`: the stack's own edge publishes them, and docker-proxy listens for it.
    ("this stack's own edge",
     facts("container\tsos-dev-nginx\tstoriesofsoftware\tdev\t127.0.0.1:80->8080/tcp, 127.0.0.1:443->8443/tcp",
           "listen\t127.0.0.1:80", "listen\t127.0.0.1:443", f"route\t10.213.0.0/24\tbr-{OUR_NET[:12]}"), EdgePorts()),
    ("other addresses and ports",
     facts("container\tx\t\t\t192.168.1.5:443->443/tcp", "listen\t127.0.0.2:80", "listen\t127.0.0.1:8080"), EdgePorts()),
    ("moved off what is taken",
     facts("container\tblog-web-1\tblog\t\t0.0.0.0:80->80/tcp", "listen\t127.0.0.1:443"), EdgePorts(8080, 8443)),
    ("rootless on high ports",
     facts("unprivileged_port_start\t1024", engine="engine\tlaptop\tlaptop\tname=rootless"), EdgePorts(8080, 8443)),
    ("rootless with the sysctl lowered",
     facts("unprivileged_port_start\t80", engine="engine\tlaptop\tlaptop\tname=rootless"), EdgePorts()),
    # Only TCP holds the edge's ports; an IPv6-only socket leaves 127.0.0.1 free.
    ("a UDP service on 443", facts("container\twg\t\t\t0.0.0.0:443->51820/udp"), EdgePorts()),
    ("IPv6 only", facts("container\tv6\t\t\t[::]:443->443/tcp", "listen\t[::]:80"), EdgePorts()),
    # Typed routes (Calico's blackhole) and the default route are not networks of this machine.
    ("typed and default routes", facts("route\tblackhole\t", "route\tunreachable\t", "route\tdefault\teth0"),
     EdgePorts()),
    # A full-tunnel VPN's halves and the default route lose to the edge network's /24.
    ("full tunnel", facts("route\t0.0.0.0/1\ttun0", "route\t128.0.0.0/1\ttun0", "route\tdefault\teth0"), EdgePorts()),
    # Docker Desktop, Colima: the bridges are in a VM, this machine's routes are not theirs.
    ("engine in a VM", facts("route\t10.213.0.0/24\ttun0", engine="engine\tdocker-desktop\tlaptop\t"), EdgePorts()),
    ("rootless: its own namespace", facts("route\t10.213.0.0/24\ttun0", engine="engine\tl\tl\tname=rootless"),
     EdgePorts(8080, 8443)),
]


@pytest.mark.parametrize("answer,ports", [c[1:] for c in ADMITTED], ids=[c[0] for c in ADMITTED])
def test_what_the_stack_may_use_is_admitted(answer, ports):
    assert verdict(answer, ports) == []


def test_a_rootless_engine_on_low_ports_is_a_warning():
    """Lowering the sysctl is one way; `setcap cap_net_bind_service=ep` on rootlesskit (Docker's
    rootless docs) is another that cannot be seen from here. A rootless engine in a VM (Lima)
    reports no sysctl of this machine and is not judged."""
    rootless = "engine\tlaptop\tlaptop\tname=seccomp,name=rootless"
    warnings = verdict(facts("unprivileged_port_start\t1024", engine=rootless))
    assert len(warnings) == 2 and "ip_unprivileged_port_start is 1024" in warnings[0]
    assert "edgePorts.http on stack dev" in warnings[0] and "edgePorts.https on stack dev" in warnings[1]
    assert verdict(facts("unprivileged_port_start\t1024", engine="engine\tlima-default\tmac\tname=rootless")) == []


def test_a_broader_route_is_a_warning_naming_it():
    """A corporate VPN's 10.0.0.0/8: only the /24 inside it is lost while dev runs."""
    warnings = verdict(facts("route\t10.0.0.0/8\ttun0"))
    assert len(warnings) == 1 and "10.0.0.0/8 via tun0" in warnings[0] and "edgeSubnet on stack dev" in warnings[0]


def test_the_plan_waits_for_the_preflight_and_refuses_before_any_resource():
    """The provider's host is the preflight's output, so every Docker resource and command waits
    for it; refused, the program registers no resource of the engine at all."""
    plan = harness.run("dev")
    provider = plan.one("pulumi:providers:docker", "host-docker")
    assert provider.inputs["host"] == "unix:///var/run/docker.sock"
    answer = facts("listen\t127.0.0.1:443")

    class Taken(CannedMocks):
        def call(self, args):
            if args.token == "command:local:run" and "preflight" in args.args.get("command", ""):
                return {"stdout": answer, "stderr": "", "command": args.args["command"]}, []
            return super().call(args)

    with pytest.raises(ValueError) as caught:
        harness.run("dev", mocks=Taken("dev"))
    assert "edgePorts.https on stack dev" in str(caught.value)
    registered = {r.type for r in caught.value.plan.resources}
    assert "pulumi:providers:docker" in {r.type for r in plan.resources}
    assert not {t for t in registered if t.startswith(("docker:", "command:", "pulumi:providers:docker"))}, registered


def _strings(value) -> list[str]:
    value = harness.unwrap(value)
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def _site_urls(plan: harness.Plan) -> list[str]:
    """Every https URL of the stack's own hosts in any input or output (nginx.conf included)."""
    texts = [*(s for r in plan.resources for s in _strings(r.inputs)), *_strings(plan.outputs)]
    return [m for text in texts for m in re.findall(r"(?:https|wss)://(?:[a-z0-9-]+\.)?localhost[^\s'\";,]*", text)]


def test_moved_ports_reach_every_url_the_program_hands_out():
    """A URL built from the host name alone would send the browser to port 443, where nothing of
    this stack listens; every URL of the stack's hosts carries the port instead."""
    default = _site_urls(harness.run("dev"))
    moved = _site_urls(harness.run("dev", overrides={"edgePorts": {"http": 8080, "https": 8443}}))
    assert default and not any(":8443" in url for url in default)
    assert len(moved) == len(default)
    assert [url for url in moved if not re.match(r"^[a-z]+://[a-z0-9.-]+:8443(/|$)", url)] == []


def test_moved_ports_are_what_the_edge_publishes():
    plan = harness.run("dev", overrides={"edgePorts": {"http": 8080, "https": 8443}})
    ports = plan.one("docker:index/container:Container", "edge-svc").inputs["ports"]
    assert sorted((p["ip"], p["external"]) for p in ports) == [("127.0.0.1", 8080), ("127.0.0.1", 8443)]
    assert json.loads(json.dumps(plan.outputs["siteUrl"])) == "https://localhost:8443"
