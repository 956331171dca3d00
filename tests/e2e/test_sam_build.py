"""`sam build` makes, for every function of template.yaml, the same code folder as
`make package`: it runs the Makefile's build-<LogicalId> target in this folder, which installs
from the wheelhouse `make package` filled. No Docker, no AWS account and no network: SAM's
telemetry and update check are off, every HTTP client is pointed at a closed local port and
pip may not use an index."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.e2e import lambda_runtime
from tests.e2e.lambda_runtime import ROOT

SAM = Path(sys.prefix) / "bin" / "sam"
PACKAGE = ROOT / "dist" / "streaming-file-builder.zip"
# Nothing listens here: a request that tries to leave fails at once.
CLOSED_PORT = "http://127.0.0.1:9"


def offline_environment(home: Path) -> dict[str, str]:
    home.mkdir()
    # SAM checks PyPI for a newer release when its last check is a week old: it was just now.
    (home / "metadata.json").write_text(
        json.dumps({"telemetryEnabled": False, "lastVersionCheck": time.time()})
    )
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "NO_PROXY", "no_proxy"}
    }
    environment |= {
        "SAM_CLI_TELEMETRY": "0",
        "__SAM_CLI_APP_DIR": str(home),
        "PIP_NO_INDEX": "1",
        **{name: CLOSED_PORT for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")},
        **{name.lower(): CLOSED_PORT for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")},
    }
    return environment


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build folder of one `sam build` of template.yaml."""
    if not PACKAGE.exists():
        pytest.fail(f"{PACKAGE.name} is missing: `make package` builds it (`make test` does)")
    if not SAM.exists():
        pytest.fail(f"{SAM} is missing: aws-sam-cli comes with the dev environment (make venv)")
    work = tmp_path_factory.mktemp("sam")
    build_dir = work / "build"

    template = str(lambda_runtime.TEMPLATE)
    done = subprocess.run(
        [str(SAM), "build", "--template-file", template, "--build-dir", str(build_dir)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=offline_environment(work / "sam-home"),
        timeout=240,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    return build_dir


def files_under(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}


def test_sam_builds_in_the_source_folder_so_it_copies_neither_venv_nor_node_modules() -> None:
    with (ROOT / "samconfig.toml").open("rb") as config:
        parameters = tomllib.load(config)["default"]["build"]["parameters"]

    assert parameters["build_in_source"] is True


def test_every_function_is_built_by_the_makefile_from_the_repository_root() -> None:
    template = lambda_runtime.template()

    for function in lambda_runtime.functions():
        resource = template["Resources"][function.logical_id]
        assert resource.get("Metadata", {}).get("BuildMethod") == "makefile", function
        assert resource["Properties"]["CodeUri"] == ".", function


def test_sam_build_gives_every_function_the_files_of_the_package(built: Path) -> None:
    with zipfile.ZipFile(PACKAGE) as archive:
        packaged = {name for name in archive.namelist() if not name.endswith("/")}

    for function in lambda_runtime.functions():
        assert files_under(built / function.logical_id) == packaged, function.logical_id


def test_every_built_function_imports_its_handler_on_a_clean_interpreter_of_the_runtime(
    built: Path,
) -> None:
    for function in lambda_runtime.functions():
        done = lambda_runtime.import_handlers(built / function.logical_id, [function.handler])

        assert done.returncode == 0, done.stderr
        version, module = done.stdout.splitlines()
        assert version.split() == [str(part) for part in lambda_runtime.python_version()]
        assert module == function.handler.rpartition(".")[0]
