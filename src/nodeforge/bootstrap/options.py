"""The agent's command-line options: one table, parsed without :mod:`argparse` (whose import costs a good part
of a run at boot). ``--name value`` and ``--name=value``; no abbreviations; ``-h``/``--help`` prints the table."""

from __future__ import annotations

from nodeforge.bootstrap.errors import (
    EXIT_CIS,
    EXIT_IMDS,
    EXIT_INTERNAL,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_SERVICES,
    EXIT_USAGE,
    EXIT_WRITE,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

PROG = "python3 -m nodeforge.bootstrap"
USAGE = f"usage: {PROG} [options]  |  {PROG} legacy [options] -- CLUSTER [bootstrap.sh flags]"
DESCRIPTION = "Configure containerd and the kubelet from EC2 user data and join the EKS cluster."
EPILOG = f"""\
modes:
  (default)  read the user data (IMDS, or --user-data) and configure the node from it
  legacy     bootstrap.sh compatibility: legacy [options] -- CLUSTER [bootstrap.sh flags]

exit codes:
  {EXIT_OK} configured (or unchanged)    {EXIT_INTERNAL} internal error          {EXIT_USAGE} bad command line
  {EXIT_INVALID} invalid user data/flags    {EXIT_IMDS} IMDS unreachable/incomplete {EXIT_CIS} CIS setting refused
  {EXIT_WRITE} a file could not be written {EXIT_SERVICES} systemctl failed
"""


class Option:
    """One option: its flag, the attribute it sets, what it takes (``flag``: nothing; ``int``; ``str``; a tuple of
    choices), its default, the metavar and the help text."""

    __slots__ = ("default", "dest", "help", "kind", "metavar", "name")

    def __init__(self, name: str, kind: object, default: object, help: str, metavar: str = "") -> None:
        self.name = name
        self.dest = name.lstrip("-").replace("-", "_")
        self.kind = kind
        self.default = default
        self.help = help
        self.metavar = metavar


GROUPS: list[tuple[str, list[Option]]] = [
    (
        "input",
        [
            Option("--user-data", str, None, "read user data from FILE ('-' for stdin) instead of IMDS", "FILE"),
            Option("--imds-endpoint", str, None, "IMDS base URL (env NODEFORGE_IMDS_ENDPOINT)", "URL"),
            Option("--imds-retries", int, 5, "attempts per IMDS request (5)", "N"),
        ],
    ),
    (
        "output",
        [
            Option("--root", str, "/", "write under DIR instead of / (tests, images)", "DIR"),
            Option("--dry-run", "flag", False, "print what would be written (diffs); write nothing"),
            Option("--no-start", "flag", False, "write files (and set up local disks) but start no service"),
            Option("--json", "flag", False, "print the report as JSON"),
        ],
    ),
    (
        "policy",
        [
            Option("--strict", "flag", False, "treat warnings (unknown settings ...) as errors"),
            Option("--cis-mode", ("enforce", "warn"), "enforce", "refuse (default) or allow CIS breaks"),
        ],
    ),
    (
        "node",
        [
            Option("--max-pods", int, None, "use N instead of the computed max-pods", "N"),
            Option(
                "--max-pods-mode",
                ("standard", "calculator"),
                "standard",
                "standard: ENIs x (IPs-1) + 2 as nodeadm; calculator: max-pods-calculator.sh (110/250 ceiling)",
            ),
            Option("--prefix-delegation", "flag", False, "calculator mode: VPC CNI prefix delegation"),
            Option("--custom-networking", "flag", False, "calculator mode: VPC CNI custom networking"),
            Option("--cpus", int, None, "CPUs for kube-reserved (default: the online CPUs)", "N"),
            Option("--kubelet-version", str, None, "kubelet version (default: kubelet --version)", "X.Y"),
            Option(
                "--kubeconfig-auth",
                ("auto", "aws-iam-authenticator", "aws-cli"),
                "auto",
                "kubeconfig credentials: aws-iam-authenticator or 'aws eks get-token' (auto: what is installed)",
            ),
        ],
    ),
]
OPTIONS: dict[str, Option] = {option.name: option for _, group in GROUPS for option in group}


class Options:
    """The parsed options, one attribute per option (``--dry-run`` -> ``dry_run``)."""

    user_data: str | None
    imds_endpoint: str | None
    imds_retries: int
    root: str
    dry_run: bool
    no_start: bool
    json: bool
    strict: bool
    cis_mode: str
    max_pods: int | None
    max_pods_mode: str
    prefix_delegation: bool
    custom_networking: bool
    cpus: int | None
    kubelet_version: str | None
    kubeconfig_auth: str

    def __init__(self) -> None:
        for option in OPTIONS.values():
            setattr(self, option.dest, option.default)


def _usage_error(message: str, err: TextIO) -> SystemExit:
    print(f"{USAGE}\n{PROG}: error: {message}", file=err)
    return SystemExit(EXIT_USAGE)


def help_text() -> str:
    lines = [USAGE, "", DESCRIPTION, "", "options:", "  -h, --help            show this help message and exit"]
    for title, group in GROUPS:
        lines.extend(["", f"{title}:"])
        for option in group:
            if option.kind == "flag":
                left = option.name
            elif isinstance(option.kind, tuple):
                left = f"{option.name} {{{','.join(option.kind)}}}"
            else:
                left = f"{option.name} {option.metavar}"
            lines.append(f"  {left:<22}{option.help}" if len(left) < 22 else f"  {left}\n  {'':<22}{option.help}")
    return "\n".join(lines) + "\n\n" + EPILOG


def parse(argv: list[str], out: TextIO, err: TextIO) -> Options:
    """The options in ``argv``; prints help (SystemExit 0) or a usage error (SystemExit 2) as argparse would."""
    options = Options()
    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg in ("-h", "--help"):
            print(help_text(), end="", file=out)
            raise SystemExit(EXIT_OK)
        name, equals, inline = arg.partition("=")
        option = OPTIONS.get(name)
        if option is None:
            raise _usage_error(f"unrecognized argument: {arg}", err)
        if option.kind == "flag":
            if equals:
                raise _usage_error(f"argument {name}: ignored explicit argument {inline!r}", err)
            setattr(options, option.dest, True)
            continue
        if equals:
            value = inline
        elif index < len(argv) and not (argv[index].startswith("--") and len(argv[index]) > 2):
            value = argv[index]
            index += 1
        else:
            raise _usage_error(f"argument {name}: expected one argument", err)
        if option.kind is int:
            try:
                setattr(options, option.dest, int(value))
            except ValueError:
                raise _usage_error(f"argument {name}: invalid int value: {value!r}", err) from None
        elif isinstance(option.kind, tuple):
            if value not in option.kind:
                choices = ", ".join(repr(choice) for choice in option.kind)
                raise _usage_error(f"argument {name}: invalid choice: {value!r} (choose from {choices})", err)
            setattr(options, option.dest, value)
        else:
            setattr(options, option.dest, value)
    return options
