"""nodeadm e2e cases about the rest of the node: kubeconfig, kubeconfig-outpost, image-credential-provider,
nodeadm-environment-config (its six inputs), network-name-resolution, local-disks, config-check and
imds-timeouts."""

from __future__ import annotations

import pytest
from nodeadm_case_helpers import CA, CLUSTER, nodeconfig, read_json, read_yaml, systemd_lines

from nodeforge.bootstrap import credprovider, instance, localdisks
from nodeforge.bootstrap.errors import EXIT_IMDS, EXIT_INVALID, EXIT_OK


def run(agent, kubelet, user_data):
    result = agent.run("--kubelet-version", kubelet, user_data=user_data)
    assert result.code == EXIT_OK, result.err
    return result


# -- kubeconfig -----------------------------------------------------------------------------------------------


def expected_kubeconfig(server, cluster):
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "kubernetes", "cluster": {"certificate-authority": "/etc/kubernetes/pki/ca.crt", "server": server}}
        ],
        "current-context": "kubelet",
        "contexts": [{"name": "kubelet", "context": {"cluster": "kubernetes", "user": "kubelet"}}],
        "users": [
            {
                "name": "kubelet",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "aws",
                        "args": ["eks", "get-token", "--cluster-name", cluster, "--region", "us-west-2"],
                    }
                },
            }
        ],
    }


@pytest.mark.parametrize("kubelet", ["1.29.0", "1.35.0"])
def test_kubeconfig(agent, kubelet):
    run(agent, kubelet, CLUSTER)  # no aws-iam-authenticator on this node: aws eks get-token
    assert read_yaml(agent.root, "/var/lib/kubelet/kubeconfig") == expected_kubeconfig(
        "https://example.com", "my-cluster"
    )


OUTPOST = f"""---
apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  cluster:
    id: my-cluster-id
    name: my-cluster
    apiServerEndpoint: http://localhost
    certificateAuthority: {CA}
    cidr: 10.100.0.0/16
    enableOutpost: true
"""


def host_pairs(text):
    pairs = set()
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        pairs.update((fields[0], name) for name in fields[1:])
    return pairs


def test_kubeconfig_outpost(agent, monkeypatch):
    monkeypatch.setattr(instance, "lookup_host", lambda host: {"localhost": ["127.0.0.1", "::1"]}[host])
    (agent.root / "etc").mkdir()
    (agent.root / "etc/hosts").write_text("10.0.0.1\tother\n")
    run(agent, "1.35.0", OUTPOST)
    hosts = (agent.root / "etc/hosts").read_text()
    assert {("127.0.0.1", "localhost"), ("::1", "localhost"), ("10.0.0.1", "other")} <= host_pairs(hosts)
    assert "127.0.0.1\tlocalhost\n" in hosts and "::1\tlocalhost\n" in hosts
    # the kubelet's bootstrap kubeconfig authenticates with the cluster ID, over http
    kubeconfig = read_yaml(agent.root, "/var/lib/kubelet/bootstrap-kubeconfig")
    assert kubeconfig == expected_kubeconfig("http://localhost", "my-cluster-id")
    # a re-run adds nothing (nodeadm appends again; the entries are already there)
    run(agent, "1.35.0", OUTPOST)
    assert (agent.root / "etc/hosts").read_text() == hosts


def test_outpost_unresolvable_api_server_is_an_error():
    def fail(host):
        raise OSError("Name or service not known")

    with pytest.raises(Exception, match=r"cannot resolve the API server host 'api\.example'"):
        instance.outpost_hosts("https://api.example", "", fail, attempts=2, delay=0)


# -- image credential provider --------------------------------------------------------------------------------

ECR = [
    "*.dkr.ecr.*.amazonaws.com",
    "*.dkr-ecr.*.on.aws",
    "*.dkr.ecr.*.amazonaws.com.cn",
    "*.dkr-ecr.*.on.amazonwebservices.com.cn",
    "*.dkr.ecr-fips.*.amazonaws.com",
    "*.dkr-ecr-fips.*.on.aws",
    "*.dkr.ecr.*.c2s.ic.gov",
    "*.dkr.ecr.*.sc2s.sgov.gov",
    "*.dkr.ecr.*.cloud.adc-e.uk",
    "*.dkr.ecr.*.csp.hci.ic.gov",
    "*.dkr.ecr.*.amazonaws.eu",
    "public.ecr.aws",
]


@pytest.mark.parametrize(("kubelet", "patterns"), [("1.31.0", ECR), ("1.36.0", [*ECR, "ecr-public.aws.com"])])
def test_image_credential_provider(agent, kubelet, patterns):
    binary = agent.root / credprovider.BINARY_PATH.lstrip("/")
    binary.parent.mkdir(parents=True)
    binary.write_text("")
    run(agent, kubelet, CLUSTER)
    assert read_json(agent.root, credprovider.CONFIG_PATH) == {
        "apiVersion": "kubelet.config.k8s.io/v1",
        "kind": "CredentialProviderConfig",
        "providers": [
            {
                "name": "ecr-credential-provider",
                "matchImages": patterns,
                "defaultCacheDuration": "12h0m0s",
                "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
            }
        ],
    }


# -- instance environment --------------------------------------------------------------------------------------

ENVIRONMENT = """  instance:
    environment:
"""
SYSTEM = "/etc/systemd/system.conf.d/environment.conf"
KUBELET_ENV = "/etc/systemd/system/kubelet.service.d/environment.conf"
CONTAINERD_ENV = "/etc/systemd/system/containerd.service.d/environment.conf"


def lines(agent, path):
    file = agent.root / path.lstrip("/")
    return systemd_lines(file.read_text()) if file.exists() else None


def test_environment_basic(agent):
    run(
        agent,
        "1.34.0",
        nodeconfig(
            ENVIRONMENT
            + """      default:
        DUMMY_VAR: "HELLO WORLD"
        HTTP_PROXY: "http://example-proxy:8080"
        HTTPS_PROXY: "https://example-proxy:8080"
        NO_PROXY: "localhost,127.0.0.1,169.254.169.254"
"""
        ),
    )
    assert lines(agent, SYSTEM) == [
        "[Manager]",
        'DefaultEnvironment="DUMMY_VAR=HELLO WORLD"',
        'DefaultEnvironment="HTTPS_PROXY=https://example-proxy:8080"',
        'DefaultEnvironment="HTTP_PROXY=http://example-proxy:8080"',
        'DefaultEnvironment="NO_PROXY=localhost,127.0.0.1,169.254.169.254"',
    ]


def test_environment_quote_escaping(agent):
    run(
        agent,
        "1.34.0",
        nodeconfig(
            ENVIRONMENT
            + """      default:
        SIMPLE_VAR: "simple value"
        QUOTED_VAR: 'value with "quotes" inside'
        BACKSLASH_VAR: "value with \\\\backslash"
"""
        ),
    )
    assert lines(agent, SYSTEM) == [
        "[Manager]",
        'DefaultEnvironment="BACKSLASH_VAR=value with \\\\backslash"',
        'DefaultEnvironment="QUOTED_VAR=value with \\"quotes\\" inside"',
        'DefaultEnvironment="SIMPLE_VAR=simple value"',
    ]


def test_environment_service_specific_then_service_only_then_none(agent):
    run(
        agent,
        "1.34.0",
        nodeconfig(
            ENVIRONMENT
            + """      default:
        HTTP_PROXY: "http://default-proxy:8080"
        HTTPS_PROXY: "https://default-proxy:8080"
        NO_PROXY: "localhost,127.0.0.1,169.254.169.254"
      kubelet:
        KUBELET_SPECIFIC_VAR: "kubelet-value"
        HTTP_PROXY: "http://kubelet-proxy:8080"  # Override default
      containerd:
        CONTAINERD_SPECIFIC_VAR: "containerd-value"
"""
        ),
    )
    assert lines(agent, SYSTEM) == [
        "[Manager]",
        'DefaultEnvironment="HTTPS_PROXY=https://default-proxy:8080"',
        'DefaultEnvironment="HTTP_PROXY=http://default-proxy:8080"',
        'DefaultEnvironment="NO_PROXY=localhost,127.0.0.1,169.254.169.254"',
    ]
    assert lines(agent, KUBELET_ENV) == [
        "[Service]",
        'Environment="HTTP_PROXY=http://kubelet-proxy:8080"',
        'Environment="KUBELET_SPECIFIC_VAR=kubelet-value"',
    ]
    assert lines(agent, CONTAINERD_ENV) == ["[Service]", 'Environment="CONTAINERD_SPECIFIC_VAR=containerd-value"']

    # service only: no manager file (nodeadm's case removes the files between runs; ours removes its own)
    run(
        agent,
        "1.34.0",
        nodeconfig(
            ENVIRONMENT
            + """      kubelet:
        KUBELET_ONLY_VAR: "kubelet-only-value"
      containerd:
        CONTAINERD_ONLY_VAR: "containerd-only-value"
"""
        ),
    )
    assert lines(agent, SYSTEM) is None
    assert lines(agent, KUBELET_ENV) == ["[Service]", 'Environment="KUBELET_ONLY_VAR=kubelet-only-value"']
    assert lines(agent, CONTAINERD_ENV) == ["[Service]", 'Environment="CONTAINERD_ONLY_VAR=containerd-only-value"']

    # no environment section, then an empty one: no file at all
    run(agent, "1.34.0", nodeconfig("  instance:\n    localStorage: {}\n"))
    assert (lines(agent, SYSTEM), lines(agent, KUBELET_ENV), lines(agent, CONTAINERD_ENV)) == (None, None, None)
    run(agent, "1.34.0", nodeconfig(ENVIRONMENT + "      default: {}\n      kubelet: {}\n      containerd: {}\n"))
    assert (lines(agent, SYSTEM), lines(agent, KUBELET_ENV), lines(agent, CONTAINERD_ENV)) == (None, None, None)


def test_environment_leaves_files_it_did_not_write(agent):
    own = agent.root / KUBELET_ENV.lstrip("/")
    own.parent.mkdir(parents=True)
    own.write_text("[Service]\nEnvironment=MINE=1\n")
    run(agent, "1.34.0", CLUSTER)
    assert own.read_text() == "[Service]\nEnvironment=MINE=1\n"


def test_environment_percent_and_bad_names(agent):
    assert instance.escape("100%\n\t") == "100%%\\n\\t"
    result = agent.run(
        user_data=nodeconfig(ENVIRONMENT + "      ../etc/x:\n        A: b\n      default:\n        1BAD: c\n")
    )
    assert result.code == EXIT_INVALID
    assert "spec.instance.environment.../etc/x: '../etc/x' is not a systemd service name" in result.err
    assert "spec.instance.environment.default.1BAD: not a valid environment variable name" in result.err


# -- name resolution -------------------------------------------------------------------------------------------


def test_network_name_resolution(agent):
    resolved = agent.root / "usr/lib/systemd/systemd-resolved"
    resolved.parent.mkdir(parents=True)
    resolved.write_text("")
    run(
        agent,
        "1.31.0",
        nodeconfig("""  instance:
    network:
      nameservers:
        - "8.8.8.8"
        - "8.8.4.4"
      domains:
        - "search.me.please"
        - "search.me.next.please"
"""),
    )
    assert lines(agent, "/run/systemd/resolved.conf.d/40-eks.conf") == [
        "[Resolve]",
        "DNS=8.8.8.8 8.8.4.4",
        "Domains=search.me.please search.me.next.please",
    ]


# -- local disks -----------------------------------------------------------------------------------------------


class FakeRunner:
    """Answers the commands setup-local-disks runs, like a fresh instance with its disks unformatted."""

    def __init__(self, active=()):
        self.commands = []
        self.active = set(active)

    def __call__(self, argv):
        argv = list(argv)
        self.commands.append(argv)
        if argv[:3] == ["mdadm", "--detail", "--scan"]:
            creates = [i for i, c in enumerate(self.commands) if c[:2] == ["mdadm", "--create"]]
            if not creates:
                return localdisks.Result(0, "")
            # udev makes the /dev/md/NAME link some time after the create: until a settle, mdadm names md127
            settled = any(c[:2] == ["udevadm", "settle"] for c in self.commands[creates[-1] :])
            device = "/dev/md/kubernetes" if settled else "/dev/md127"
            return localdisks.Result(0, f"ARRAY {device} metadata=1.2 name=kubernetes\n")
        if argv[0] == "blkid":
            return localdisks.Result(0, "0b0d1c4e-1111-2222-3333-444455556666\n")
        if argv[:2] == ["systemctl", "is-active"]:
            states = ["active" if unit in self.active else "inactive" for unit in argv[2:]]
            return localdisks.Result(0 if set(states) == {"active"} else 3, "".join(f"{s}\n" for s in states))
        return localdisks.Result(0, "")


def instance_store(root, count):
    by_id = root / "dev/disk/by-id"
    by_id.mkdir(parents=True)
    for index in range(count):
        device = root / f"dev/nvme{index + 1}n1"
        device.write_text("")
        (by_id / f"nvme-Amazon_EC2_NVMe_Instance_Storage_AWS{index}").symlink_to(f"../../nvme{index + 1}n1")
    (by_id / "nvme-Amazon_Elastic_Block_Store_vol0").symlink_to("../../nvme0n1")


def test_local_disks_raid0(agent):
    result = run(agent, "1.35.0", nodeconfig("  instance:\n    localStorage:\n      strategy: RAID0\n"))
    # under --root the agent leaves the disks alone and says so; the step it would run is run here with a fake runner
    assert "spec.instance.localStorage (RAID0): not set up" in result.err
    instance_store(agent.root, 2)
    disks = localdisks.LocalDisks("RAID0", root=agent.root, runner=FakeRunner())
    disks.apply()
    commands = disks.runner.commands
    create = next(c for c in commands if c[:2] == ["mdadm", "--create"])
    assert create == ["mdadm", "--create", "--force", "--verbose", "/dev/md/kubernetes", "--level=0",
                      "--name=kubernetes", "--raid-devices=2", "/dev/nvme1n1", "/dev/nvme2n1"]  # fmt: skip
    assert ["mkfs.xfs", "-K", "-l", "su=8b", "/dev/md/kubernetes"] in commands
    # udev's /dev/md/kubernetes link waited for between the array's creation and its first use
    settles = [i for i, c in enumerate(commands) if c[:2] == ["udevadm", "settle"]]
    assert len(settles) == 2 and commands.index(create) < settles[1] < commands.index(
        ["mkfs.xfs", "-K", "-l", "su=8b", "/dev/md/kubernetes"]
    )
    assert ["systemctl", "enable", "mnt-k8s\\x2ddisks-0.mount", "--now"] in commands
    unit = (agent.root / "etc/systemd/system/mnt-k8s\\x2ddisks-0.mount").read_text()
    assert "What=UUID=0b0d1c4e-1111-2222-3333-444455556666\nWhere=/mnt/k8s-disks/0\nType=xfs\n" in unit
    for path in ("/var/lib/kubelet", "/var/lib/containerd", "/var/lib/soci-snapshotter-grpc", "/var/log/pods"):
        assert ["cp", "-a", f"{path}/", f"/mnt/k8s-disks/0/{path.rsplit('/', 1)[1]}/"] in commands
    assert (agent.root / "etc/systemd/system/var-lib-kubelet.mount").read_text().count("Options=bind") == 1
    assert "ARRAY /dev/md/kubernetes" in (agent.root / ".aws/mdadm.conf").read_text()
    # the array is mounted before anything is copied onto it; the bind mounts after every copy, with no second reload
    binds = ["var-lib-kubelet.mount", "var-lib-containerd.mount", "var-lib-soci\\x2dsnapshotter\\x2dgrpc.mount",
             "var-log-pods.mount"]  # fmt: skip
    enables = [i for i, c in enumerate(commands) if c[:2] == ["systemctl", "enable"]]
    copies = [i for i, c in enumerate(commands) if c[0] == "cp"]
    assert [commands[i] for i in enables] == [
        ["systemctl", "enable", "mnt-k8s\\x2ddisks-0.mount", "--now"],
        ["systemctl", "enable", "--no-reload", "--now", *binds],
    ]
    assert enables[0] < min(copies) and max(copies) < enables[1]
    assert not any(c[:2] in (["systemctl", "stop"], ["systemctl", "start"]) for c in commands)  # nothing was running


def test_local_disks_raid0_stops_running_services_and_skips_linked_dirs(tmp_path):
    """A re-run on a node where the kubelet's directory is already on the array and both services run: only
    containerd's directories move (SOCI and pod logs have no running unit here), containerd stopped meanwhile."""
    instance_store(tmp_path, 2)
    runner = FakeRunner(active={"var-lib-kubelet.mount", "kubelet.service", "containerd.service"})
    localdisks.LocalDisks("RAID0", disabled_mounts=["PodLogs"], root=tmp_path, runner=runner).apply()
    commands = runner.commands
    assert [c[2] for c in commands if c[0] == "cp"] == ["/var/lib/containerd/", "/var/lib/soci-snapshotter-grpc/"]
    stop = commands.index(["systemctl", "stop", "containerd.service"])
    start = commands.index(["systemctl", "start", "containerd.service"])
    copies = [i for i, c in enumerate(commands) if c[0] == "cp"]
    assert stop < min(copies) and max(copies) < start
    assert not (tmp_path / "etc/systemd/system/var-lib-kubelet.mount").exists()
    assert not (tmp_path / "etc/systemd/system/var-log-pods.mount").exists()


def test_local_disks_plan_and_report(agent):
    result = agent.run(
        user_data=nodeconfig(
            "  instance:\n    localStorage:\n      strategy: RAID10\n      mountPath: /data\n"
            "      disabledMounts: [PodLogs]\n"
        )
    )
    assert result.code == EXIT_OK
    assert "spec.instance.localStorage (RAID10): not set up (--dry-run or --root other than /)" in result.err


def test_local_disks_raid10_needs_four_disks_and_mount_mounts_each(tmp_path):
    instance_store(tmp_path, 3)
    with pytest.raises(Exception, match="RAID10 needs at least 4 disks, this instance has 3"):
        localdisks.LocalDisks("RAID10", root=tmp_path, runner=FakeRunner()).apply()
    runner = FakeRunner()
    localdisks.LocalDisks("Mount", mount_dir="/data", disabled_mounts=["PodLogs"], root=tmp_path, runner=runner).apply()
    assert [c for c in runner.commands if c[0] == "mkfs.xfs"] == [
        ["mkfs.xfs", "-l", "su=8b", f"/dev/nvme{n}n1"] for n in (1, 2, 3)
    ]
    # one reload for the three mount units
    assert ["systemctl", "enable", "--now", "data-1.mount", "data-2.mount", "data-3.mount"] in runner.commands
    assert sum(c[:2] == ["systemctl", "enable"] for c in runner.commands) == 1
    assert not any(c[:2] == ["mdadm", "--create"] for c in runner.commands)


def test_local_disks_without_instance_store_do_nothing(tmp_path):
    runner = FakeRunner()
    localdisks.LocalDisks("RAID0", root=tmp_path, runner=runner).apply()
    # udev's queue drained first (at boot a disk may not be named yet), then nothing: no NVMe instance store
    assert runner.commands == [["udevadm", "settle", "--timeout=60"]]


def test_raid_bind_mounts_skip_disabled(tmp_path):
    instance_store(tmp_path, 4)
    runner = FakeRunner()
    localdisks.LocalDisks("RAID10", disabled_mounts=["Containerd", "SOCI"], root=tmp_path, runner=runner).apply()
    copied = [c[2] for c in runner.commands if c[0] == "cp"]
    assert copied == ["/var/lib/kubelet/", "/var/log/pods/"]
    assert any(c[:2] == ["mdadm", "--create"] and "--level=10" in c for c in runner.commands)


# -- config-check and imds-timeouts -------------------------------------------------------------------------------


def test_config_check_good_and_bad(agent):
    assert agent.run("--dry-run", user_data=CLUSTER).code == EXIT_OK
    bad = CLUSTER.replace("    name: my-cluster", "    name-not-real: my-cluster")
    result = agent.run("--dry-run", user_data=bad)
    assert result.code == EXIT_INVALID
    assert "spec.cluster.name: required" in result.err
    assert "spec.cluster.name-not-real: unknown field" in result.err


def test_imds_unreachable_then_available(agent):
    agent.imds.fail_next = 100  # IMDS answers 500 to every request: the agent gives up, writing nothing
    result = agent.run(user_data=None)
    assert result.code == EXIT_IMDS
    assert not (agent.root / "etc").exists()
    agent.imds.fail_next = 1  # IMDS comes back: the retry succeeds
    agent.imds.user_data = CLUSTER.encode()
    assert agent.run("--imds-retries", "3").code == EXIT_OK


def test_network_name_resolution_needs_systemd_resolved(agent):
    result = agent.run(user_data=nodeconfig("  instance:\n    network:\n      nameservers: [8.8.8.8]\n"))
    assert result.code == EXIT_INVALID
    assert "spec.instance.network: this image has no systemd-resolved" in result.err


def test_legacy_containerd_file_in_version3_refused_on_containerd1(agent):
    (agent.root / "etc/containerd").mkdir(parents=True)
    (agent.root / "etc/containerd/config.toml").write_text("version = 2\n")
    (agent.root / "etc/eks").mkdir(parents=True)
    (agent.root / "etc/eks/custom.toml").write_text("version = 3\n[plugins.'io.containerd.cri.v1.images']\nx = 1\n")
    result = agent.run(
        "legacy", "--", "my-cluster", "--b64-cluster-ca", CA, "--apiserver-endpoint", "https://example.com",
        "--containerd-config-file", "/etc/eks/custom.toml",
    )  # fmt: skip
    assert result.code == EXIT_INVALID
    assert "a version 3 containerd config cannot be used with this image's containerd 1.x" in result.err
