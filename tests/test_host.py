"""The EC2 Docker host of staging and production, and its network."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from configs import cloud_init
from offline import canned, harness
from offline.harness import Secret, unwrap
from testsupport.plans import plan_for
from testsupport.tools import require_tool

INSTANCE = "aws:ec2/instance:Instance"
VOLUME = "aws:ebs/volume:Volume"


def test_instance_requires_imdsv2_with_hop_limit_one(cloud_plan):
    meta = cloud_plan.one(INSTANCE).inputs["metadataOptions"]
    assert meta["httpTokens"] == "required"
    assert meta["httpPutResponseHopLimit"] == 1
    assert meta["httpEndpoint"] == "enabled"


def test_instance_root_volume_is_encrypted(cloud_plan):
    root = cloud_plan.one(INSTANCE).inputs["rootBlockDevice"]
    assert root["encrypted"] is True
    assert root["volumeType"] == "gp3"
    assert root["volumeSize"] == {"staging": 20, "production": 30}[cloud_plan.stack]


def test_instance_uses_ubuntu_lts_found_by_filter(cloud_plan):
    (ami_call,) = [args for tok, args in cloud_plan.invokes if tok == "aws:ec2/getAmi:getAmi"]
    assert ami_call["owners"] == ["099720109477"]  # Canonical
    assert ami_call["mostRecent"] is True
    names = [f["values"] for f in ami_call["filters"] if f["name"] == "name"][0]
    assert names == ["ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"]
    instance = cloud_plan.one(INSTANCE)
    assert instance.inputs["ami"] == canned.AMI_ID
    # A new Ubuntu image must not replace the host on its own.
    assert "ami" in instance.ignore_changes


def test_graviton_instance_types_get_the_arm64_image():
    plan = harness.run("staging", overrides={"instanceType": "t4g.medium"})
    (ami_call,) = [args for tok, args in plan.invokes if tok == "aws:ec2/getAmi:getAmi"]
    names = [f["values"] for f in ami_call["filters"] if f["name"] == "name"][0]
    assert names == ["ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-*"]


def test_instance_user_data_is_secret_and_replaces_the_instance(cloud_plan):
    instance = cloud_plan.one(INSTANCE)
    # It carries the host's SSH private key.
    assert isinstance(instance.inputs["userData"], Secret)
    assert instance.inputs["userDataReplaceOnChange"] is True
    # The network interface and data volume attach to one instance at a time.
    assert instance.delete_before_replace


def test_instance_role_grants_ssm_and_nothing_else(cloud_plan):
    by_urn = cloud_plan.by_urn()
    attachments = [r for r in cloud_plan.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                   if r.name == "host-ssm"]
    assert [a.inputs["policyArn"] for a in attachments] == [
        "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"]
    role = cloud_plan.one("aws:iam/role:Role", "host-role")
    assume = json.loads(role.inputs["assumeRolePolicy"])
    assert assume["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    assert not cloud_plan.of_type("aws:iam/rolePolicy:RolePolicy")
    profile = cloud_plan.one("aws:iam/instanceProfile:InstanceProfile")
    assert role.urn in profile.all_dependencies
    assert by_urn[profile.urn].urn in cloud_plan.one(INSTANCE).all_dependencies


def test_data_volume_is_encrypted_separate_and_protected_in_production(cloud_plan):
    volume = cloud_plan.one(VOLUME)
    assert volume.inputs["encrypted"] is True
    assert volume.inputs["size"] == {"staging": 50, "production": 100}[cloud_plan.stack]
    assert volume.inputs["finalSnapshot"] is True
    production = cloud_plan.stack == "production"
    assert volume.protect is production
    assert volume.retain_on_delete is production
    # Replacing the instance must not touch the volume: it does not depend on the instance.
    assert not volume.all_dependencies & {cloud_plan.one(INSTANCE).urn}
    attach = cloud_plan.one("aws:ec2/volumeAttachment:VolumeAttachment")
    assert {volume.urn, cloud_plan.one(INSTANCE).urn} <= attach.all_dependencies
    assert attach.inputs["stopInstanceBeforeDetaching"] is True


def test_data_volume_gets_daily_snapshots(cloud_plan):
    policy = cloud_plan.one("aws:dlm/lifecyclePolicy:LifecyclePolicy")
    details = policy.inputs["policyDetails"]
    volume_tags = cloud_plan.one(VOLUME).inputs["tags"]
    assert details["resourceTypes"] == ["VOLUME"]
    for key, value in details["targetTags"].items():
        assert volume_tags[key] == value
    (schedule,) = details["schedules"]
    assert schedule["createRule"]["interval"] == 24
    assert schedule["createRule"]["intervalUnit"] == "HOURS"
    assert schedule["retainRule"]["count"] == {"staging": 7, "production": 14}[cloud_plan.stack]
    assert policy.inputs["state"] == "ENABLED"


def test_snapshot_policy_names_pass_the_dlm_api_patterns(cloud_plan):
    """The DLM API (and the provider) refuse a description or schedule name outside
    `[0-9A-Za-z _-]+`; a comma made every first `pulumi up` of a cloud stack fail. The patterns
    come from the DLM service model that botocore ships, not from this program."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("dlm")
    description = model.operation_model("CreateLifecyclePolicy").input_shape.members["Description"]
    schedule_name = model.shape_for("ScheduleName")
    policy = cloud_plan.one("aws:dlm/lifecyclePolicy:LifecyclePolicy")
    checks = [(description, policy.inputs["description"])] + [
        (schedule_name, s["name"]) for s in policy.inputs["policyDetails"]["schedules"]]
    for shape, value in checks:
        rules = shape.metadata
        assert re.fullmatch(rules["pattern"], value), (shape.name, value)
        assert rules.get("min", 0) <= len(value) <= rules["max"], (shape.name, value)
    # The check is able to fail: the old description breaks the pattern.
    assert not re.fullmatch(description.metadata["pattern"], f"sos-{cloud_plan.stack} data volume, daily")


def _ingress(plan):
    return {(r.inputs["fromPort"], r.inputs["toPort"], r.inputs.get("cidrIpv4") or r.inputs.get("cidrIpv6"))
            for r in plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")}


def test_security_group_opens_only_web_and_admin_ssh(cloud_plan):
    rules = _ingress(cloud_plan)
    assert {(p, p) for p, _, _ in rules} == {(80, 80), (443, 443), (22, 22)}
    ssh_sources = {cidr for port, _, cidr in rules if port == 22}
    assert ssh_sources == {"198.51.100.0/24"}
    sg = cloud_plan.one("aws:ec2/securityGroup:SecurityGroup")
    assert not sg.inputs.get("ingress"), "inline rules would fight the rule resources"
    # The legacy rule type is not used either.
    assert not cloud_plan.of_type("aws:ec2/securityGroupRule:SecurityGroupRule")


def test_ssh_rules_follow_admin_cidrs():
    plan = harness.run("production", overrides={"adminCidrs": ["203.0.113.0/28", "2001:db8::/48"]})
    ssh = {cidr for port, _, cidr in _ingress(plan) if port == 22}
    assert ssh == {"203.0.113.0/28", "2001:db8::/48"}
    for cidr in ssh:
        assert ipaddress.ip_network(cidr).prefixlen > 0


def test_default_security_group_is_stripped(cloud_plan):
    default = cloud_plan.one("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert default.inputs.get("ingress", []) == [] and default.inputs.get("egress", []) == []


def test_vpc_has_public_subnet_igw_and_default_route(cloud_plan):
    vpc = cloud_plan.one("aws:ec2/vpc:Vpc")
    subnet = cloud_plan.one("aws:ec2/subnet:Subnet")
    igw = cloud_plan.one("aws:ec2/internetGateway:InternetGateway")
    table = cloud_plan.one("aws:ec2/routeTable:RouteTable")
    assoc = cloud_plan.one("aws:ec2/routeTableAssociation:RouteTableAssociation")
    assert ipaddress.ip_network(subnet.inputs["cidrBlock"]).subnet_of(
        ipaddress.ip_network(vpc.inputs["cidrBlock"]))
    assert vpc.urn in subnet.all_dependencies and vpc.urn in igw.all_dependencies
    (route,) = table.inputs["routes"]
    assert route["cidrBlock"] == "0.0.0.0/0" and igw.urn in table.all_dependencies
    assert {subnet.urn, table.urn} <= assoc.all_dependencies


def test_elastic_ip_is_on_the_interface_before_the_instance_boots(cloud_plan):
    nic = cloud_plan.one("aws:ec2/networkInterface:NetworkInterface")
    assoc = cloud_plan.one("aws:ec2/eipAssociation:EipAssociation")
    instance = cloud_plan.one(INSTANCE)
    assert nic.urn in assoc.all_dependencies
    assert assoc.urn in instance.all_dependencies
    assert instance.inputs["primaryNetworkInterface"]["networkInterfaceId"] == "host-nic-id"
    assert nic.inputs["securityGroups"] == [
        "sg-" + canned._digest("network-host-sg")[:17]]


def test_docker_provider_waits_for_the_ready_host_over_pinned_ssh(cloud_plan):
    provider = cloud_plan.one("pulumi:providers:docker")
    ready = cloud_plan.one("command:remote:Command", "host-ready")
    assert provider.inputs["host"] == f"ssh://ubuntu@{canned.EIP}:22"
    assert ready.urn in provider.depends_on
    opts = json.loads(provider.inputs["sshOpts"])
    assert "StrictHostKeyChecking=yes" in opts
    assert f"UserKnownHostsFile=~/.ssh/storiesofsoftware-{cloud_plan.stack}/known_hosts" in opts
    # The readiness check waits for cloud-init and proves the mount and the daemon.
    script = ready.inputs["create"]
    assert "cloud-init status --wait" in script
    assert "mountpoint -q /var/lib/docker/volumes" in script and "docker version" in script
    connection = unwrap(ready.inputs["connection"])
    assert connection["user"] == "ubuntu" and connection["host"] == canned.EIP
    assert connection["hostKey"].startswith("ssh-ed25519 ")
    assert isinstance(ready.inputs["connection"], Secret) or isinstance(
        ready.inputs["connection"]["privateKey"], Secret)
    attach = cloud_plan.one("aws:ec2/volumeAttachment:VolumeAttachment")
    assert attach.urn in ready.depends_on


def test_key_writer_gets_the_private_key_only_on_stdin(cloud_plan):
    (call,) = [args for tok, args in cloud_plan.invokes if tok == "command:local:run"]
    # Invoke arguments go to the provider only, never to state; the key is in stdin alone.
    assert "BEGIN OPENSSH PRIVATE KEY" in unwrap(call["stdin"])
    for value in (call["command"], json.dumps(unwrap(call["environment"]))):
        assert "PRIVATE KEY" not in value
    assert unwrap(call["environment"])["SOS_KNOWN_HOST"].startswith(canned.EIP + " ssh-ed25519 ")


def test_no_docker_tcp_socket_anywhere():
    daemon = cloud_init.docker_daemon_config()
    assert "hosts" not in daemon
    assert daemon["log-driver"] == "json-file"
    assert daemon["log-opts"] == {"max-size": "10m", "max-file": "5"}
    assert daemon["live-restore"] is True and daemon["no-new-privileges"] is True


# ------------------------------------------------------------------ cloud-init, real tools

def _user_data(plan_files, stack) -> Path:
    return plan_files[stack] / "host-instance" / "user-data"


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_cloud_init_passes_the_real_schema_check(plan_files, stack):
    tool = require_tool("cloud-init")
    path = _user_data(plan_files, stack)
    result = subprocess.run([tool, "schema", "--config-file", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout


def test_cloud_init_schema_check_does_reject_a_broken_document(tmp_path):
    tool = require_tool("cloud-init")
    bad = tmp_path / "bad.yaml"
    bad.write_text("#cloud-config\nssh_genkeytypes: []\nssh_pwauth: 7\n")
    result = subprocess.run([tool, "schema", "--config-file", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_cloud_init_mounts_the_volume_before_docker_exists(plan_files, stack):
    doc = yaml.safe_load(_user_data(plan_files, stack).read_text())
    runcmd = doc["runcmd"]
    volume_id = "vol-" + canned._digest("host-data")[:17]
    assert runcmd[0] == ["/usr/local/sbin/sos-data-volume", volume_id, "/var/lib/docker/volumes"]
    install = next(i for i, c in enumerate(runcmd) if "docker.io" in " ".join(c))
    assert install > 0
    assert "packages" not in doc  # Docker is not installed before the mount
    files = {f["path"]: f for f in doc["write_files"]}
    assert files["/etc/systemd/system/docker.service.d/10-data-volume.conf"]["content"] == (
        "[Unit]\nRequiresMountsFor=/var/lib/docker/volumes\n")
    daemon = json.loads(files["/etc/docker/daemon.json"]["content"])
    assert daemon == cloud_init.docker_daemon_config()
    sshd = files["/etc/ssh/sshd_config.d/60-storiesofsoftware.conf"]["content"]
    assert "PasswordAuthentication no" in sshd and "PermitRootLogin no" in sshd
    assert doc["ssh_pwauth"] is False
    assert doc["ssh_keys"]["ed25519_private"].count("[secret]") >= 1, "host key must be masked"
    assert doc["ssh_authorized_keys"][0].startswith("ssh-ed25519 ")


def test_data_volume_script_passes_shellcheck(tmp_path):
    tool = require_tool("shellcheck")
    script = tmp_path / "sos-data-volume"
    script.write_text(cloud_init.data_volume_script())
    result = subprocess.run([tool, "-s", "bash", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


# The script run for real against an image file, with real blkid and mkfs.ext4; only mount,
# mountpoint and systemctl are stand-ins (they need root and a kernel mount).

def _run_volume_script(tmp_path: Path, device: Path | None, tries: int = 1):
    for tool in ("blkid", "mkfs.ext4"):
        require_tool(tool)
    stubs = tmp_path / "bin"
    stubs.mkdir(exist_ok=True)
    log = tmp_path / "calls.log"
    for name, body in (("mount", f'echo "mount $*" >> {log}'), ("mountpoint", "exit 1"),
                       ("systemctl", "exit 0")):
        stub = stubs / name
        stub.write_text(f"#!/bin/sh\n{body}\n")
        stub.chmod(0o755)
    by_id = tmp_path / "by-id"
    by_id.mkdir(exist_ok=True)
    volume_id = "vol-0123456789abcdef0"
    link = by_id / "nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0"
    if device is not None and not link.exists():
        link.symlink_to(device)
    fstab = tmp_path / "fstab"
    fstab.touch()
    script = tmp_path / "sos-data-volume"
    script.write_text(cloud_init.data_volume_script())
    env = {**os.environ, "PATH": f"{stubs}:/usr/sbin:/sbin:{os.environ['PATH']}",
           "SOS_BY_ID_DIR": str(by_id), "SOS_XEN_DEVICE": str(tmp_path / "no-xvdf"),
           "SOS_FSTAB": str(fstab), "SOS_ATTACH_TRIES": str(tries)}
    mount_point = tmp_path / "volumes"
    result = subprocess.run(["bash", str(script), volume_id, str(mount_point)],
                            capture_output=True, text=True, env=env)
    return result, fstab, log


def _blkid_uuid(device: Path) -> str:
    return subprocess.run(["blkid", "-s", "UUID", "-o", "value", str(device)],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_volume_script_formats_a_blank_volume_once_and_never_again(tmp_path):
    image = tmp_path / "disk.img"
    with open(image, "wb") as handle:
        handle.truncate(16 * 1024 * 1024)
    first, fstab, log = _run_volume_script(tmp_path, image)
    assert first.returncode == 0, first.stderr
    uuid = _blkid_uuid(image)
    assert fstab.read_text().splitlines() == [
        f"UUID={uuid} {tmp_path / 'volumes'} ext4 defaults,nofail 0 2"]
    assert f"mount {tmp_path / 'volumes'}" in log.read_text()
    # Second boot, or a new instance on the same volume: same filesystem, no second fstab line.
    second, fstab, _ = _run_volume_script(tmp_path, image)
    assert second.returncode == 0, second.stderr
    assert _blkid_uuid(image) == uuid
    assert len(fstab.read_text().splitlines()) == 1


def test_volume_script_fails_loudly_when_the_volume_never_arrives(tmp_path):
    result, fstab, _ = _run_volume_script(tmp_path, None)
    assert result.returncode == 1
    assert "was not attached" in result.stderr
    assert fstab.read_text() == ""


def test_every_cloud_stack_is_planned():
    for stack in ("staging", "production"):
        assert plan_for(stack).of_type(INSTANCE)
