"""`pulumi up` of the real program on a real Docker engine, without the Pulumi CLI or providers.

`LiveDocker` is a set of mocks for offline/harness.py that does, for each resource as the program
registers it, what its provider would do on the engine: networks, volumes and containers made
through the Engine API with the program's arguments (testsupport/engine.create_container), the
images the stacks pin made locally (testsupport/images.py) or built from the project's Dockerfile,
and `command:local` scripts run for real with their own environment. The SDK registers a
resource only once the outputs it takes are known, so resources are made in the engine's order,
at the same time where nothing orders them, and real ids flow into the scripts that use them.

Given the state of an earlier `up`, it makes only what changed, the way the engine decides it
(testsupport/rollout.py's `_change` and `_deletes_first`): an unchanged resource keeps its id and
outputs; a replaced one is made anew, delete-first where the engine deletes first, and otherwise
the old one is deleted after the program has finished, dependents first (`finish`).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs

from offline import harness
from offline.canned import CannedMocks
from offline.harness import Registration
from testsupport import engine
from testsupport.rollout import _change, _deletes_first

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
IMAGE = "docker:index/remoteImage:RemoteImage"
COMMAND = "command:local:Command"
KEY = "tls:index/privateKey:PrivateKey"
CERT = "tls:index/selfSignedCert:SelfSignedCert"
LIVE = (CONTAINER, NETWORK, VOLUME, IMAGE, COMMAND)
# Made for real too, for the programs that read them (nginx refuses a canned certificate).
REAL = (*LIVE, KEY, CERT)


@dataclass
class Applied:
    registration: Registration
    id: str
    outputs: dict[str, Any]


@dataclass
class Deployment:
    """What an `up` left: each resource's registration, id and outputs, in the order made."""

    applied: dict[str, Applied] = field(default_factory=dict)
    steps: list[tuple[str, str]] = field(default_factory=list)  # (op, resource name), as done


class StepError(Exception):
    pass


class LiveDocker(CannedMocks):
    def __init__(self, stack: str, host: str, make_image: Callable[[Mapping[str, Any]], str],
                 before: Deployment | None = None) -> None:
        super().__init__(stack)
        self.host = host
        self.make_image = make_image
        self.before = before or Deployment()
        self.now = Deployment()
        self.late: list[Applied] = []
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- what the operator's shell has
    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {**engine.cli_env(self.host), **(extra or {})}

    def call(self, args: MockCallArgs) -> tuple[dict, list]:
        if args.token == "command:local:run":
            command = str(args.args.get("command", ""))
            result = subprocess.run(["/bin/sh", "-c", command], env=self.env(args.args.get("environment")),
                                    capture_output=True, text=True, timeout=120)
            if result.returncode != 0:
                raise StepError(f"invoke {command!r} failed: {result.stderr}")
            return {"stdout": result.stdout, "stderr": result.stderr, "command": command}, []
        return super().call(args)

    # ---------------------------------------------------------------- registration
    def apply(self, reg: Registration, args: MockResourceArgs) -> tuple[str, dict]:
        if os.environ.get("SOS_LIVE_DEBUG"):
            print("apply", reg.type, reg.name, threading.get_ident(), time.time(), flush=True)
        old = self.before.applied.get(reg.urn)
        op = _change(old.registration if old else None, reg)
        if reg.type not in REAL:
            rid, outputs = super().new_resource(args)
            self._record(reg, rid, outputs, op)
            return rid, outputs
        if op is None and old is not None:
            self._record(reg, old.id, old.outputs, None)
            return old.id, old.outputs
        inputs = harness.unwrap(reg.inputs)
        if op == "update" and old is not None:
            rid, outputs = self._update(reg, old, inputs)
        else:
            if op == "replace" and old is not None:
                if _deletes_first(reg):
                    self._delete(old)
                else:
                    with self._lock:
                        self.late.append(old)
            rid, outputs = self._create(reg, inputs)
        self._record(reg, rid, outputs, op)
        return rid, outputs

    def _record(self, reg: Registration, rid: str, outputs: dict[str, Any], op: str | None) -> None:
        with self._lock:
            self.now.applied[reg.urn] = Applied(reg, rid, outputs)
            if op is not None and reg.type in LIVE:
                self.now.steps.append((op, reg.name))

    def finish(self) -> Deployment:
        """The deletes the engine leaves to the end: replaced resources, then removed ones, newest first."""
        removed = [a for urn, a in self.before.applied.items() if urn not in self.now.applied]
        for old in [*reversed(self.late), *reversed(removed)]:
            if old.registration.type in LIVE:
                self._delete(old)
                self.now.steps.append(("delete", old.registration.name))
        return self.now

    # ---------------------------------------------------------------- what each provider does
    def _create(self, reg: Registration, inputs: dict[str, Any]) -> tuple[str, dict]:
        kind = reg.type
        if kind == NETWORK:
            return engine.create_network(self.host, inputs, inputs["name"]), inputs
        if kind == VOLUME:
            engine.docker(self.host, "volume", "create", "--driver", inputs.get("driver") or "local",
                          *[a for lab in inputs.get("labels") or [] for a in ("--label", f"{lab['label']}={lab['value']}")],
                          "--label", engine.LABEL, inputs["name"])
            return inputs["name"], inputs
        if kind == IMAGE:
            ref = self.make_image(inputs)
            image_id = engine.docker(self.host, "image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()
            return image_id, {**inputs, "imageId": image_id, "repoDigest": f"{inputs['name']}@{image_id}"}
        if kind == CONTAINER:
            return self._container(reg, inputs)
        if kind == COMMAND:
            return reg.name, {**inputs, **self._run(reg, inputs, inputs["create"])}
        if kind == KEY:
            return reg.name, {**inputs, **private_key(inputs)}
        if kind == CERT:
            return reg.name, {**inputs, **self_signed_cert(inputs)}
        raise AssertionError(kind)

    def _update(self, reg: Registration, old: Applied, inputs: dict[str, Any]) -> tuple[str, dict]:
        if reg.type == COMMAND:
            script = inputs.get("update") or inputs["create"]
            return old.id, {**inputs, **self._run(reg, inputs, script)}
        return old.id, {**old.outputs, **inputs}

    def _delete(self, old: Applied) -> None:
        kind, inputs = old.registration.type, harness.unwrap(old.registration.inputs)
        if kind == CONTAINER:
            engine.docker(self.host, "rm", "-f", "-v", old.id)
        elif kind == VOLUME:
            engine.docker(self.host, "volume", "rm", old.id)
        elif kind == NETWORK:
            engine.docker(self.host, "network", "rm", old.id)
        elif kind == COMMAND and inputs.get("delete"):
            self._run(old.registration, inputs, inputs["delete"])
        # Images: `keepLocally` on every one the stacks pin; nothing to do.

    def _container(self, reg: Registration, i: dict[str, Any]) -> tuple[str, dict]:
        # The provider's autonaming when the program names none: `<name>-<7 hex>`, new each time.
        name = i.get("name") or f"{reg.name}-{secrets.token_hex(4)[:7]}"
        mounts = []
        for m in i.get("mounts") or []:
            propagation = (m.get("bindOptions") or {}).get("propagation")
            mounts.append({"target": m["target"], "source": m["source"], "type": m["type"],
                           "read_only": bool(m.get("readOnly")), "propagation": propagation or None})
        networks = {n["name"]: n["name"] for n in i.get("networksAdvanced") or []}
        ports = {int(p["external"]): int(p["external"]) for p in i.get("ports") or []}
        cid = engine.create_container(self.host, i, name=name, image=i["image"], mounts=mounts, networks=networks,
                                      ports=ports)
        if i.get("start", True):
            engine.docker(self.host, "start", cid)
            if i.get("wait"):
                self._wait_healthy(name, cid, int(i.get("waitTimeout") or 60))
        return cid, {**i, "name": name}

    def _wait_healthy(self, name: str, cid: str, timeout: int) -> None:
        """The provider's `wait`: healthy within `wait_timeout`, else the step fails (with the log)."""
        deadline = time.monotonic() + timeout
        while True:
            state = engine.docker(self.host, "inspect", "--format",
                                  "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
                                  cid).stdout.split()
            if state[-1] == "healthy" or (len(state) == 1 and state[0] == "running"):
                return
            if state[0] in ("exited", "dead") or time.monotonic() > deadline:
                logs = engine.docker(self.host, "logs", "--tail", "40", cid, check=False)
                raise StepError(f"container {name} is {' '.join(state)} after {timeout}s:\n"
                                f"{logs.stdout[-3000:]}{logs.stderr[-3000:]}")
            time.sleep(1)

    def _run(self, reg: Registration, inputs: dict[str, Any], script: str) -> dict[str, str]:
        interpreter = list(inputs.get("interpreter") or ["/bin/sh", "-c"])
        result = subprocess.run([*interpreter, script], env=self.env(inputs.get("environment")),
                                input=inputs.get("stdin") or "", capture_output=True, text=True,
                                cwd=inputs.get("dir") or os.getcwd(), timeout=1800)
        if result.returncode != 0:
            raise StepError(f"command {reg.name} failed ({result.returncode}):\n{result.stdout[-3000:]}"
                            f"{result.stderr[-3000:]}")
        return {"stdout": result.stdout.rstrip("\n"), "stderr": result.stderr.rstrip("\n")}


def up(stack: str, host: str, make_image: Callable[[Mapping[str, Any]], str], before: Deployment | None = None,
       overrides: dict[str, Any] | None = None) -> tuple[harness.Plan, Deployment]:
    """One `pulumi up` of `stack` on the engine at `host`; raises what the failing step raised."""
    mocks = LiveDocker(stack, host, make_image, before)
    plan = harness.run(stack, overrides=overrides, mocks=mocks)
    return plan, mocks.finish()


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def dev_host() -> Iterator[str]:
    """The engine for a module that brings dev up (a fixture's body): dev publishes the edge on
    127.0.0.1:80 and :443, and what an earlier module left is removed before and after."""
    host = engine.docker_host()
    engine.remove_test_objects(host)
    taken = [p for p in (80, 443) if not _port_free(p)]
    assert not taken, f"dev publishes the edge on 127.0.0.1:80 and :443; {taken} are taken on this machine"
    yield host
    engine.remove_test_objects(host)


def of_plan(plan: harness.Plan, deployment: Deployment, type_: str) -> dict[str, Applied]:
    """The deployment's resources of one type that this plan registers, by name."""
    urns = {r.urn for r in plan.resources}
    return {a.registration.name: a for a in deployment.applied.values()
            if a.registration.type == type_ and a.registration.urn in urns}


def secret(plan: harness.Plan, deployment: Deployment, name: str) -> str:
    """A generated secret's value as the up made it (configs/secrets.py's names)."""
    return of_plan(plan, deployment, "random:index/randomPassword:RandomPassword")[f"secrets-{name}"].outputs["result"]


def certificate(deployment: Deployment) -> str:
    """The stack's certificate, as the tls provider made it: what curl and the browser trust."""
    (applied,) = [a for a in deployment.applied.values() if a.registration.type == CERT]
    return str(applied.outputs["certPem"])


def stand_in(host: str, inputs: Mapping[str, Any]) -> str:
    """A RemoteImage made locally: the stand-in for its reference, or the project's Dockerfile built
    for real on its stand-in base (legacy builder, as the provider's build is; no pull, no network)."""
    from testsupport import images
    from testsupport.tools import ROOT

    ref, build = str(inputs["name"]), inputs.get("build")
    if not build:
        return engine.image(host, ref, images.shape_of(ref))
    base = build["buildArgs"]["BASE_IMAGE"]
    engine.image(host, base, images.shape_of(base))
    args = [a for k, v in sorted(build["buildArgs"].items()) for a in ("--build-arg", f"{k}={v}")]
    context = ROOT / build["context"]
    result = subprocess.run(["docker", "build", "--network", "none", "-q", "-t", ref, *args,
                             "-f", str(context / build["dockerfile"]), str(context)],
                            env={**engine.cli_env(host), "DOCKER_BUILDKIT": "0"}, capture_output=True, text=True,
                            timeout=600)
    if result.returncode != 0:
        raise StepError(f"docker build of {ref} failed: {result.stdout[-2000:]}{result.stderr[-2000:]}")
    return ref


def private_key(inputs: Mapping[str, Any]) -> dict[str, str]:
    """pulumi-tls's PrivateKey: ECDSA on the named curve, or RSA of `rsaBits`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if inputs.get("algorithm") == "ECDSA":
        curve = {"P224": ec.SECP224R1, "P256": ec.SECP256R1, "P384": ec.SECP384R1, "P521": ec.SECP521R1}[
            str(inputs.get("ecdsaCurve") or "P224")]
        key: Any = ec.generate_private_key(curve())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    else:
        key = rsa.generate_private_key(65537, int(inputs.get("rsaBits") or 2048))
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"privateKeyPem": pem.decode(), "publicKeyPem": public.decode()}


def self_signed_cert(inputs: Mapping[str, Any]) -> dict[str, str]:
    """pulumi-tls's SelfSignedCert: subject, DNS names, validity and uses as given."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key: Any = serialization.load_pem_private_key(str(inputs["privateKeyPem"]).encode(), None)
    subject = inputs.get("subject") or {}
    names = [x509.NameAttribute(oid, str(subject[field_])) for field_, oid in
             (("commonName", NameOID.COMMON_NAME), ("organization", NameOID.ORGANIZATION_NAME)) if subject.get(field_)]
    now = datetime.datetime.now(datetime.UTC)
    end = now + datetime.timedelta(hours=int(inputs.get("validityPeriodHours") or 24))
    uses = set(inputs.get("allowedUses") or [])
    builder = (x509.CertificateBuilder().subject_name(x509.Name(names)).issuer_name(x509.Name(names))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=bool(inputs.get("isCaCertificate")), path_length=None), True)
               .add_extension(x509.KeyUsage(
                   digital_signature="digital_signature" in uses, content_commitment=False,
                   key_encipherment="key_encipherment" in uses, data_encipherment=False, key_agreement=False,
                   key_cert_sign="cert_signing" in uses, crl_sign="crl_signing" in uses, encipher_only=False,
                   decipher_only=False), True))
    if "server_auth" in uses or "client_auth" in uses:
        builder = builder.add_extension(x509.ExtendedKeyUsage(
            [oid for use, oid in (("server_auth", ExtendedKeyUsageOID.SERVER_AUTH),
                                  ("client_auth", ExtendedKeyUsageOID.CLIENT_AUTH)) if use in uses]), False)
    if inputs.get("dnsNames"):
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(str(n)) for n in inputs["dnsNames"]]), False)
    cert = builder.sign(key, hashes.SHA256())
    return {"certPem": cert.public_bytes(serialization.Encoding.PEM).decode(),
            "validityEndTime": end.strftime("%Y-%m-%dT%H:%M:%SZ")}
