"""The Lambda's python as template.yaml names it, and a way to import built Lambda code with
an interpreter of that version, the way the Lambda runtime would.

template.yaml names the runtime once, in `Globals: Function: Runtime: pythonX.Y`; the
Makefile builds for the version on that line, and these helpers read the same Globals.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
_PYTHON_RUNTIME = re.compile(r"python(\d+)\.(\d+)")
# The compiled modules the service imports, one for each dependency that ships one.
COMPILED_IMPORTS = ("orjson", "pybase64", "rpds", "dependency_injector.containers")


@dataclass(frozen=True)
class LambdaFunction:
    logical_id: str
    handler: str


@functools.cache
def template() -> dict[str, Any]:
    loaded, problems = decode(str(TEMPLATE))
    assert not problems, problems
    return dict(loaded)


def runtime() -> str:
    """The runtime every function runs on: `pythonX.Y`, from the template's Globals."""
    name = template()["Globals"]["Function"]["Runtime"]
    assert isinstance(name, str)
    return name


def python_version() -> tuple[int, int]:
    match = _PYTHON_RUNTIME.fullmatch(runtime())
    assert match, f"not a python runtime: {runtime()}"
    return int(match[1]), int(match[2])


def abi_tag() -> str:
    """The file-name tag of an extension module built for the runtime's CPython on x86_64."""
    major, minor = python_version()
    return f"cpython-{major}{minor}-x86_64-linux-gnu"


def functions() -> list[LambdaFunction]:
    """Every AWS::Serverless::Function of the template, with its handler."""
    return [
        LambdaFunction(logical_id=str(name), handler=str(resource["Properties"]["Handler"]))
        for name, resource in template()["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    ]


def _runs_as(candidate: str, version: tuple[int, int]) -> bool:
    """True when `candidate` starts and is that python (a pyenv shim may exist and fail)."""
    try:
        done = subprocess.run(
            [candidate, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except OSError:
        return False
    return done.returncode == 0 and done.stdout.split() == [str(part) for part in version]


def _candidates(version: tuple[int, int]) -> list[str]:
    name = "python{}.{}".format(*version)
    found = [path for path in [shutil.which(name)] if path]
    if sys.version_info[:2] == version:
        found.insert(0, getattr(sys, "_base_executable", sys.executable))
    pyenv = shutil.which("pyenv")
    if pyenv:
        prefix = subprocess.run(
            [pyenv, "prefix", "{}.{}".format(*version)],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if prefix.returncode == 0:
            found += [os.path.join(line, "bin", name) for line in prefix.stdout.split()]
    return found


@functools.cache
def interpreter() -> str | None:
    """A python of the runtime's version on this machine: on PATH, this very interpreter,
    or a pyenv version; None when there is none."""
    version = python_version()
    return next((path for path in _candidates(version) if _runs_as(path, version)), None)


def require_interpreter() -> str:
    found = interpreter()
    if found is None:
        pytest.skip(
            f"no {runtime()} on this machine (PATH or pyenv): the import under the Lambda's "
            "own python is not checked here"
        )
    return found


def import_handlers(code: Path, handlers: list[str]) -> subprocess.CompletedProcess[str]:
    """Imports each handler (and the compiled dependencies) from the folder `code` alone, in
    a fresh isolated interpreter of the runtime's version with no site-packages; prints
    the python version, then each handler's module."""
    probe = (
        "import importlib, sys; sys.path.insert(0, sys.argv[1]); "
        "assert all(not p.endswith('site-packages') for p in sys.path), sys.path; "
        "[importlib.import_module(m) for m in sys.argv[2].split()]; "
        "print(*sys.version_info[:2]); "
        "[print(getattr(importlib.import_module(m), f).__module__) "
        "for m, _, f in (h.rpartition('.') for h in sys.argv[3:])]"
    )
    command = [require_interpreter(), "-I", "-S", "-c", probe, str(code)]
    return subprocess.run(
        [*command, " ".join(COMPILED_IMPORTS), *handlers],
        capture_output=True,
        text=True,
        check=False,
        cwd=code,
        env={"PATH": "/usr/bin:/bin"},
        timeout=120,
    )
