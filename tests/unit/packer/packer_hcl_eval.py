"""Resolve the values of a parsed Packer HCL2 template in Python, for one set of variables.

python-hcl2 (``strip_string_quotes=True, explicit_blocks=False``) gives plain dicts whose expressions are
strings such as ``"${local.os_settings[var.os]}"`` or ``"${var.prefix}-${local.build_id}"``. This module
evaluates the part of HCL the nodeforge templates use: literals, templates, references (var, local, path, build,
source_ami_filter for a dynamic block), attribute and index access, function calls (a handful), unary and binary
operators, conditionals, tuples and objects. Anything else raises HclEvalError rather than guessing.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class HclEvalError(ValueError):
    pass


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<string>")
  | (?P<op>==|!=|<=|>=|&&|\|\||=>|[-+*/%<>!?:.,()\[\]{}=])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_-]*)
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


@dataclass
class Token:
    kind: str
    value: Any


def _scan_string(text: str, start: int, *, quoted: bool = True) -> tuple[list[str | tuple[str]], int]:
    """Parse a template from start (after the opening quote when quoted): literal parts and ('expr',) parts."""
    parts: list[str | tuple[str]] = []
    buf: list[str] = []
    i = start
    while i < len(text):
        ch = text[i]
        if ch == '"' and quoted:
            if buf:
                parts.append("".join(buf))
            return parts, i + 1
        if ch == "\\" and i + 1 < len(text):
            buf.append(_ESCAPES.get(text[i + 1], text[i + 1]))
            i += 2
            continue
        if text.startswith("${", i):
            if buf:
                parts.append("".join(buf))
                buf = []
            end = _matching_brace(text, i + 1)
            parts.append((text[i + 2 : end],))
            i = end + 1
            continue
        buf.append(ch)
        i += 1
    if not quoted:
        if buf:
            parts.append("".join(buf))
        return parts, i
    raise HclEvalError(f"unterminated string in {text!r}")


def _matching_brace(text: str, open_at: int) -> int:
    depth = 0
    i = open_at
    while i < len(text):
        ch = text[i]
        if ch == '"':
            _, i = _scan_string(text, i + 1)
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise HclEvalError(f"unbalanced braces in {text!r}")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        match = _TOKEN.match(text, i)
        if not match:
            raise HclEvalError(f"cannot tokenize {text[i:]!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind == "string":
            parts, i = _scan_string(text, match.end())
            tokens.append(Token("string", parts))
            continue
        if kind == "number":
            tokens.append(Token("number", float(match.group()) if "." in match.group() else int(match.group())))
        elif kind in ("op", "ident"):
            tokens.append(Token(kind, match.group()))
        i = match.end()
    tokens.append(Token("end", None))
    return tokens


def _hcl_format(fmt: str, *args: Any) -> str:
    out = []
    values = iter(args)
    i = 0
    while i < len(fmt):
        if fmt[i] == "%" and i + 1 < len(fmt):
            verb = fmt[i + 1]
            if verb == "%":
                out.append("%")
            elif verb in "sdv":
                out.append(_to_string(next(values)))
            else:
                raise HclEvalError(f"format verb %{verb} not supported")
            i += 2
            continue
        out.append(fmt[i])
        i += 1
    return "".join(out)


def _to_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (str, int, float)):
        return str(value)
    raise HclEvalError(f"cannot convert {value!r} to a string")


def _merge(*maps: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for item in maps:
        merged.update(item)
    return merged


FIXED_TIMESTAMP = "2025-01-02T03:04:05Z"


def _formatdate(fmt: str, timestamp: str) -> str:
    match = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z", timestamp)
    if not match:
        raise HclEvalError(f"formatdate: unsupported timestamp {timestamp!r}")
    year, month, day, hour, minute, second = match.groups()
    out = []
    i = 0
    spec = {"YYYY": year, "MM": month, "DD": day, "hh": hour, "mm": minute, "ss": second}
    while i < len(fmt):
        if fmt[i] == "'":
            end = fmt.index("'", i + 1)
            out.append(fmt[i + 1 : end])
            i = end + 1
            continue
        for key, value in spec.items():
            if fmt.startswith(key, i):
                out.append(value)
                i += len(key)
                break
        else:
            out.append(fmt[i])
            i += 1
    return "".join(out)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "format": _hcl_format,
    "merge": _merge,
    "substr": lambda s, offset, length: s[offset:] if length == -1 else s[offset : offset + length],
    "dirname": posixpath.dirname,
    "jsonencode": lambda value: json.dumps(value, separators=(",", ":")),
    "timestamp": lambda: FIXED_TIMESTAMP,
    "formatdate": _formatdate,
    "length": len,
    "lower": str.lower,
    "join": lambda separator, items: separator.join(items),
    "parseint": lambda text, base: int(text, base),
    "contains": lambda items, value: value in items,
    "coalesce": lambda *values: next(v for v in values if v not in ("", None)),
    "lookup": lambda mapping, key, *default: mapping[key] if key in mapping or not default else default[0],
}


@dataclass
class Scope:
    variables: Mapping[str, Any]
    local_exprs: Mapping[str, Any]
    path_root: str = "."
    build: Mapping[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    _locals: dict[str, Any] = field(default_factory=dict)
    _resolving: set[str] = field(default_factory=set)

    def local(self, name: str) -> Any:
        if name in self._locals:
            return self._locals[name]
        if name not in self.local_exprs:
            raise HclEvalError(f"no local named {name!r}")
        if name in self._resolving:
            raise HclEvalError(f"local {name!r} refers to itself")
        self._resolving.add(name)
        try:
            value = resolve(self.local_exprs[name], self)
        finally:
            self._resolving.discard(name)
        self._locals[name] = value
        return value

    def root(self, name: str) -> Any:
        if name == "var":
            return _Namespace("var", self.variables.__getitem__)
        if name == "local":
            return _Namespace("local", self.local)
        if name == "path":
            return {"root": self.path_root}
        if name == "build":
            return self.build
        if name in self.extra:
            return self.extra[name]
        raise HclEvalError(f"unknown reference {name!r}")


class _Namespace:
    def __init__(self, name: str, getter: Callable[[str], Any]) -> None:
        self.name = name
        self.getter = getter

    def get(self, attr: str) -> Any:
        try:
            return self.getter(attr)
        except KeyError:
            raise HclEvalError(f"no {self.name}.{attr}") from None


class _Parser:
    def __init__(self, tokens: list[Token], scope: Scope) -> None:
        self.tokens = tokens
        self.pos = 0
        self.scope = scope

    def peek(self, value: str | None = None, kind: str | None = None) -> bool:
        token = self.tokens[self.pos]
        return (value is None or token.value == value) and (kind is None or token.kind == kind)

    def take(self, value: str | None = None) -> Token:
        token = self.tokens[self.pos]
        if value is not None and token.value != value:
            raise HclEvalError(f"expected {value!r}, found {token.value!r}")
        self.pos += 1
        return token

    # expression := or_expr ('?' expression ':' expression)?
    def expression(self) -> Any:
        condition = self.binary(0)
        if self.peek("?", "op"):
            self.take("?")
            yes = self.expression()
            self.take(":")
            no = self.expression()
            if not isinstance(condition, bool):
                raise HclEvalError(f"condition is not a bool: {condition!r}")
            return yes if condition else no
        return condition

    LEVELS = (("||",), ("&&",), ("==", "!="), ("<", ">", "<=", ">="), ("+", "-"), ("*", "/", "%"))

    def binary(self, level: int) -> Any:
        if level == len(self.LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek(kind="op") and self.tokens[self.pos].value in self.LEVELS[level]:
            op = self.take().value
            right = self.binary(level + 1)
            left = _apply(op, left, right)
        return left

    def unary(self) -> Any:
        if self.peek("!", "op"):
            self.take()
            return not self.unary()
        if self.peek("-", "op"):
            self.take()
            return -self.unary()
        return self.postfix(self.primary())

    def postfix(self, value: Any) -> Any:
        while True:
            if self.peek(".", "op"):
                self.take()
                attr = self.take().value
                value = value.get(attr) if isinstance(value, _Namespace) else _index(value, attr)
            elif self.peek("[", "op"):
                self.take()
                key = self.expression()
                self.take("]")
                value = _index(value, key)
            else:
                return value

    def primary(self) -> Any:
        token = self.take()
        if token.kind == "number":
            return token.value
        if token.kind == "string":
            return _render(token.value, self.scope)
        if token.kind == "op" and token.value == "(":
            value = self.expression()
            self.take(")")
            return value
        if token.kind == "op" and token.value == "[":
            if self.peek("for", "ident"):
                raise HclEvalError("for expressions are not supported")
            items = []
            while not self.peek("]", "op"):
                items.append(self.expression())
                if not self.peek("]", "op"):
                    self.take(",")
            self.take("]")
            return items
        if token.kind == "op" and token.value == "{":
            obj: dict[str, Any] = {}
            while not self.peek("}", "op"):
                key_token = self.tokens[self.pos]
                key = self.take().value if key_token.kind == "ident" else self.expression()
                if self.peek("=", "op") or self.peek(":", "op"):
                    self.take()
                else:
                    raise HclEvalError("expected = or : in object")
                obj[_to_string(key) if not isinstance(key, list) else "".join(map(str, key))] = self.expression()
                if self.peek(",", "op"):
                    self.take()
            self.take("}")
            return obj
        if token.kind == "ident":
            name = token.value
            if name in ("true", "false"):
                return name == "true"
            if name == "null":
                return None
            if self.peek("(", "op"):
                self.take()
                args = []
                while not self.peek(")", "op"):
                    args.append(self.expression())
                    if not self.peek(")", "op"):
                        self.take(",")
                self.take(")")
                if name not in FUNCTIONS:
                    raise HclEvalError(f"function {name}() is not supported by this evaluator")
                return FUNCTIONS[name](*args)
            return self.scope.root(name)
        raise HclEvalError(f"unexpected token {token.value!r}")


def _index(value: Any, key: Any) -> Any:
    if isinstance(value, Mapping):
        if key not in value:
            raise HclEvalError(f"no key {key!r} in {sorted(value)}")
        return value[key]
    if isinstance(value, list) and isinstance(key, int):
        return value[key]
    raise HclEvalError(f"cannot index {value!r} with {key!r}")


def _apply(op: str, left: Any, right: Any) -> Any:
    if op in ("||", "&&"):
        if not isinstance(left, bool) or not isinstance(right, bool):
            raise HclEvalError(f"{op} needs bools")
        return (left or right) if op == "||" else (left and right)
    operations: dict[str, Callable[[Any, Any], Any]] = {
        "==": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        ">": lambda a, b: a > b,
        "<=": lambda a, b: a <= b,
        ">=": lambda a, b: a >= b,
        "+": lambda a, b: a + b,
        "-": lambda a, b: a - b,
        "*": lambda a, b: a * b,
        "/": lambda a, b: a / b,
        "%": lambda a, b: a % b,
    }
    return operations[op](left, right)


def evaluate(expression: str, scope: Scope) -> Any:
    parser = _Parser(tokenize(expression), scope)
    value = parser.expression()
    if not parser.peek(kind="end"):
        raise HclEvalError(f"trailing input in {expression!r}")
    return value


def _render(parts: list[str | tuple[str]], scope: Scope) -> Any:
    if len(parts) == 1 and isinstance(parts[0], tuple):
        return evaluate(parts[0][0], scope)
    return "".join(part if isinstance(part, str) else _to_string(evaluate(part[0], scope)) for part in parts)


def resolve(value: Any, scope: Scope) -> Any:
    """The value of a python-hcl2 node: strings are HCL templates, dicts and lists are resolved item by item."""
    if isinstance(value, str):
        if "${" not in value:
            return value
        parts, _ = _scan_string(value, 0, quoted=False)
        return _render(parts, scope)
    if isinstance(value, list):
        return [resolve(item, scope) for item in value]
    if isinstance(value, dict):
        return {key: resolve(item, scope) for key, item in value.items()}
    return value
