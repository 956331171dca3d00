"""``sfb demo``: the main job on embedded services, as a user first runs it."""

from __future__ import annotations

import hashlib
import os
import random

import pytest

from entrypoints.demo import run_demo


def test_the_demo_reassembles_a_shuffled_duplicated_file_and_reports_its_sha256(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # run_demo points os.environ at its own moto server and restores it; monkeypatch then
    # restores whatever it finds, so no other test sees the demo's settings.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    before = dict(os.environ)
    size, seed = 300 * 1024, 11
    expected = hashlib.sha256(random.Random(seed).randbytes(size)).hexdigest()
    lines: list[str] = []

    ok = run_demo(size=size, chunk_size=32 * 1024, batch_size=4, seed=seed, say=lines.append)

    assert ok is True
    said = "\n".join(lines)
    assert said.count(expected) == 2
    assert "OK: the uploaded file matches" in said
    assert "demo-secret" not in said
    assert dict(os.environ) == before
