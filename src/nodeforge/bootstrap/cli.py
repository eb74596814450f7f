"""Command line: ``python3 -m nodeforge.bootstrap [options]`` and ``... legacy [options] -- CLUSTER [flags]``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from nodeforge.bootstrap import legacy, metadata, plan, services, writer
from nodeforge.bootstrap.errors import (
    EXIT_CIS,
    EXIT_IMDS,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_SERVICES,
    EXIT_USAGE,
    EXIT_WRITE,
    BootstrapError,
    Diagnostics,
    InvalidInputError,
)
from nodeforge.bootstrap.imds import ImdsClient, resolve_endpoint
from nodeforge.bootstrap.instance import RESOLVED_PATH, SYSTEM_ENVIRONMENT_PATH, service_dropin_path
from nodeforge.bootstrap.kubelet import parse_kubelet_version
from nodeforge.bootstrap.model import NodeSettings, validate
from nodeforge.bootstrap.options import Options, parse
from nodeforge.bootstrap.sysctl import SYSCTL_PATH

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

CHANGES = ("created", "updated", "removed")
# files whose change needs containerd restarted: its configuration and its environment
CONTAINERD_INPUTS = ("/etc/containerd/", SYSTEM_ENVIRONMENT_PATH, service_dropin_path("containerd"))


def _split_argv(argv: list[str]) -> tuple[str, list[str], list[str]]:
    if argv and argv[0] == "legacy":
        rest = argv[1:]
        if "--" in rest:
            index = rest.index("--")
            return "legacy", rest[:index], rest[index + 1 :]
        return "legacy", [], rest
    return "run", argv, []


def _read_user_data(args: Options, client: ImdsClient) -> bytes:
    if args.user_data == "-":
        return sys.stdin.buffer.read()
    if args.user_data:
        try:
            return Path(args.user_data).read_bytes()
        except OSError as exc:
            raise InvalidInputError(f"cannot read --user-data {args.user_data}: {exc.strerror}") from exc
    data = client.user_data()
    if data is None:
        raise InvalidInputError("this instance has no user data: nothing tells the node which cluster to join")
    return data


def _kubelet_version(args: Options, root: Path) -> tuple[int, int] | None:
    if args.kubelet_version:
        return parse_kubelet_version(args.kubelet_version)
    binary = root / "usr/bin/kubelet"
    if root != Path("/") or not binary.exists():
        return None
    import subprocess

    try:
        completed = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_kubelet_version(completed.stdout)


def _settings(
    mode: str,
    args: Options,
    legacy_args: list[str],
    client: ImdsClient,
    root: Path,
    diagnostics: Diagnostics,
) -> NodeSettings:
    read_file = legacy.file_reader(root)
    if mode == "legacy":
        return legacy.settings_from_args(legacy_args, dict(os.environ), diagnostics, read_file)
    from nodeforge.bootstrap import userdata  # user data (and MIME) readers: not for /etc/eks/bootstrap.sh calls

    return userdata.settings_from_user_data(
        _read_user_data(args, client), diagnostics, strict=args.strict, read_file=read_file
    )


def run(argv: list[str], out: TextIO, err: TextIO) -> int:
    diagnostics = Diagnostics()
    try:
        return _run(argv, out, err, diagnostics)
    except BootstrapError:
        for warning in diagnostics.warnings:  # context for the error, printed before it
            print(f"warning: {warning}", file=err)
        raise


def _run(argv: list[str], out: TextIO, err: TextIO, diagnostics: Diagnostics) -> int:
    mode, options, legacy_args = _split_argv(argv)
    args = parse(options, out, err)
    root = Path(args.root).resolve()
    client = ImdsClient(resolve_endpoint(args.imds_endpoint), attempts=max(1, args.imds_retries))

    settings = _settings(mode, args, legacy_args, client, root, diagnostics)
    validate(settings, diagnostics, strict=args.strict)
    diagnostics.raise_if_errors(f"invalid {settings.dialect} configuration; nothing was written")
    family = plan.ip_family(settings)
    instance = metadata.fetch(
        client,
        ip_family=family,
        need_vpc_cidrs=plan.needs_vpc_cidrs(settings),
        need_domain=bool(settings.pause_account or settings.pause_version),
    )
    client.close()  # IMDS is done with: its kept-alive connection is not held while files are written
    options_ = plan.PlanOptions(
        root=root,
        cpus=args.cpus or os.cpu_count() or 1,
        kubelet_version=_kubelet_version(args, root),
        max_pods=args.max_pods,
        max_pods_mode=args.max_pods_mode,
        prefix_delegation=args.prefix_delegation,
        custom_networking=args.custom_networking,
        auth_helper=args.kubeconfig_auth,
        cis_mode=args.cis_mode,
    )
    built = plan.build(settings, instance, options_, diagnostics)
    warnings = list(diagnostics.warnings)
    diagnostics.warnings.clear()
    if args.strict and warnings:
        raise InvalidInputError("--strict: warnings are errors; nothing was written", warnings)
    for warning in warnings:
        print(f"warning: {warning}", file=err)

    outcomes = writer.preview(root, built.files) if args.dry_run else writer.apply(root, built.files)
    changed = {o.path for o in outcomes if o.action in CHANGES}
    started: list[str] = []
    start = not (args.dry_run or args.no_start) and root == Path("/")
    if built.local_disks is not None:
        # also under --no-start (the boot unit's mode: systemd starts containerd and the kubelet after the agent),
        # as nodeadm's run phase sets the disks up before the daemons run
        if not args.dry_run and root == Path("/"):
            started.extend(built.local_disks.apply())
        else:
            warnings.append(
                f"spec.instance.localStorage ({built.local_disks.strategy}): not set up "
                "(--dry-run or --root other than /)"
            )
            print(f"warning: {warnings[-1]}", file=err)
    if start:
        if SYSCTL_PATH in changed:  # before the kubelet starts: protectKernelDefaults checks the kernel's values
            started.extend(_reload_sysctls())
        if RESOLVED_PATH in changed:
            command = ["restart", "systemd-resolved.service"]
            services._run(command)
            started.append(" ".join([services.SYSTEMCTL, *command]))
        started += services.start(
            containerd_changed=any(path.startswith(CONTAINERD_INPUTS) for path in changed),
            kubelet_changed=bool(changed),
        )
    _report(out, args, built, outcomes, started, warnings)
    return EXIT_OK


def _reload_sysctls() -> list[str]:
    """Apply the sysctl.d files now (systemd-sysctl ran before the agent wrote its file); returns the command."""
    command = ["restart", "systemd-sysctl.service"]
    services._run(command)
    return [" ".join([services.SYSTEMCTL, *command])]


def _report(
    out: TextIO,
    args: Options,
    built: plan.Plan,
    outcomes: list[writer.Outcome],
    started: list[str],
    warnings: list[str],
) -> None:
    if args.json:
        import json

        document = {
            "dryRun": args.dry_run,
            "facts": built.facts,
            "files": [{"path": o.path, "action": o.action} for o in outcomes],
            "services": started,
            "warnings": warnings,
        }
        print(json.dumps(document, indent=2), file=out)
        return
    verb = "would be " if args.dry_run else ""
    for outcome in outcomes:
        if outcome.action == "absent":
            continue
        print(f"{verb}{outcome.action}: {outcome.path}", file=out)
        if args.dry_run and outcome.diff:
            print(outcome.diff.rstrip("\n"), file=out)
    for command in started:
        print(f"ran: {command}", file=out)
    facts = built.facts
    changed = sum(o.action in CHANGES for o in outcomes)
    unchanged = sum(o.action == "unchanged" for o in outcomes)
    print(
        f"{facts['dialect']} user data for cluster {facts['cluster']}: {facts['instanceType']}, "
        f"maxPods {facts['maxPods']}, clusterDNS {','.join(facts['clusterDNS'])}; "
        f"{changed} file(s) {'to change' if args.dry_run else 'changed'}, {unchanged} unchanged",
        file=out,
    )


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the agent; returns the exit code (see ``--help``)."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        return run(list(sys.argv[1:] if argv is None else argv), out, err)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except BootstrapError as exc:
        print(exc.render(), file=err)
        return exc.exit_code
    except Exception:
        import traceback

        print("error: internal error in the bootstrap agent", file=err)
        traceback.print_exc(file=err)
        return EXIT_INTERNAL


def entry() -> None:
    """The command's entry point (the role's wrapper, ``python3 -m nodeforge.bootstrap``): :func:`main` with the
    process's arguments, then the process ends with its exit code as soon as the output is flushed. The interpreter's
    teardown (freeing every module and object, a tenth of a run's CPU time) is skipped: it changes nothing here, every
    file is written, fsynced and closed by then and no thread or exit handler is left."""
    code = main()
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:  # None: started with that descriptor closed
                stream.flush()
    except (OSError, ValueError):  # a broken or closed stream: the interpreter's own exit reports it
        sys.exit(code)
    os._exit(code)


__all__ = ["EXIT_CIS", "EXIT_IMDS", "EXIT_SERVICES", "EXIT_WRITE", "entry", "main"]
