"""The deployable zip, unpacked into an empty folder, imports the handler on a clean
interpreter: nothing it needs comes from this machine's site-packages."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "dist" / "streaming-file-builder.zip"


@pytest.fixture
def unpacked(tmp_path: Path) -> Path:
    if not PACKAGE.exists():
        pytest.fail(f"{PACKAGE.name} is missing: `make package` builds it (`make test` does)")
    target = tmp_path / "lambda"
    with zipfile.ZipFile(PACKAGE) as archive:
        archive.extractall(target)
    return target


def test_the_package_holds_the_service_and_its_dependencies_but_no_tests_or_dev_tools(
    unpacked: Path,
) -> None:
    top = {path.name for path in unpacked.iterdir()}

    assert {"domain", "application", "adapters", "entrypoints"} <= top
    assert {"boto3", "requests", "jsonschema", "dependency_injector", "orjson"} <= top
    assert not top & {"tests", "moto", "pytest", "mypy", "ruff", "hypothesis", "bench"}
    assert (unpacked / "adapters" / "schemas" / "chunk.schema.json").is_file()


def test_the_handler_imports_on_a_clean_interpreter_from_the_unpacked_package(
    unpacked: Path,
) -> None:
    interpreter = getattr(sys, "_base_executable", sys.executable)
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "import entrypoints.lambda_handler as h, orjson, pybase64; "
        "assert all(not p.endswith('site-packages') for p in sys.path), sys.path; "
        "print(h.handler.__module__)"
    )

    done = subprocess.run(
        [interpreter, "-I", "-S", "-c", probe, str(unpacked)],
        capture_output=True,
        text=True,
        check=False,
        cwd=unpacked,
        env={"PATH": "/usr/bin:/bin"},
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "entrypoints.lambda_handler"
