"""Static reading of shell user data: variable assignments and ``/etc/eks/bootstrap.sh`` calls.

Nothing is executed. Simple assignments (``NAME=value``, ``export NAME=value``) are tracked in order so that
``$NAME``, ``${NAME}``, ``"$NAME"``, ``${NAME:-word}``, ``${NAME-word}``, ``${NAME:+word}`` and ``${NAME+word}`` in the
call expand as bash expands them: an unquoted expansion is split into words (``${X:+--flag "v"}`` gives the two
arguments ``--flag`` and ``v``, or none at all when X is unset or empty), a quoted one is not.

What cannot be known without running the script -- command substitution, positional and special parameters, other
``${...}`` forms, a variable assigned from any of those -- is *unresolved*: the call is refused with its line named
(:class:`BootstrapCall` ``unresolved``), never passed on with an argument missing or garbled. A variable the script
never assigns expands to nothing, as in bash, with a warning (``unset``).
"""

from __future__ import annotations

import re

from nodeforge.bootstrap.record import dataclass, field

_ASSIGNMENT = re.compile(r"^\s*(?:(export|declare\s+-x|readonly|local)\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_EXPORT_NAMES = re.compile(r"^\s*export\s+([A-Za-z_][A-Za-z0-9_ ]*)\s*$")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")
_BOOTSTRAP = re.compile(r"(?:^|[\s;&|(`'\"/])(?:/etc/eks/)?bootstrap\.sh(?=$|[\s;&|)`'\"])")
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-=+?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")
# Other parameter expansions: ${#X}, ${X%p}, ${X/a/b}, ${X[@]}, $@, $1, $? ...
_OTHER_PARAMETER = re.compile(r"\$(?:\{[^}]*\}?|[@*#?!$0-9-])")
_SEPARATORS = ("&&", "||", ";;", ";", "&", "|", "\n")
_WRAPPERS = frozenset(
    {"sudo", "exec", "env", "bash", "sh", "command", "nohup", "time", "eval", "if", "!", "then", "else", "do", "{", "("}
)
_REDIRECT = re.compile(r"(?:&>>?|[<>]{1,2}&?)(\([^)]*\))?")
_ESCAPED_DOLLAR = "\x00"


class ShellSyntaxError(ValueError):
    """The shell text could not be tokenized (unbalanced quotes and the like)."""


class Unresolved(str):
    """A variable's value that static reading cannot know (assigned from command substitution ...): ``reason``."""

    reason = ""

    @classmethod
    def of(cls, text: str, reason: str) -> Unresolved:
        value = cls(text)
        value.reason = reason
        return value


@dataclass
class Word:
    text: str
    unresolved: list[str] = field(default_factory=list)
    unset: list[str] = field(default_factory=list)


@dataclass
class BootstrapCall:
    """One ``bootstrap.sh`` invocation: its arguments (expanded), the exported variables in force, what could not
    be resolved statically (the call must be refused) and the variables the script never set (warnings)."""

    line: int
    args: list[str]
    environment: dict[str, str]
    unresolved: list[str]
    unset: list[str] = field(default_factory=list)


def join_continuations(text: str) -> str:
    return re.sub(r"\\\n", "", text)


class _Expansion:
    """Collects what expansions could not resolve (errors) and the unset variables they met (warnings)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.unresolved: list[str] = []
        self.unset: list[str] = []

    def value(self, name: str, operator: str | None) -> tuple[str | None, bool]:
        """The variable's value (None: unset) and whether the operator's word is used instead of it."""
        value = self.env.get(name)
        if isinstance(value, Unresolved):
            self.unresolved.append(f"${name}: {value.reason}")
        if operator in (":-", ":=", ":?"):
            return value, not value
        if operator in ("-", "=", "?"):
            return value, value is None
        if operator == ":+":
            return value, bool(value)
        if operator == "+":
            return value, value is not None
        if value is None:
            self.unset.append(f"${name} is not set in the script (it expands to nothing)")
        return value, False

    def operand_or_value(self, match: re.Match[str]) -> tuple[str | None, str | None]:
        """(operand text to expand, None) when the operator's word is used, else (None, the value or "")."""
        name = match.group(1) or match.group(4)
        operator, operand = match.group(2), match.group(3)
        value, use_operand = self.value(name, operator)
        if operator in ("?", ":?") and use_operand:
            self.unresolved.append(f"${{{name}{operator}...}}: {name} is not set, so the script would stop here")
            return None, ""
        if use_operand:
            return operand or "", None
        if operator in ("+", ":+"):
            return None, ""
        return None, value or ""

    def quoted(self, text: str) -> str:
        """Expansion inside double quotes: no word splitting."""

        def replace(match: re.Match[str]) -> str:
            operand, value = self.operand_or_value(match)
            return self.quoted(operand) if operand is not None else value or ""

        for other in _OTHER_PARAMETER.finditer(_VAR.sub("", text)):
            self.unresolved.append(f"{other.group(0)!r} cannot be evaluated statically")
        return _VAR.sub(replace, text)

    def unquoted(self, match: re.Match[str]) -> tuple[list[str], bool, bool]:
        """An unquoted expansion as bash splits it: its fields, and whether it starts / ends with a split."""
        operand, value = self.operand_or_value(match)
        if operand is None:
            text = value or ""
            return text.split(), text[:1].isspace(), text[-1:].isspace()
        words = [word for command in tokenize(operand, self.env) for word in command]
        for word in words:
            self.unresolved.extend(word.unresolved)
            self.unset.extend(word.unset)
        return [word.text for word in words], operand[:1].isspace(), operand[-1:].isspace()


def _expand(text: str, env: dict[str, str], unresolved: list[str]) -> str:
    """``text`` expanded as inside double quotes; what cannot be resolved is appended to ``unresolved``."""
    expansion = _Expansion(env)
    result = expansion.quoted(text)
    unresolved.extend(expansion.unresolved)
    return result


def tokenize(text: str, env: dict[str, str] | None = None) -> list[list[Word]]:
    """Split shell text into simple commands of words, expanding variables from ``env`` (None: no expansion)."""
    commands: list[list[Word]] = []
    words: list[Word] = []
    buffer: list[str] = []
    unresolved: list[str] = []
    unset: list[str] = []
    in_word = False
    i = 0
    n = len(text)

    def expand(chunk: str) -> str:
        if env is None:
            return chunk
        expansion = _Expansion(env)
        result = expansion.quoted(chunk)
        unresolved.extend(expansion.unresolved)
        unset.extend(expansion.unset)
        return result

    def finish_word() -> None:
        nonlocal buffer, unresolved, unset, in_word
        if in_word:  # else what was found so far goes with the next word
            words.append(Word("".join(buffer), unresolved, unset))
            buffer, unresolved, unset, in_word = [], [], [], False

    def finish_command() -> None:
        nonlocal words, unresolved, unset
        finish_word()
        if words:
            words[-1].unresolved.extend(unresolved)  # from expansions that produced no word
            words[-1].unset.extend(unset)
            commands.append(words)
        unresolved, unset = [], []
        words = []

    def add_fields(fields: list[str], lead: bool, trail: bool) -> None:
        """An unquoted expansion's fields: the first joins the word being read, the others are words."""
        nonlocal in_word
        if lead or (trail and not fields):
            finish_word()
        for number, text_field in enumerate(fields):
            if number:
                finish_word()
            buffer.append(text_field)
            in_word = True
        if trail and fields:
            finish_word()

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
            other = None if match else _OTHER_PARAMETER.match(text, i)
            if match and env is not None:
                expansion = _Expansion(env)
                fields, lead, trail = expansion.unquoted(match)
                i = match.end()
                if lead:
                    finish_word()
                unresolved.extend(expansion.unresolved)
                unset.extend(expansion.unset)
                add_fields(fields, False, trail)
            elif other is not None and env is not None:
                unresolved.append(f"{other.group(0)!r} cannot be evaluated statically")
                buffer.append(other.group(0))
                in_word = True
                i = other.end()
            else:
                buffer.append(match.group(0) if match else char)
                i = match.end() if match else i + 1
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


def _assigned_value(value: str, env: dict[str, str], line: int) -> str:
    """The value ``NAME=value`` gives NAME (no word splitting in an assignment); Unresolved when it depends on what
    static reading cannot know."""
    words = tokenize(value, env)
    text = " ".join(word.text for word in words[0]) if words else ""
    reasons = [reason for word in (words[0] if words else []) for reason in word.unresolved]
    if reasons:
        return Unresolved.of(text, f"assigned on line {line} from what cannot be read statically ({reasons[0]})")
    return text


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
                variables[name] = _assigned_value(value, variables, number)
            except ShellSyntaxError as exc:
                variables[name] = Unresolved.of(
                    value.strip(), f"its assignment on line {number} cannot be read ({exc})"
                )
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
    unset: list[str] = []
    for word in command[position + 1 :]:
        args.append(word.text)
        unresolved.extend(word.unresolved)
        unset.extend(word.unset)
    environment = {name: variables[name] for name in exported if name in variables}
    environment.update(inline_env)
    for name, value in environment.items():
        if isinstance(value, Unresolved):  # bootstrap.sh reads it from its environment
            unresolved.append(f"exported ${name}: {value.reason}")
    return BootstrapCall(line=number, args=args, environment=environment, unresolved=unresolved, unset=unset)
