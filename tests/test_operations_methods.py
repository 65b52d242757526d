"""One source for the twelve operations: each method is exactly the one-line call of its row.

The methods stay hand-written (a reader sees a real signature with types and a docstring, and
the sync facade is generated from them); this test makes the operations table their single
source of truth: a method that sends another operation, drops or renames a body field, or
forgets a per-call option fails here.
"""

from __future__ import annotations

import ast
import inspect
import textwrap

import pytest

from clerk_sessions import AsyncClerkSessions
from clerk_sessions import _operations as ops
from clerk_sessions._operations import OPERATIONS, Operation

PER_CALL_OPTIONS = ("timeout", "max_retries", "extra_headers")


def the_call(op: Operation[object]) -> ast.Call:
    """The ``self._call(...)`` the method returns, its only statement besides the docstring."""
    source = textwrap.dedent(inspect.getsource(getattr(AsyncClerkSessions, op.name)))
    function = ast.parse(source).body[0]
    assert isinstance(function, ast.AsyncFunctionDef)
    body = function.body
    if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    assert len(body) == 1, f"{op.name} must be one call of its row"
    statement = body[0]
    assert isinstance(statement, ast.Return)
    assert isinstance(statement.value, ast.Await)
    call = statement.value.value
    assert isinstance(call, ast.Call)
    assert ast.unparse(call.func) == "self._call"
    return call


def passed_through(node: ast.expr) -> dict[str, str]:
    """``{"field": field, ...}`` → {field: parameter}: every value must be a plain name."""
    assert isinstance(node, ast.Dict)
    out = {}
    for key, value in zip(node.keys, node.values, strict=True):
        assert isinstance(key, ast.Constant)
        assert isinstance(value, ast.Name), ast.unparse(value)
        out[key.value] = value.id
    return out


@pytest.mark.parametrize("op", OPERATIONS.values(), ids=lambda op: op.name)
def test_each_method_is_the_one_line_call_of_its_row(op: Operation[object]) -> None:
    call = the_call(op)
    row, *mappings = call.args
    assert isinstance(row, ast.Attribute)
    assert getattr(ops, row.attr) is op  # the method sends its own row
    path = passed_through(mappings[0]) if not isinstance(mappings[0], ast.Name) else {}
    assert path == {name: name for name in op.path_params}
    body = passed_through(mappings[1]) if len(mappings) > 1 else {}
    assert body == {name: name for name in op.body}  # every spec field, under its own name
    headers = passed_through(mappings[2]) if len(mappings) > 2 else {}
    assert headers == {name: name for name in op.headers}
    keywords = {k.arg: ast.unparse(k.value) for k in call.keywords}
    assert keywords == {name: name for name in PER_CALL_OPTIONS}
