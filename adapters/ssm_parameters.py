"""Settings kept in Parameter Store: read once at cold start, SecureStrings decrypted."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient


def read_parameters(client: SSMClient, path: str) -> dict[str, str]:
    """Map each parameter's last path segment (``/sfb/prod/S3_BUCKET``) to its value."""
    values: dict[str, str] = {}
    paginator = client.get_paginator("get_parameters_by_path")
    for page in paginator.paginate(Path=path, Recursive=False, WithDecryption=True):
        for parameter in page.get("Parameters", []):
            name, value = parameter.get("Name"), parameter.get("Value")
            if name and value is not None:
                values[name.rstrip("/").rsplit("/", 1)[-1]] = value
    return values
