"""The deployable zip, unpacked into an empty folder, imports every handler on a clean
interpreter of the Lambda's own python (template.yaml's runtime): nothing it needs comes
from this machine's site-packages, and every compiled module is built for that python."""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

import pytest

from tests.e2e import lambda_runtime
from tests.e2e.lambda_runtime import ROOT

PACKAGE = ROOT / "dist" / "streaming-file-builder.zip"
SERVICE_PACKAGES = ("domain", "application", "adapters", "entrypoints")
TOOLS = ROOT / "tests" / "tools"
TOOLING_MODULES = {path.stem for path in TOOLS.glob("*.py") if path.stem != "__init__"}
TOOLING_MODULES.add("local_receiver")
"""The modules of tests/tools/, and the name the receiver once shipped under in entrypoints/."""


@pytest.fixture
def unpacked(tmp_path: Path) -> Path:
    if not PACKAGE.exists():
        pytest.fail(f"{PACKAGE.name} is missing: `make package` builds it (`make test` does)")
    target = tmp_path / "lambda"
    with zipfile.ZipFile(PACKAGE) as archive:
        archive.extractall(target)
    return target


def compiled_modules(names: list[str]) -> list[PurePosixPath]:
    """The extension modules among a zip's names; a wheel's vendored shared libraries (in a
    `<name>.libs` folder) are no Python modules and carry no ABI tag."""
    paths = [PurePosixPath(name) for name in names]
    return [
        path
        for path in paths
        if path.suffix == ".so" and not any(part.endswith(".libs") for part in path.parts)
    ]


def tooling_entries(names: list[str]) -> list[str]:
    """The zip's entries that are test tooling: a top-level `tests` package, or a module of
    the service's own packages named like one of tests/tools/ (a dependency may well ship a
    module called `receiver`; ours may not)."""
    paths = [PurePosixPath(name) for name in names]
    return [
        str(path)
        for path in paths
        if path.parts[0] == "tests"
        or (path.parts[0] in SERVICE_PACKAGES and path.stem in TOOLING_MODULES)
    ]


def test_the_template_names_the_lambda_runtime_once_in_its_globals() -> None:
    template = lambda_runtime.template()

    assert lambda_runtime.runtime().startswith("python")
    for function in lambda_runtime.functions():
        properties = template["Resources"][function.logical_id]["Properties"]
        assert "Runtime" not in properties, f"{function.logical_id} names its own runtime"


def test_the_package_holds_the_service_and_its_dependencies_but_no_tests_or_dev_tools(
    unpacked: Path,
) -> None:
    top = {path.name for path in unpacked.iterdir()}

    assert {"domain", "application", "adapters", "entrypoints"} <= top
    assert {"boto3", "requests", "jsonschema", "dependency_injector", "orjson"} <= top
    assert not top & {"tests", "moto", "pytest", "mypy", "ruff", "hypothesis", "bench"}
    assert not top & {"samcli", "uv", "cfnlint", "pip", "setuptools", "bin"}
    assert (unpacked / "adapters" / "schemas" / "chunk.schema.json").is_file()


def test_the_package_holds_no_test_tooling_the_lambda_never_runs() -> None:
    if not PACKAGE.exists():
        pytest.fail(f"{PACKAGE.name} is missing: `make package` builds it (`make test` does)")
    with zipfile.ZipFile(PACKAGE) as archive:
        names = archive.namelist()

    assert {"receiver", "shard_driver", "sequencer"} <= TOOLING_MODULES
    assert not tooling_entries(names), f"test tooling in the package: {tooling_entries(names)}"


def test_every_compiled_module_in_the_package_is_built_for_the_template_runtime() -> None:
    if not PACKAGE.exists():
        pytest.fail(f"{PACKAGE.name} is missing: `make package` builds it (`make test` does)")
    with zipfile.ZipFile(PACKAGE) as archive:
        modules = compiled_modules(archive.namelist())
    tags = (f".{lambda_runtime.abi_tag()}.so", ".abi3.so")

    assert {path.parts[0] for path in modules} >= {"orjson", "pybase64", "rpds"}
    foreign = [str(path) for path in modules if not path.name.endswith(tags)]
    assert not foreign, f"built for another python than {lambda_runtime.runtime()}: {foreign}"


def test_every_handler_imports_on_a_clean_interpreter_of_the_runtime_from_the_unpacked_package(
    unpacked: Path,
) -> None:
    functions = lambda_runtime.functions()

    done = lambda_runtime.import_handlers(unpacked, [f.handler for f in functions])

    assert done.returncode == 0, done.stderr
    version, *modules = done.stdout.splitlines()
    assert version.split() == [str(part) for part in lambda_runtime.python_version()]
    assert modules[0] == "entrypoints.lambda_handler"
    assert modules == [f.handler.rpartition(".")[0] for f in functions]
