"""mypy checks here that every adapter and every fake fits its port by shape.

The container wires adapters through dependency-injector providers, which mypy cannot see
through; these assignments are where a drifting signature fails the type check.
"""

from __future__ import annotations

from pathlib import Path

import boto3
from moto import mock_aws

from adapters.dynamodb_state import DynamoDbFileStateStore
from adapters.emf_metrics import EmfMetrics
from adapters.endpoint_policy import HostPolicy
from adapters.guarded_transport import AddressGuard, guarded_session
from adapters.http_uploader import RequestsUploader
from adapters.memory_cache import InMemoryPartitionCache
from adapters.s3_storage import S3ChunkStore, S3RecordArchive
from adapters.shard_log import S3ShardLog
from adapters.tmp_storage import TmpChunkStore
from adapters.validation import JsonSchemaRequestValidator
from application.log_files import LoggedFiles
from application.ports import (
    ChunkSource,
    EndpointPolicy,
    FileStateStore,
    LocalChunkStore,
    Metrics,
    PartitionCache,
    RecordArchive,
    RemoteChunkStore,
    RequestValidator,
    ShardLog,
    Uploader,
)
from application.shard_book import ShardBook
from application.views import (
    ExpiryRecords,
    FailedFiles,
    IncompleteFiles,
    PendingChunks,
    ShardList,
    SharedFiles,
    StoredFiles,
)
from tests.fakes import (
    FakeArchive,
    FakeLocalStore,
    FakeMetrics,
    FakePolicy,
    FakeRemoteStore,
    FakeStateStore,
    FakeUploader,
    FakeValidator,
)


def test_adapters_and_fakes_fit_their_ports(tmp_path: Path) -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        policy = HostPolicy(["localhost"])
        guard: AddressGuard = policy
        checks: list[object] = []
        cache: PartitionCache = InMemoryPartitionCache()
        local: LocalChunkStore = TmpChunkStore(tmp_path)
        remote: RemoteChunkStore = S3ChunkStore(s3, "bucket")
        state: FileStateStore = DynamoDbFileStateStore(dynamodb, "table", 60.0)
        archive: RecordArchive = S3RecordArchive(s3, "bucket")
        uploader: Uploader = RequestsUploader(guarded_session(guard))
        validator: RequestValidator = JsonSchemaRequestValidator()
        endpoint_policy: EndpointPolicy = policy
        metrics: Metrics = EmfMetrics()
        checks += [cache, local, remote, state, archive, uploader, validator, endpoint_policy]
        checks += [metrics]

    fake_local: LocalChunkStore = FakeLocalStore()
    fake_remote: RemoteChunkStore = FakeRemoteStore()
    fake_state: FileStateStore = FakeStateStore()
    fake_archive: RecordArchive = FakeArchive()
    fake_uploader: Uploader = FakeUploader()
    fake_validator: RequestValidator = FakeValidator()
    fake_policy: EndpointPolicy = FakePolicy()
    fake_metrics: Metrics = FakeMetrics()
    checks += [fake_local, fake_remote, fake_state, fake_archive, fake_uploader]
    checks += [fake_validator, fake_policy, fake_metrics]

    assert len(checks) == 17


def test_the_operators_views_fit_both_backends_adapters_and_the_fakes() -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        s3_store, s3_archive = S3ChunkStore(s3, "bucket"), S3RecordArchive(s3, "bucket")
        table = DynamoDbFileStateStore(dynamodb, "table", 60.0)
        shared: SharedFiles = table
        failed: FailedFiles = s3_archive
        shared_files: IncompleteFiles = table
        chunks: PendingChunks = s3_store
        records: ExpiryRecords = s3_archive

    remote, state, archive = FakeRemoteStore(), FakeStateStore(), FakeArchive()
    fake_shared: SharedFiles = state
    fake_failed: FailedFiles = archive
    fake_shared_files: IncompleteFiles = state
    fake_chunks: PendingChunks = remote
    fake_records: ExpiryRecords = archive
    checks: list[object] = [shared, failed, shared_files, chunks, records]
    checks += [fake_shared, fake_failed, fake_shared_files, fake_chunks, fake_records]

    assert len(checks) == 10


def test_the_local_backends_log_fits_its_ports_and_the_operators_views() -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        log: ShardLog = S3ShardLog(s3, "bucket")
        shards: ShardList = S3ShardLog(s3, "bucket")

    fake_log: ShardLog = FakeRemoteStore()
    fake_shards: ShardList = FakeRemoteStore()
    book = ShardBook(fake_log, clock=lambda: 0.0, retention_seconds=60.0)
    entries: ChunkSource = book
    files = LoggedFiles(book, fake_shards)
    stored: StoredFiles = files
    incomplete: IncompleteFiles = files
    pending: PendingChunks = files
    checks: list[object] = [log, shards, fake_log, fake_shards, entries]
    checks += [stored, incomplete, pending]

    assert len(checks) == 8
