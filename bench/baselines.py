"""The floors the handler is measured against: the same records through the plainest code.

A naive chain decodes each record (base64, JSON, base64), appends the content to a file and,
once a file has every chunk, PUTs it with requests; it checks nothing and survives nothing.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import orjson
import pybase64
import requests
from attrs import define, frozen

from bench.workload import Record


@frozen
class Decoders:
    name: str
    b64decode: Callable[[str], bytes]
    loads: Callable[[bytes], Any]


def _fast_b64decode(text: str) -> bytes:
    return pybase64.b64decode(text, validate=True)


STDLIB = Decoders("stdlib", base64.b64decode, json.loads)
FAST = Decoders("fast", _fast_b64decode, orjson.loads)
"""pybase64 (SIMD) and orjson: the fastest decoders installed."""


def plain_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: 127.0.0.1 only
    return session


def put_file(session: requests.Session, url: str, body: IO[bytes]) -> None:
    """requests sends a file object with its Content-Length, never chunked."""
    response = session.put(url, data=body, timeout=(5, 300))
    with response:
        response.raise_for_status()


@define
class _OpenFile:
    handle: IO[bytes]
    path: Path
    received: int = 0


def naive_chain(
    stream: Iterable[Record],
    decoders: Decoders,
    workdir: Path,
    session: requests.Session,
    destination: Callable[[str], str],
) -> int:
    """Decode, append to one file per putEndpoint, PUT each complete file to
    ``destination(putEndpoint)``; return the bytes uploaded."""
    files: dict[str, _OpenFile] = {}
    names = itertools.count()
    uploaded = 0
    for record in stream:
        document = decoders.loads(decoders.b64decode(record["kinesis"]["data"]))
        endpoint = document["putEndpoint"]
        if endpoint not in files:
            path = workdir / f"naive-{next(names)}.bin"
            files[endpoint] = _OpenFile(path.open("wb"), path)
        file = files[endpoint]
        file.handle.write(decoders.b64decode(document["content"]))
        file.received += 1
        if file.received == document["partitionCount"]:
            uploaded += file.handle.tell()
            file.handle.close()
            with file.path.open("rb") as body:
                put_file(session, destination(endpoint), body)
            file.path.unlink()
            del files[endpoint]
    return uploaded
