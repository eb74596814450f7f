"""Static reading of shell user data: variable assignments and ``/etc/eks/bootstrap.sh`` calls.

Nothing is executed. Simple assignments (``NAME=value``, ``export NAME=value``) are tracked in order so that
``$NAME``, ``${NAME}``, ``"$NAME"`` and ``${NAME:-default}`` in the call expand as the shell would expand them.
Command substitution cannot be evaluated statically and is reported.
"""

from __future__ import annotations

import re

from nodeforge.bootstrap.record import dataclass, field

_ASSIGNMENT = re.compile(r"^\s*(?:(export|declare\s+-x|readonly|local)\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_EXPORT_NAMES = re.compile(r"^\s*export\s+([A-Za-z_][A-Za-z0-9_ ]*)\s*$")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")
_BOOTSTRAP = re.compile(r"(?:^|[\s;&|(`'\"/])(?:/etc/eks/)?bootstrap\.sh(?=$|[\s;&|)`'\"])")
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-=+?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")
_SEPARATORS = ("&&", "||", ";;", ";", "&", "|", "\n")
_WRAPPERS = frozenset(
    {"sudo", "exec", "env", "bash", "sh", "command", "nohup", "time", "eval", "if", "!", "then", "else", "do", "{", "("}
)
_REDIRECT = re.compile(r"(?:&>>?|[<>]{1,2}&?)(\([^)]*\))?")
_ESCAPED_DOLLAR = "\x00"


class ShellSyntaxError(ValueError):
    """The shell text could not be tokenized (unbalanced quotes and the like)."""


@dataclass
class Word:
    text: str
    unresolved: list[str] = field(default_factory=list)


@dataclass
class BootstrapCall:
    """One ``bootstrap.sh`` invocation: its arguments (expanded) and the exported variables in force."""

    line: int
    args: list[str]
    environment: dict[str, str]
    unresolved: list[str]


def join_continuations(text: str) -> str:
    return re.sub(r"\\\n", "", text)


def _expand(text: str, env: dict[str, str], unresolved: list[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(4)
        operator, operand = match.group(2), match.group(3)
        value = env.get(name)
        if operator in (":-", ":=") and not value:
            return _expand(operand or "", env, unresolved)
        if operator in ("-", "=") and value is None:
            return _expand(operand or "", env, unresolved)
        if operator in (":+", "+"):
            return _expand(operand or "", env, unresolved) if value else ""
        if value is None:
            unresolved.append(f"${name} is not set in the script")
            return ""
        return value

    return _VAR.sub(replace, text)


def tokenize(text: str, env: dict[str, str] | None = None) -> list[list[Word]]:
    """Split shell text into simple commands of words, expanding variables from ``env`` (None: no expansion)."""
    commands: list[list[Word]] = []
    words: list[Word] = []
    buffer: list[str] = []
    unresolved: list[str] = []
    in_word = False
    i = 0
    n = len(text)

    def expand(chunk: str) -> str:
        return chunk if env is None else _expand(chunk, env, unresolved)

    def finish_word() -> None:
        nonlocal buffer, unresolved, in_word
        if in_word:
            words.append(Word("".join(buffer), unresolved))
        buffer, unresolved, in_word = [], [], False

    def finish_command() -> None:
        nonlocal words
        finish_word()
        if words:
            commands.append(words)
        words = []

    while i < n:
        char = text[i]
        if char == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise ShellSyntaxError("unterminated single quote")
            buffer.append(text[i + 1 : end])
            in_word = True
            i = end + 1
        elif char == '"':
            i += 1
            chunk: list[str] = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n and text[i + 1] in '"\\$`\n':
                    chunk.append(text[i + 1] if text[i + 1] != "$" else _ESCAPED_DOLLAR)
                    i += 2
                    continue
                if text[i] == "`" or text.startswith("$(", i):
                    unresolved.append("command substitution cannot be evaluated statically")
                chunk.append(text[i])
                i += 1
            if i >= n:
                raise ShellSyntaxError("unterminated double quote")
            buffer.append(expand("".join(chunk)).replace(_ESCAPED_DOLLAR, "$"))
            in_word = True
            i += 1
        elif char == "\\" and i + 1 < n:
            buffer.append(text[i + 1])
            in_word = True
            i += 2
        elif char == "#" and not in_word:
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif char in " \t":
            finish_word()
            i += 1
        elif char in "<>" or text.startswith("&>", i):
            if buffer and "".join(buffer).isdigit():
                buffer, in_word = [], False  # a file descriptor number such as the 2 of 2>&1
            finish_word()
            match = _REDIRECT.match(text, i)
            i = match.end() if match else i + 1
            while i < n and text[i] in " \t":
                i += 1
            while i < n and text[i] not in " \t\n;&|":
                i += 1  # the redirection target is not an argument
        elif char in "&|;\n" and any(text.startswith(sep, i) for sep in _SEPARATORS):
            finish_command()
            i += next(len(sep) for sep in _SEPARATORS if text.startswith(sep, i))
        elif (char == "$" and text.startswith("$(", i)) or char == "`":
            unresolved.append("command substitution cannot be evaluated statically")
            buffer.append(char)
            in_word = True
            i += 1
        elif char == "$":
            match = _VAR.match(text, i)
            if match:
                buffer.append(expand(match.group(0)))
                i = match.end()
            else:
                buffer.append(char)
                i += 1
            in_word = True
        else:
            buffer.append(char)
            in_word = True
            i += 1
    finish_command()
    return commands


def unquote_flag(flag: str) -> str:
    """A flag with shell quoting removed (``--node-labels="a=b"`` -> ``--node-labels=a=b``), as systemd's
    EnvironmentFile parsing removes it for nodeadm; returned unchanged when it is not one shell word."""
    try:
        commands = tokenize(flag, None)
    except ShellSyntaxError:
        return flag
    if len(commands) == 1 and len(commands[0]) == 1:
        return commands[0][0].text
    return flag


def _strip_quotes(value: str, env: dict[str, str]) -> str:
    words = tokenize(value, env)
    return " ".join(word.text for word in words[0]) if words else ""


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with continuations joined and heredoc bodies dropped, each with its first line number."""
    raw = text.split("\n")
    lines: list[tuple[int, str]] = []
    i = 0
    while i < len(raw):
        start = i
        line = raw[i]
        while line.endswith("\\") and i + 1 < len(raw):
            i += 1
            line = line[:-1] + raw[i]
        lines.append((start + 1, line))
        heredoc = _HEREDOC.search(line)
        i += 1
        if heredoc:
            delimiter = heredoc.group(2)
            while i < len(raw) and raw[i].strip() != delimiter:
                i += 1
            i += 1
    return lines


def find_bootstrap_calls(text: str) -> list[BootstrapCall]:
    """Every ``bootstrap.sh`` command in the script, with its arguments expanded from earlier assignments."""
    variables: dict[str, str] = {}
    exported: set[str] = set()
    calls: list[BootstrapCall] = []
    allexport = False
    for number, line in _logical_lines(text):
        if re.match(r"^\s*set\s+(-a\b|-o\s+allexport)", line):
            allexport = True
        elif re.match(r"^\s*set\s+(\+a\b|\+o\s+allexport)", line):
            allexport = False
        assignment = _ASSIGNMENT.match(line)
        if assignment and not _BOOTSTRAP.search(line):
            keyword, name, value = assignment.groups()
            try:
                variables[name] = _strip_quotes(value, variables)
            except ShellSyntaxError:
                variables[name] = value.strip()
            if allexport or (keyword and "local" not in keyword):
                exported.add(name)
            continue
        exports = _EXPORT_NAMES.match(line)
        if exports:
            exported.update(exports.group(1).split())
            continue
        if not _BOOTSTRAP.search(line):
            continue
        for command in tokenize(line, variables):
            call = _as_bootstrap_call(command, number, variables, exported)
            if call is not None:
                calls.append(call)
    return calls


def _as_bootstrap_call(
    command: list[Word], number: int, variables: dict[str, str], exported: set[str]
) -> BootstrapCall | None:
    position = 0
    inline_env: dict[str, str] = {}
    while position < len(command):
        text = command[position].text
        if text in _WRAPPERS or (text.startswith("-") and position and command[position - 1].text in _WRAPPERS):
            position += 1
        elif re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", text):
            name, _, value = text.partition("=")
            inline_env[name] = value
            position += 1
        else:
            break
    if position >= len(command):
        return None
    head = command[position].text
    if not head.endswith("bootstrap.sh"):
        if _BOOTSTRAP.search(head) and (" " in head or "\n" in head):  # bash -c "/etc/eks/bootstrap.sh ..."
            for inner in tokenize(head, None):
                call = _as_bootstrap_call(inner, number, variables, exported)
                if call is not None:
                    return call
        return None
    args: list[str] = []
    unresolved: list[str] = []
    for word in command[position + 1 :]:
        args.append(word.text)
        unresolved.extend(word.unresolved)
    environment = {name: variables[name] for name in exported if name in variables}
    environment.update(inline_env)
    return BootstrapCall(line=number, args=args, environment=environment, unresolved=unresolved)
