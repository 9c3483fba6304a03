"""A container that runs to completion, whose failure fails the deployment.

The Docker provider records a one-shot container's exit code but never fails on it, so these run
as `docker run --rm` through the host's command runner: a non-zero exit fails `pulumi up`. The
same hardening as ContainerService applies; secrets reach the container through an env file fed
on stdin, never through a command line or a plain input.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi

from components.container_service import image as pulled_image
from components.host_commands import CommandRunner
from services.spec import StepSpec
from settings import Limits


@dataclass
class OneShotTaskArgs:
    image: str
    limits: Limits
    network: pulumi.Input[str]
    user: str
    steps: Sequence[Sequence[str]]  # each step is one `docker run` of the image with these args
    commands: CommandRunner
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    entrypoint: str | None = None
    # Named volumes (name, mount point) the task works on; those mounted at `read_only` it only reads.
    volumes: Sequence[tuple[pulumi.Input[str], str]] = ()
    read_only: Sequence[str] = ()
    # Capabilities the task needs back after all are dropped (a volume's owner needs CHOWN).
    cap_add: Sequence[str] = ()
    triggers: Sequence[pulumi.Input[object]] = ()
    depends_on: Sequence[pulumi.Resource] = ()

    @classmethod
    def from_step(cls, step: StepSpec, network: pulumi.Input[str], commands: CommandRunner,
                  owner_secrets: Mapping[str, pulumi.Input[str]], triggers: Sequence[pulumi.Input[object]] = (),
                  depends_on: Sequence[pulumi.Resource] = ()) -> OneShotTaskArgs:
        """A step (services/) as one `docker run`; its secrets are the named ones of its owner's."""
        return cls(image=step.image, limits=step.limits, network=network, user=step.user,
                   steps=[list(step.args)], commands=commands, env=dict(step.environment),
                   secret_env={name: owner_secrets[name] for name in step.secrets}, entrypoint=step.entrypoint,
                   triggers=triggers, depends_on=depends_on)


def docker_run_script(image_id: str, args: OneShotTaskArgs, network: str,
                      volume_names: Sequence[str] = ()) -> str:
    """The shell script the host runs; plain values only (secrets come on stdin)."""
    base = [
        "docker", "run", "--rm", "--network", network, "--user", args.user,
        "--read-only", "--tmpfs", "/tmp:rw,noexec,nosuid,size=16m",
        "--cap-drop", "ALL", *[a for cap in args.cap_add for a in ("--cap-add", cap)],
        "--security-opt", "no-new-privileges:true",
        "--memory", f"{args.limits.memory_mb}m", "--memory-swap", f"{args.limits.memory_mb}m",
        "--cpus", f"{args.limits.cpus:g}", "--pids-limit", str(args.limits.pids),
        "--log-driver", "json-file", "--env-file", "__ENVFILE__",
    ]
    for name, (_, target) in zip(volume_names, args.volumes, strict=True):
        base += ["--mount", f"type=volume,src={name},dst={target}" + (",readonly" if target in args.read_only else "")]
    for key, value in sorted(args.env.items()):
        base += ["--env", f"{key}={value}"]
    if args.entrypoint:
        base += ["--entrypoint", args.entrypoint]
    lines = [
        "set -eu",
        'envfile="$(mktemp)"',
        "trap 'rm -f \"$envfile\"' EXIT",
        'cat > "$envfile"',
    ]
    for step in args.steps:
        line = shlex.join([*base, image_id, *step]).replace("__ENVFILE__", '"$envfile"')
        lines.append(line)
    return "\n".join(lines) + "\n"


def env_file(values: Mapping[str, str]) -> str:
    for key, value in values.items():
        if "\n" in value:
            raise ValueError(f"{key}: an env file cannot carry a newline")
    return "".join(f"{k}={v}\n" for k, v in sorted(values.items()))


class OneShotTask(pulumi.ComponentResource):
    run: pulumi.CustomResource

    def __init__(self, name: str, args: OneShotTaskArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:OneShotTask", name, None, opts)
        image = pulled_image(f"{name}-image", args.image, self)
        script = pulumi.Output.all(image.image_id, args.network, *[v for v, _ in args.volumes]).apply(
            lambda v: docker_run_script(v[0], args, v[1], v[2:]))
        names = sorted(args.secret_env)
        stdin = pulumi.Output.secret(pulumi.Output.all(*[args.secret_env[k] for k in names]).apply(
            lambda vs: env_file(dict(zip(names, vs, strict=True)))))
        self.run = args.commands.run(
            f"{name}-run", create=script, stdin=stdin,
            triggers=[image.image_id, *args.triggers],
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)))
        self.register_outputs({})
