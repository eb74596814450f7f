"""Kubelet command-line flags read as the kubelet reads them (spf13/pflag), from any dialect's flag list.

pflag's rules, written down by us from spf13/pflag (flag.go, parseLongArg) and the kubelet's flag definitions
(kubernetes cmd/kubelet/app/options/options.go, component-base logs flags):

- ``--name=value`` and ``--name value``: a flag that takes a value consumes the next argument, whatever it is;
- a boolean flag (``NoOptDefVal`` "true") never consumes the next argument: ``--name`` means true, and its value
  can only be given as ``--name=false`` (strconv.ParseBool spellings); ``--rotate-certificates false`` makes
  ``false`` a stray argument, on which the kubelet refuses to start (``unknown command``);
- repeated flags: a scalar flag's last occurrence wins; map flags (``--feature-gates``, ``--node-labels``,
  ``--eviction-hard`` ...) add their pairs (later pairs win per key); list flags append.

:func:`normalize` turns a flag list into ``--name=value`` words (``--name`` for a bare boolean), with the
occurrences of each map flag merged into one, as the kubelet would merge them; :func:`effective` gives the value
the kubelet ends up with for each flag.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

# Boolean kubelet flags (pflag BoolVar), current and deprecated-but-accepted, and the logging ones.
BOOLEAN_FLAGS = frozenset(
    {
        "add-dir-header",
        "alsologtostderr",
        "anonymous-auth",
        "authentication-token-webhook",
        "cgroups-per-qos",
        "contention-profiling",
        "cpu-cfs-quota",
        "enable-cadvisor-json-endpoints",
        "enable-controller-attach-detach",
        "enable-debugging-handlers",
        "enable-load-reader",
        "enable-server",
        "exit-on-lock-contention",
        "experimental-allocatable-ignore-eviction",
        "experimental-check-node-capabilities-before-mount",
        "experimental-kernel-memcg-notification",
        "fail-cgroupv1",
        "fail-swap-on",
        "help",
        "keep-terminated-pod-volumes",
        "kernel-memcg-notification",
        "local-storage-capacity-isolation",
        "log-json-split-stream",
        "log-text-split-stream",
        "logtostderr",
        "make-iptables-util-chains",
        "one-output",
        "protect-kernel-defaults",
        "really-crash-for-testing",
        "register-node",
        "register-schedulable",
        "rotate-certificates",
        "rotate-server-certificates",
        "runonce",
        "seccomp-default",
        "serialize-image-pulls",
        "skip-headers",
        "skip-log-headers",
        "docker-only",
        "disable-root-cgroup-stats",
    }
)
# Map flags: each occurrence adds key=value pairs (cliflag.MapStringBool / MapStringString / ConfigurationMap /
# LangleSeparatedMapStringString), separated by commas; the value says how a pair is written.
MAP_FLAGS = {
    "feature-gates": "=",
    "node-labels": "=",
    "system-reserved": "=",
    "kube-reserved": "=",
    "qos-reserved": "=",
    "eviction-soft-grace-period": "=",
    "eviction-minimum-reclaim": "=",
    "eviction-hard": "<",
    "eviction-soft": "<",
}
# List flags (pflag StringSlice): occurrences append.
LIST_FLAGS = frozenset(
    {"cluster-dns", "tls-cipher-suites", "allowed-unsafe-sysctls", "enforce-node-allocatable", "register-with-taints"}
)
SHORTHANDS = {"v": "v", "h": "help"}
TRUE = ("1", "t", "T", "TRUE", "true", "True")
FALSE = ("0", "f", "F", "FALSE", "false", "False")


class Flag:
    """One flag occurrence: its name (no dashes), its value (None: a bare boolean) and the words it came from."""

    __slots__ = ("name", "source", "value")

    def __init__(self, name: str, value: str | None, source: str) -> None:
        self.name = name
        self.value = value
        self.source = source


def parse(words: list[str], where: str, error: Callable[[str], None]) -> list[Flag]:
    """The flag occurrences in ``words`` (pflag's reading); every problem is reported with ``where[i]``."""
    flags: list[Flag] = []
    index = 0
    while index < len(words):
        word = words[index]
        here = f"{where}[{index}]"
        index += 1
        if word.startswith("--") and len(word) > 2:
            name, equals, value = word[2:].partition("=")
        elif word.startswith("-") and len(word) > 1 and not word.startswith("--"):
            short, equals, value = word[1:].partition("=")
            if short not in SHORTHANDS:
                error(f"{here}: {word!r}: unknown shorthand flag (the kubelet has -v and -h)")
                continue
            name = SHORTHANDS[short]
        else:
            error(f"{here}: {word!r} is not a flag (kubelet flags start with --)")
            continue
        if not name:
            error(f"{here}: {word!r} is not a flag")
            continue
        if equals:
            flags.append(Flag(name, value, word))
        elif name in BOOLEAN_FLAGS:
            flags.append(Flag(name, None, word))
        elif index < len(words):
            flags.append(Flag(name, words[index], f"{word} {words[index]}"))
            index += 1
        else:
            error(f"{here}: {word!r} needs a value (--{name}=VALUE or --{name} VALUE)")
            continue
        flag = flags[-1]
        if name in BOOLEAN_FLAGS and flag.value is not None and flag.value not in TRUE + FALSE:
            error(f"{here}: --{name} is a boolean flag: {flag.value!r} is not true or false")
    return flags


def pairs(value: str, separator: str) -> list[tuple[str, str | None]]:
    """``a=1,b=2`` as [(a, 1), (b, 2)]; an item without the separator keeps None (written back as it was)."""
    found_pairs: list[tuple[str, str | None]] = []
    for item in value.split(","):
        key, found, rest = item.partition(separator)
        if item.strip():
            found_pairs.append((key.strip(), rest.strip() if found else None))
    return found_pairs


def effective(flags: list[Flag]) -> dict[str, str]:
    """What the kubelet ends up with for each flag: the last scalar, the merged map, the appended list."""
    values: dict[str, str] = {}
    maps: dict[str, dict[str, str | None]] = {}
    for flag in flags:
        value = "true" if flag.value is None else flag.value
        if flag.name in MAP_FLAGS:
            merged = maps.setdefault(flag.name, {})
            merged.update(pairs(value, MAP_FLAGS[flag.name]))
            separator = MAP_FLAGS[flag.name]
            values[flag.name] = ",".join(
                key if item is None else f"{key}{separator}{item}" for key, item in merged.items()
            )
        elif flag.name in LIST_FLAGS and flag.name in values:
            values[flag.name] = f"{values[flag.name]},{value}"
        else:
            values[flag.name] = value
    return values


def is_true(value: str) -> bool:
    return value in TRUE


def normalize(words: list[str], where: str, error: Callable[[str], None]) -> list[str]:
    """``words`` as ``--name=value`` flags in their order, each map flag's occurrences merged into its first
    (``--feature-gates=A=true --feature-gates=B=false`` -> ``--feature-gates=A=true,B=false``)."""
    flags = parse(words, where, error)
    merged = effective(flags)
    result: list[str] = []
    emitted: set[str] = set()
    for flag in flags:
        if flag.name in MAP_FLAGS:
            if flag.name not in emitted:
                result.append(f"--{flag.name}={merged[flag.name]}")
                emitted.add(flag.name)
            continue
        result.append(f"--{flag.name}" if flag.value is None else f"--{flag.name}={flag.value}")
    return result
