"""The checked-in stubs python/fastnn/_C.pyi and _cuda.pyi (what type checkers and editors read
for the extension modules) against the modules themselves: the same names, and for every
function and method the same parameters, by name, kind and default. A binding added, removed
or changed without a rerun of tools/gen_stubs.py fails here. _cuda's half needs a build with
the CUDA module (compiled where nvcc is; no GPU needed) and skips otherwise."""

import ast
import importlib
import pathlib
import re

import pytest

import fastnn
from test_binding_signatures import _cuda_module  # the compiled fastnn._cuda, or a skip

PACKAGE = pathlib.Path(fastnn.__file__).parent


def _module(name):
    return _cuda_module() if name == "_cuda" else importlib.import_module(f"fastnn.{name}")


def _stub(name):
    return ast.parse((PACKAGE / f"{name}.pyi").read_text())


def _public(names):
    return {n for n in names if not n.startswith("_")}


def _stub_names(body):
    """Names a stub body defines: functions, classes, annotated attributes (not __all__)."""
    names = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return _public(names)


def _stub_params(fn):
    """[(name, kind, default text)] of a stub function, self included."""
    a = fn.args
    params = [(p.arg, "positional", None) for p in a.posonlyargs + a.args]
    for i, d in enumerate(reversed(a.defaults)):
        name, kind, _ = params[-1 - i]
        params[-1 - i] = (name, kind, ast.unparse(d))
    if a.vararg:
        params.append((a.vararg.arg, "*", None))
    params += [(p.arg, "keyword", None if d is None else ast.unparse(d))
               for p, d in zip(a.kwonlyargs, a.kw_defaults)]
    if a.kwarg:
        params.append((a.kwarg.arg, "**", None))
    return params


def _doc_params(obj, name):
    """The same list, read from the pybind11 signature at the top of obj's docstring (the
    signature is valid Python once `-> R` is cut: parse it as a def)."""
    doc = obj.__doc__ or ""
    match = re.search(rf"^{re.escape(name)}(\(.*\)) -> ", doc, re.MULTILINE)
    assert match, f"{name}: no pybind11 signature in its docstring: {doc[:200]!r}"
    return _stub_params(ast.parse(f"def {name}{match.group(1)}: ...").body[0])


def _compare(mod, body, where):
    """Differences between a stub body and the module or class it describes."""
    problems = []
    actual = _public(dir(mod))
    if isinstance(mod, type):  # a class: its own members, not object's
        actual = _public(n for n in actual if n in vars(mod))
    stubbed = _stub_names(body)
    if actual != stubbed:
        problems.append(f"{where}: not in the stub {sorted(actual - stubbed)}, "
                        f"in the stub only {sorted(stubbed - actual)}")
    for node in body:
        if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) or not hasattr(mod, node.name):
            continue
        member = getattr(mod, node.name)
        if isinstance(node, ast.ClassDef):
            problems += _compare(member, node.body, f"{where}.{node.name}")
        elif not any(isinstance(d, ast.Name) and d.id == "property" or
                     isinstance(d, ast.Attribute) for d in node.decorator_list):
            stub, doc = _stub_params(node), _doc_params(member, node.name)
            if stub != doc:
                problems.append(f"{where}.{node.name}: stub {stub} != module {doc}")
    return problems


@pytest.mark.parametrize("name", ["_C", "_cuda"])
def test_stub_matches_the_extension_module(name):
    mod = _module(name)
    problems = _compare(mod, _stub(name).body, f"fastnn.{name}")
    assert not problems, ("the stub is out of date (rerun tools/gen_stubs.py):\n"
                          + "\n".join(problems))


def test_the_comparison_sees_a_changed_parameter():
    # The checker itself, on a stub that renamed one argument and dropped one function.
    body = _stub("_C").body
    gemm = next(n for n in body if isinstance(n, ast.FunctionDef) and n.name == "gemm")
    gemm.args.args[0].arg = "left"
    body = [n for n in body if not (isinstance(n, ast.FunctionDef) and n.name == "mse")]
    problems = " ".join(_compare(_module("_C"), body, "fastnn._C"))
    assert "not in the stub ['mse']" in problems
    assert "fastnn._C.gemm: stub [('left'" in problems


def test_the_package_declares_its_types():
    # PEP 561: type checkers read a package's annotations only when it ships py.typed.
    assert (PACKAGE / "py.typed").is_file()
