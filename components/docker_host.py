"""staging/production: one EC2 instance running Docker, reached by the Docker provider over SSH."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_command as command
import pulumi_docker as docker
import pulumi_tls as tls

from components.host_commands import SHOWN, RemoteCommands, registry_auth
from configs.cloud_init import ADMIN_USER, DOCKER_VOLUMES, render_cloud_init
from settings import Registry

CANONICAL_OWNER = "099720109477"
UBUNTU_LTS = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-{arch}-server-*"
DATA_DEVICE = "/dev/sdf"
SNAPSHOT_TAG = "sos-snapshot"

# Waits for cloud-init, then proves what the Docker provider needs: the data volume mounted
# and the daemon answering this user without sudo. On failure it prints why.
READY_SCRIPT = f"""set -u
if ! cloud-init status --wait >/dev/null; then
  cloud-init status --long || true
  sudo tail -n 80 /var/log/cloud-init-output.log || true
  exit 1
fi
mountpoint -q {DOCKER_VOLUMES} || {{ echo "{DOCKER_VOLUMES} is not mounted" >&2; exit 1; }}
docker version --format 'docker {{{{.Server.Version}}}} ready'
"""

# Run on the operator's machine at every preview and update (an invoke, not a resource), so
# whoever runs `pulumi up`, a laptop or CI, has the key and the pinned host key on disk.
KEY_WRITER = """set -eu
umask 077
dir="$HOME/.ssh/storiesofsoftware-$SOS_STACK"
mkdir -p "$dir"
cat > "$dir/id_ed25519.tmp"
mv "$dir/id_ed25519.tmp" "$dir/id_ed25519"
printf '%s\\n' "$SOS_KNOWN_HOST" > "$dir/known_hosts"
"""


def ubuntu_arch(instance_type: str) -> str:
    """Graviton families carry a 'g' after the generation digit (t4g, m7gd, c7gn)."""
    family = instance_type.split(".", 1)[0]
    return "arm64" if re.fullmatch(r"[a-z]+\d+[a-z]*g[a-z]*", family) else "amd64"


def ssh_options(stack: str) -> list[str]:
    """Paths use `~`, which ssh expands, so the provider's config is the same on every machine."""
    key_dir = f"~/.ssh/storiesofsoftware-{stack}"
    return [
        "-o", f"IdentityFile={key_dir}/id_ed25519",
        "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={key_dir}/known_hosts",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "ServerAliveInterval=30",
    ]


@dataclass
class DockerHostArgs:
    stack: str
    name_prefix: str
    instance_type: str
    root_volume_gb: int
    data_volume_gb: int
    snapshot_retention_days: int
    protect_data: bool
    subnet_id: pulumi.Input[str]
    security_group_id: pulumi.Input[str]
    availability_zone: pulumi.Input[str]
    registry: Registry | None = None


class DockerHost(pulumi.ComponentResource):
    provider: docker.Provider
    commands: RemoteCommands
    public_ip: pulumi.Output[str]
    instance: aws.ec2.Instance
    data_volume: aws.ebs.Volume

    def __init__(self, name: str, args: DockerHostArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:DockerHost", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        prefix = args.name_prefix

        client_key = tls.PrivateKey(f"{name}-ssh-client", algorithm="ED25519", opts=child)
        host_key = tls.PrivateKey(f"{name}-ssh-host", algorithm="ED25519", opts=child)

        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=json.dumps(_assume("ec2.amazonaws.com")),
            description="Docker host: SSM shell access only; containers cannot reach it (IMDS hop limit 1)",
            opts=child,
        )
        ssm = aws.iam.RolePolicyAttachment(
            f"{name}-ssm", role=role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore", opts=child)
        # After the role's policy: the instance it goes to assumes the role as it boots.
        profile = aws.iam.InstanceProfile(f"{name}-profile", role=role.name,
                                          opts=pulumi.ResourceOptions(parent=self, depends_on=[ssm]))

        # Holds every Docker volume. A separate resource, so replacing the instance leaves it be;
        # protected in production, and a final snapshot is taken if it is ever deleted.
        self.data_volume = aws.ebs.Volume(
            f"{name}-data",
            availability_zone=args.availability_zone,
            size=args.data_volume_gb,
            type="gp3",
            encrypted=True,
            final_snapshot=True,
            tags={"Name": f"{prefix}-data", SNAPSHOT_TAG: f"{prefix}-data"},
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect_data,
                                        retain_on_delete=args.protect_data),
        )

        # The address exists before the instance, on its own interface, so the first boot
        # already reaches the package mirrors and the address survives instance replacement.
        nic = aws.ec2.NetworkInterface(
            f"{name}-nic", subnet_id=args.subnet_id,
            security_groups=[args.security_group_id],
            description=f"{prefix} Docker host", tags={"Name": f"{prefix}-host"}, opts=child)
        eip = aws.ec2.Eip(f"{name}-eip", domain="vpc", tags={"Name": f"{prefix}-host"}, opts=child)
        eip_assoc = aws.ec2.EipAssociation(
            f"{name}-eip-assoc", allocation_id=eip.allocation_id,
            network_interface_id=nic.id, opts=child)
        self.public_ip = eip.public_ip

        ami = aws.ec2.get_ami_output(
            most_recent=True,
            owners=[CANONICAL_OWNER],
            filters=[
                aws.ec2.GetAmiFilterArgs(name="name", values=[UBUNTU_LTS.format(arch=ubuntu_arch(args.instance_type))]),
                aws.ec2.GetAmiFilterArgs(name="virtualization-type", values=["hvm"]),
            ],
            opts=pulumi.InvokeOutputOptions(parent=self),
        )

        user_data = pulumi.Output.all(
            self.data_volume.id, client_key.public_key_openssh,
            host_key.private_key_openssh, host_key.public_key_openssh,
        ).apply(lambda v: render_cloud_init(
            data_volume_id=v[0], authorized_key=v[1], host_key_private=v[2], host_key_public=v[3]))

        self.instance = aws.ec2.Instance(
            f"{name}-instance",
            ami=ami.id,
            instance_type=args.instance_type,
            iam_instance_profile=profile.name,
            primary_network_interface=aws.ec2.InstancePrimaryNetworkInterfaceArgs(
                network_interface_id=nic.id),
            # Containers such as n8n run user code. A hop limit of 1 keeps IMDSv2 tokens from
            # crossing Docker's bridge, so no container can take the instance role.
            metadata_options=aws.ec2.InstanceMetadataOptionsArgs(
                http_endpoint="enabled", http_tokens="required",
                http_put_response_hop_limit=1, instance_metadata_tags="disabled"),
            root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
                volume_type="gp3", volume_size=args.root_volume_gb, encrypted=True,
                delete_on_termination=True),
            ebs_optimized=True,
            disable_api_termination=args.protect_data,
            user_data=pulumi.Output.secret(user_data),
            # cloud-init runs once per instance: new user data means a new instance.
            user_data_replace_on_change=True,
            tags={"Name": f"{prefix}-host"},
            opts=pulumi.ResourceOptions(
                parent=self,
                # The interface and the data volume attach to one instance at a time.
                delete_before_replace=True,
                # A newer Ubuntu image must not replace the host unasked; see the README.
                ignore_changes=["ami"],
                depends_on=[eip_assoc],
            ),
        )
        attachment = aws.ec2.VolumeAttachment(
            f"{name}-data-attach", device_name=DATA_DEVICE, volume_id=self.data_volume.id,
            instance_id=self.instance.id,
            # Stop first so the filesystem is cleanly unmounted before the volume leaves.
            stop_instance_before_detaching=True, opts=child)

        self._snapshots(name, prefix, args.snapshot_retention_days)

        connection = command.remote.ConnectionArgs(
            host=eip.public_ip, user=ADMIN_USER,
            private_key=client_key.private_key_openssh,
            host_key=host_key.public_key_openssh,
            # A new instance needs a minute or two before sshd answers.
            dial_error_limit=40, per_dial_timeout=15,
        )
        self.commands = RemoteCommands(connection)
        ready = command.remote.Command(
            f"{name}-ready",
            connection=connection,
            create=READY_SCRIPT,
            triggers=[self.instance.id, attachment.id],
            # cloud-init's status and the mount check: what an operator needs when it fails.
            logging=SHOWN,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[attachment, eip_assoc]),
        )

        known_host = pulumi.Output.concat(eip.public_ip, " ", host_key.public_key_openssh)
        written = command.local.run_output(
            command=KEY_WRITER,
            interpreter=["/bin/sh", "-c"],
            stdin=client_key.private_key_openssh,
            environment={"SOS_STACK": args.stack, "SOS_KNOWN_HOST": known_host},
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        self.provider = docker.Provider(
            f"{name}-docker",
            host=pulumi.Output.concat("ssh://", ADMIN_USER, "@", eip.public_ip, ":22"),
            # Tied to the key writer's result so the key is on disk before the provider dials;
            # the result is secret only because the key went in, the options hold none of it.
            ssh_opts=pulumi.Output.unsecret(written.apply(lambda _: ssh_options(args.stack))),
            registry_auth=registry_auth(args.registry),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ready]),
        )
        self.register_outputs({})

    def _snapshots(self, name: str, prefix: str, retention: int) -> None:
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            f"{name}-dlm-role", assume_role_policy=json.dumps(_assume("dlm.amazonaws.com")),
            description="Data Lifecycle Manager: daily snapshots of the Docker data volume",
            opts=child)
        grant = aws.iam.RolePolicyAttachment(
            f"{name}-dlm-policy", role=role.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole",
            opts=child)
        aws.dlm.LifecyclePolicy(
            f"{name}-snapshots",
            # DLM accepts only letters, digits, spaces, "_" and "-" here (no comma).
            description=f"{prefix} data volume daily snapshots",
            execution_role_arn=role.arn,
            state="ENABLED",
            policy_details=aws.dlm.LifecyclePolicyPolicyDetailsArgs(
                resource_types=["VOLUME"],
                target_tags={SNAPSHOT_TAG: f"{prefix}-data"},
                schedules=[aws.dlm.LifecyclePolicyPolicyDetailsScheduleArgs(
                    name="daily",
                    create_rule=aws.dlm.LifecyclePolicyPolicyDetailsScheduleCreateRuleArgs(
                        interval=24, interval_unit="HOURS", times="03:00"),
                    retain_rule=aws.dlm.LifecyclePolicyPolicyDetailsScheduleRetainRuleArgs(
                        count=retention),
                    copy_tags=True,
                )],
            ),
            # DLM checks the role as it creates the policy; IAM is eventually consistent.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[grant]),
        )


def _assume(service: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                       "Principal": {"Service": service}}],
    }
