"""Every role rejects bad input before it changes anything.

Roles are discovered from roles/*/meta/argument_specs.yml, so a new role is covered as soon as it has a spec. For each
role the cases are generated from its spec (a wrong type for every bool/int/float/list/dict option, a value outside
every `choices`, a null for a required list or dict, and inside list-of-dict options: an element that is no dict, a
missing required key, a wrong type or choice of every key, an unknown key) plus hand-written semantic cases (HAND).

Two ways of rejecting count, both before any change:
- "spec": Ansible's role argument validation, the task "Validating arguments against arg spec 'main'" that Ansible
  puts first in the role. It must be the task that fails, with a message naming the variable.
- "assert": the role's own `ansible.builtin.assert`, for what a spec cannot say (a version or date format, an
  absolute path, a required value that defaults/main.yml already defines as ""). Only validation, `set_fact`,
  `assert` and includes may run before it, none reporting a change.

Limits of argument specs, on purpose not tested as rejections: unknown (e.g. misspelt) top-level role variables are not
rejected (the UNKNOWN probe asserts they pass, so this file notices if Ansible ever starts rejecting them); a string
given for a list is split on commas and anything given for a str or path is turned into a string; `required` is moot
when defaults/main.yml defines the variable.

One ansible-playbook run covers all roles: localhost, connection local, --check, each case an include_role in a
block/rescue, the include task named after the case. Spec and accept cases include the role with
`apply: {tags: [never]}`, so nothing of the role but its validation task (tagged `always` by Ansible) can run, even if
the spec let the input through. Results are read from the json stdout callback: the task stream per case, and its stats
(the PLAY RECAP: changed=0).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.xdist_group("argument-specs")

REPO = Path(__file__).resolve().parents[2]
ROLES = sorted(p.parents[1].name for p in (REPO / "roles").glob("*/meta/argument_specs.yml"))
MIN_REJECTIONS = 2  # a role with fewer rejecting cases fails (os_packages has one option, a list of str: two)
VALIDATION_TASK = "Validating arguments against arg spec 'main'"
MISSING = "/nonexistent/nodeforge-argspec"  # where artifacts are "fetched" from if a case got past its check
SAFE_ACTIONS = {
    "ansible.builtin.include_role",
    "ansible.builtin.include_tasks",
    "ansible.builtin.validate_argument_spec",
    "ansible.builtin.set_fact",
    "ansible.builtin.assert",
}

# A value of the wrong type per spec type: each one is refused by Ansible's type check (unlike a string for a list,
# which is split on commas, or anything for a str, which is stringified).
WRONG_TYPE: dict[str, Any] = {
    "bool": "maybe",
    "int": "many",
    "float": "many",
    "list": {"not": "a list"},
    "dict": "not-a-dict",
    "bytes": "lots",
}

# Valid inputs per role besides its defaults (roles missing here get none): also the base of every case of the role.
GOOD: dict[str, dict[str, Any]] = {
    "kubelet": {"kubelet_arch": "amd64", "kubelet_artifact_source": MISSING, "kubelet_download_retries": 0},
    "iam_authenticator": {
        "iam_authenticator_kubernetes_release": "1.31.3",
        "iam_authenticator_build_date": "2024-12-12",
        "iam_authenticator_arch": "amd64",
        "iam_authenticator_artifact_source": MISSING,
        "iam_authenticator_download_retries": 0,
    },
    "verified_download": {
        "verified_download_source": MISSING,
        "verified_download_path": "1.31.3/2024-12-12/bin/linux/amd64/kubelet",
        "verified_download_dest": f"{MISSING}-dest/kubelet",
        "verified_download_retries": 0,
    },
    "os_packages": {"os_packages_names": ["curl"]},
}


@dataclass(frozen=True)
class Case:
    role: str
    option: str  # the top-level option the case is about
    what: str
    vars: dict[str, Any]
    expect: str  # "spec" | "assert" | "accept"
    needles: tuple[str, ...] = ()  # must all be in the failure message
    omit: tuple[str, ...] = ()  # GOOD variables left out (back at the role's default)
    origin: str = "generated"

    @property
    def label(self) -> str:
        return f"{self.role}: {self.option}: {self.what}"

    def role_vars(self) -> dict[str, Any]:
        base = {k: v for k, v in GOOD.get(self.role, {}).items() if k not in self.omit}
        return {**base, **self.vars}


def H(role: str, option: str, what: str, value: dict[str, Any], expect: str, *needles: str, **kw: Any) -> Case:
    return Case(role, option, what, value, expect, needles, origin="hand-written", **kw)


# Semantic cases a type check cannot catch. "assert": the role's own early assert rejects it (the spec cannot).
HAND: list[Case] = [
    H("kubelet", "kubelet_kubernetes_version", "full version instead of a minor",
      {"kubelet_kubernetes_version": "v1.31.0"},
      "assert", "kubelet_kubernetes_version must be a Kubernetes minor version", "'v1.31.0'"),
    H("kubelet", "kubelet_kubernetes_version", "unknown minor", {"kubelet_kubernetes_version": "1.99"},
      "assert", "kubelet_kubernetes_version 1.99 is not in kubelet_releases"),
    H("kubelet", "kubelet_kubernetes_version", "unquoted YAML 1.30 (the float 1.3)",
      {"kubelet_kubernetes_version": 1.30},
      "assert", "kubelet_kubernetes_version 1.3 is not in kubelet_releases"),
    H("kubelet", "kubelet_version", "pinned version is a minor",
      {"kubelet_version": "1.31", "kubelet_build_date": "2024-12-12"},
      "assert", "kubelet release 1.31 / 2024-12-12 does not match"),
    H("kubelet", "kubelet_build_date", "build date not YYYY-MM-DD",
      {"kubelet_version": "1.31.3", "kubelet_build_date": "12/12/2024"},
      "assert", "1.31.3 / 12/12/2024", "is malformed"),
    H("iam_authenticator", "iam_authenticator_kubernetes_release", "required, left out (defaults define it as '')",
      {}, "assert", "iam_authenticator_kubernetes_release must be 1.N.P (got '')",
      omit=("iam_authenticator_kubernetes_release",)),
    H("iam_authenticator", "iam_authenticator_build_date", "required, left out (defaults define it as '')",
      {}, "assert", "iam_authenticator_build_date YYYY-MM-DD (got '')",
      omit=("iam_authenticator_build_date",)),
    H("iam_authenticator", "iam_authenticator_kubernetes_release", "a minor instead of 1.N.P",
      {"iam_authenticator_kubernetes_release": "1.31"}, "assert", "must be 1.N.P (got '1.31')"),
    H("iam_authenticator", "iam_authenticator_build_date", "date not YYYY-MM-DD",
      {"iam_authenticator_build_date": "2024/12/12"},
      "assert", "iam_authenticator_build_date YYYY-MM-DD (got '2024/12/12')"),
    H("verified_download", "verified_download_source", "required, left out (defaults define it as '')",
      {}, "assert", "source, path and an absolute dest are required", "source=,",
      omit=("verified_download_source",)),
    H("verified_download", "verified_download_path", "required, left out (defaults define it as '')",
      {}, "assert", "source, path and an absolute dest are required", "path=,",
      omit=("verified_download_path",)),
    H("verified_download", "verified_download_dest", "relative destination",
      {"verified_download_dest": "usr/bin/kubelet"}, "assert", "dest=usr/bin/kubelet"),
    H("verified_download", "verified_download_sha256", "not 64 hex digits",
      {"verified_download_sha256": "abc123"}, "assert", "sha256 must be 64 hex digits", "sha256=abc123"),
    H("os_packages", "os_packages_apt_proxy", "host:port without a scheme",
      {"os_packages_apt_proxy": "127.0.0.1:3142"},
      "assert", "os_packages_apt_proxy must be empty or a proxy URL", "'127.0.0.1:3142'"),
    H("node_base", "node_base_journald_system_max_use", "a size in words (journald wants 1G, 200M)",
      {"node_base_journald_system_max_use": "200 megs"},
      "spec", "'node_base_journald_system_max_use'", "convert to bytes"),
    H("node_base", "node_base_journald_runtime_max_use", "a percentage (journald wants a size)",
      {"node_base_journald_runtime_max_use": "10%"},
      "spec", "'node_base_journald_runtime_max_use'", "convert to bytes"),
    H("target_python", "target_python_min_version", "not 3.N", {"target_python_min_version": "3"},
      "assert", "target_python_min_version must be 3.N (got '3')"),
    H("target_python", "target_python_preferred", "relative interpreter", {"target_python_preferred": "python3"},
      "assert", "target_python_preferred", "(got 'python3')"),
    H("ssm_agent", "ssm_agent_package_path", "not a .deb", {"ssm_agent_package_path": "agent.rpm"},
      "assert", "ssm_agent_package_path must be empty or a .deb (got 'agent.rpm')"),
    H("ssm_agent", "ssm_agent_package_sha256", "not 64 hex digits", {"ssm_agent_package_sha256": "abc"},
      "assert", "ssm_agent_package_sha256 empty or 64 hex digits (got 'abc')"),
]  # fmt: skip


def load_options(role: str) -> dict[str, Any]:
    spec = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return spec["argument_specs"]["main"].get("options") or {}


def good_value(opt: dict[str, Any]) -> Any:
    """A valid value for an option (used to build otherwise-valid list/dict elements)."""
    kind = opt.get("type", "str")
    if kind == "list":
        if opt.get("options"):
            return [good_element(opt["options"])]
        return [opt["choices"][0]] if opt.get("choices") else ["example"]
    if kind == "dict":
        return good_element(opt["options"]) if opt.get("options") else {}
    if opt.get("choices"):
        return opt["choices"][0]
    return {"bool": True, "int": 1, "float": 1.0, "path": "/example", "bytes": "1M"}.get(kind, "example")


def good_element(options: dict[str, Any]) -> dict[str, Any]:
    return {name: good_value(sub) for name, sub in options.items() if sub.get("required")}


def bad_values(name: str, opt: dict[str, Any]) -> Iterator[tuple[str, Any, tuple[str, ...]]]:
    """(what, value, needles) for everything the spec of one option refuses, recursing into sub-options."""
    kind = opt.get("type", "str")
    if kind in WRONG_TYPE:
        yield f"{kind} given {type(WRONG_TYPE[kind]).__name__}", WRONG_TYPE[kind], (f"'{name}'", f"convert to {kind}")
    if opt.get("choices"):
        choices = opt["choices"]
        if kind == "list":
            yield "element outside choices", ["not-a-choice"], (f"value of {name} must be one or more of",)
        elif kind in ("int", "float"):
            yield "outside choices", max(choices) + 1, (f"value of {name} must be one of",)
        else:
            yield "outside choices", "not-a-choice", (f"value of {name} must be one of",)
    if opt.get("required") and kind in ("list", "dict"):
        yield "null", None, (f"'{name}' is of type NoneType",)
    elements = opt.get("elements")
    if kind == "list" and elements in WRONG_TYPE and elements != "list":
        yield f"element not a {elements}", [WRONG_TYPE[elements]], (f"'{name}'", f"convert to {elements}")
    if opt.get("options"):
        good = good_element(opt["options"])

        def wrap(element: dict[str, Any]) -> Any:
            return [element] if kind == "list" else element

        for sub, sub_opt in opt["options"].items():
            if sub_opt.get("required"):
                yield (f"{sub} missing", wrap({k: v for k, v in good.items() if k != sub}),
                       (f"missing required arguments: {sub}",))  # fmt: skip
            for what, value, needles in bad_values(sub, sub_opt):
                yield f"{sub} {what}", wrap({**good, sub: value}), needles
        yield (
            "unknown key",
            wrap({**good, "nodeforge_unknown_key": 1}),
            ("nodeforge_unknown_key. Supported parameters",),
        )


def role_cases(role: str) -> list[Case]:
    options = load_options(role)
    cases = [Case(role, "(good inputs)", "positive control: defaults + GOOD pass", {}, "accept")]
    cases.append(Case(role, f"{role}_nodeforge_unknown", "limitation: unknown variable is not rejected",
                      {f"{role}_nodeforge_unknown": 1}, "accept"))  # fmt: skip
    for name, opt in options.items():
        for what, value, needles in bad_values(name, opt):
            cases.append(Case(role, name, what, {name: value}, "spec", (name, *needles)))
    return cases + [c for c in HAND if c.role == role]


def playbook(cases: list[Case]) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = []
    for index, case in enumerate(cases):
        include: dict[str, Any] = {"name": case.role}
        if case.expect != "assert":
            include["apply"] = {"tags": ["never"]}  # nothing of the role but its validation can run
        tasks.append(
            {
                "block": [
                    {"name": f"argspec-case {index}", "ansible.builtin.include_role": include, "vars": case.role_vars()}
                ],
                "rescue": [{"name": f"argspec-rescued {index}", "ansible.builtin.meta": "noop"}],
            }
        )
    return [{"name": "argument specs", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]


@dataclass
class Run:
    cases: list[Case]
    segments: dict[int, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


# Session scope: under xdist another module's tests may run between this file's, which would redo a module fixture.
@pytest.fixture(scope="session")
def argspec_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    for case in HAND:
        assert case.role in ROLES, f"hand-written case for a role without argument specs: {case.label}"
        assert case.option in load_options(case.role), f"hand-written case for an option not in the spec: {case.label}"
    cases = [case for role in ROLES for case in role_cases(role)]
    tmp = tmp_path_factory.mktemp("argspec")
    play = tmp / "argspec_play.yml"
    play.write_text(json.dumps(playbook(cases), indent=1))
    started = time.monotonic()
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "--check",
            str(play),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-local"),
            "HOME": os.environ.get("HOME", str(tmp)),
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        },
        timeout=300,
        check=False,
    )
    run = Run(cases, seconds=time.monotonic() - started)
    assert proc.returncode == 0, f"ansible-playbook rc={proc.returncode}\n{proc.stderr[-3000:]}\n{proc.stdout[-3000:]}"
    out = json.loads(proc.stdout)
    current = None
    for play_out in out["plays"]:
        for task in play_out["tasks"]:
            name = task["task"]["name"]
            if marker := re.fullmatch(r"argspec-case (\d+)", name):
                current = int(marker.group(1))
                run.segments[current] = []
            elif current is not None:
                run.segments[current] += [(name, result) for result in task["hosts"].values()]
    run.stats = out["stats"]
    return run


def problems_of(role: str, case: Case, segment: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """What is wrong with one case's outcome (empty: as expected)."""
    role_tasks = [i for i, (name, _) in enumerate(segment) if name.startswith(f"{role} : ")]
    failed = [i for i, (_, res) in enumerate(segment) if res.get("failed")]
    if not role_tasks or VALIDATION_TASK not in segment[role_tasks[0]][0]:
        return [f"the role's first task was not its argument validation: {[segment[i][0] for i in role_tasks[:3]]}"]
    if case.expect == "accept":
        if failed:
            name, res = segment[failed[0]]
            return [f"rejected, expected to pass: '{name}': {res.get('msg')}"]
        return []
    if not failed:
        return ["NOT rejected: the role ran to its end"]
    name, res = segment[failed[0]]
    msg = str(res.get("msg", ""))
    issues = []
    if case.expect == "spec":
        if failed[0] != role_tasks[0]:
            issues.append(f"NOT rejected by the argument spec; failed later at '{name}': {msg[:300]}")
    else:
        if res.get("action") != "ansible.builtin.assert":
            issues.append(f"NOT rejected by an assert; failed at '{name}' ({res.get('action')}): {msg[:300]}")
        unsafe = [(n, r.get("action")) for n, r in segment[: failed[0]]
                  if r.get("action") not in SAFE_ACTIONS or r.get("changed")]  # fmt: skip
        if unsafe:
            issues.append(f"tasks that may change the node ran before the assert: {unsafe}")
    missing = [needle for needle in case.needles if needle not in msg]
    if missing:
        issues.append(f"message lacks {missing}: {msg[:400]}")
    return issues


@pytest.mark.parametrize("role", ROLES)
def test_bad_inputs_are_rejected_before_any_change(argspec_run: Run, role: str) -> None:
    indexed = [(i, c) for i, c in enumerate(argspec_run.cases) if c.role == role]
    rejecting = [c for _, c in indexed if c.expect != "accept"]
    assert len(rejecting) >= MIN_REJECTIONS, f"{role}: only {len(rejecting)} bad-input cases; add some to HAND"
    report = []
    for index, case in indexed:
        if index not in argspec_run.segments:
            report.append(f"{case.label}: did not run")
            continue
        report += [f"{case.label}: {issue}" for issue in problems_of(role, case, argspec_run.segments[index])]
    assert not report, "\n".join(report)


def test_the_run_changed_nothing(argspec_run: Run) -> None:
    """The PLAY RECAP (json stats) of the --check run: changed=0, every rejection rescued, nothing else failed."""
    stats = argspec_run.stats["localhost"]
    rejecting = sum(1 for case in argspec_run.cases if case.expect != "accept")
    assert stats["changed"] == 0, stats
    assert stats["failures"] == 0 and stats["unreachable"] == 0, stats
    assert stats["rescued"] == rejecting, stats
    # That each rejection stopped at its checks (no role task after them) is problems_of's, per case: not a time
    # bound, which a loaded machine breaks (20 s alone, 215 s beside the bake's boots).
    print(f"argument-spec run: {len(argspec_run.cases)} cases in {argspec_run.seconds:.0f} s")
