"""Integer subset of CEL for nodeadm's ``maxPodsExpression``.

Supports integer literals, the variables ``default_enis``, ``ips_per_eni`` and ``max_pods``, ``+ - * / %``,
unary minus, parentheses, comparisons, ``&&``, ``||``, ``!`` and the ``cond ? a : b`` conditional.
Anything else raises ValueError (nodeadm then falls back to the standard value).
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\s*(?:(\d+)|([A-Za-z_][A-Za-z0-9_]*)|(==|!=|<=|>=|&&|\|\||[-+*/%()<>?:!]))")
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Union

    Value = Union[int, bool]


class _Parser:
    def __init__(self, text: str, variables: dict[str, int]) -> None:
        self.tokens = self._lex(text)
        self.position = 0
        self.variables = variables

    @staticmethod
    def _lex(text: str) -> list[str]:
        tokens, index = [], 0
        while index < len(text):
            if text[index:].strip() == "":
                break
            match = _TOKEN.match(text, index)
            if not match:
                raise ValueError(f"unexpected character {text[index:].strip()[:1]!r} in {text!r}")
            tokens.append(match.group(match.lastindex or 0))
            index = match.end()
        return tokens

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise ValueError(f"expected {expected or 'a value'}, found {token or 'end of expression'}")
        self.position += 1
        return token

    def parse(self) -> Value:
        value = self.conditional()
        if self.peek() is not None:
            raise ValueError(f"unexpected {self.peek()!r}")
        return value

    def conditional(self) -> Value:
        condition = self.disjunction()
        if self.peek() != "?":
            return condition
        self.take("?")
        if_true = self.conditional()
        self.take(":")
        if_false = self.conditional()
        return if_true if _as_bool(condition) else if_false

    def disjunction(self) -> Value:
        value = self.conjunction()
        while self.peek() == "||":
            self.take()
            right = self.conjunction()
            value = _as_bool(value) or _as_bool(right)
        return value

    def conjunction(self) -> Value:
        value = self.comparison()
        while self.peek() == "&&":
            self.take()
            right = self.comparison()
            value = _as_bool(value) and _as_bool(right)
        return value

    def comparison(self) -> Value:
        value = self.sum()
        while self.peek() in ("==", "!=", "<", "<=", ">", ">="):
            operator = self.take()
            right = self.sum()
            value = {
                "==": value == right,
                "!=": value != right,
                "<": _as_int(value) < _as_int(right),
                "<=": _as_int(value) <= _as_int(right),
                ">": _as_int(value) > _as_int(right),
                ">=": _as_int(value) >= _as_int(right),
            }[operator]
        return value

    def sum(self) -> Value:
        value = self.product()
        while self.peek() in ("+", "-"):
            operator = self.take()
            right = _as_int(self.product())
            value = _as_int(value) + right if operator == "+" else _as_int(value) - right
        return value

    def product(self) -> Value:
        value = self.unary()
        while self.peek() in ("*", "/", "%"):
            operator = self.take()
            left, right = _as_int(value), _as_int(self.unary())
            if operator != "*" and right == 0:
                raise ValueError("division by zero")
            if operator == "*":
                value = left * right
            else:  # CEL integer division and modulo truncate toward zero
                quotient = abs(left) // abs(right) * (1 if (left >= 0) == (right >= 0) else -1)
                value = quotient if operator == "/" else left - quotient * right
        return value

    def unary(self) -> Value:
        if self.peek() == "-":
            self.take()
            return -_as_int(self.unary())
        if self.peek() == "!":
            self.take()
            return not _as_bool(self.unary())
        return self.atom()

    def atom(self) -> Value:
        symbol = self.take()
        if symbol == "(":
            value = self.conditional()
            self.take(")")
            return value
        if symbol.isdigit():
            return int(symbol)
        if symbol in ("true", "false"):
            return symbol == "true"
        if symbol in self.variables:
            return self.variables[symbol]
        raise ValueError(f"unknown identifier {symbol!r}")


def _as_int(value: Value) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer, found a boolean")
    return value


def _as_bool(value: Value) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected a boolean, found an integer")
    return value


def evaluate(expression: str, variables: dict[str, int]) -> int:
    """Evaluate ``expression`` to a positive integer."""
    value = _Parser(expression, variables).parse()
    result = _as_int(value)
    if result <= 0 or result > 2**31 - 1:
        raise ValueError(f"max pods value {result} is not a positive 32-bit integer")
    return result
