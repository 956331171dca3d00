"""A shard's parents, from Kinesis' ListShards on the stream the records came from.

Asked once per shard and container (the local backend stores the answer in the shard's
snapshot), and only by a shard whose log does not say yet: the role's `kinesis:ListShards`
on the stream, which the event source mapping needs anyway, is all it takes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient


log = logging.getLogger("sfb")

_STREAM_ARN = re.compile(
    r"arn:aws[a-z-]*:kinesis:[a-z0-9-]+:[0-9]{12}:stream/[A-Za-z0-9_.-]{1,128}"
)


class KinesisLineage:
    def __init__(self, client: Callable[[], KinesisClient]) -> None:
        """``client`` makes the client when first needed: most containers never ask."""
        self._client = client

    def parents(self, stream: str, shard: str) -> tuple[str, ...]:
        """No parents for a source that is no Kinesis stream, or a stream that does not exist
        (an event made by hand): there is no lineage to follow, nor anything to ask again."""
        if not _STREAM_ARN.fullmatch(stream):
            log.info("the records' source is not a Kinesis stream: no reshard is followed")
            return ()
        paginator = self._client().get_paginator("list_shards")
        try:
            pages = list(paginator.paginate(StreamARN=stream))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            log.info(
                "the records' stream does not exist: no reshard is followed",
                extra={"stream": stream},
            )
            return ()
        for page in pages:
            for listed in page.get("Shards", []):
                if listed["ShardId"] == shard:
                    return tuple(
                        parent
                        for parent in (
                            listed.get("ParentShardId"),
                            listed.get("AdjacentParentShardId"),
                        )
                        if parent
                    )
        return ()
