"""The one place where ports meet adapters, built once per Lambda container."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping

import boto3
from botocore.config import Config
from dependency_injector import containers, providers

from adapters.dynamodb_state import DynamoDbFileStateStore
from adapters.emf_metrics import EmfMetrics
from adapters.endpoint_policy import HostPolicy
from adapters.guarded_transport import guarded_session
from adapters.http_uploader import RequestsUploader, RetryPolicy
from adapters.json_logging import configure_logging
from adapters.kinesis import records_from_event
from adapters.memory_cache import InMemoryPartitionCache
from adapters.s3_storage import S3ChunkStore, S3RecordArchive, S3ShardLedgers
from adapters.settings import Settings
from adapters.ssm_parameters import read_parameters
from adapters.tmp_storage import TmpChunkStore
from adapters.validation import JsonSchemaRequestValidator
from application.assemble import AssembleAndUpload
from application.expiry import ExpireIncompleteFiles
from application.flush import FlushPending, NothingToFlush
from application.ingest import IngestChunk
from application.lifecycle import FileLifecycle, ShardBook
from application.operations import FileReport, Redrive
from application.process_batch import InvocationDeadline, ProcessBatch
from application.shared_ingest import SharedIngestChunk

AWS_MAX_ATTEMPTS = 3
"""Attempts per AWS call, botocore's standard retry mode included."""


def aws_client_config(deadline_margin: float) -> Config:
    """One stalled AWS call, retries included, must end inside DEADLINE_MARGIN_SECONDS.

    The rule: 3 attempts x (connect margin/20 + read margin/8) = 0.525 x the margin, and the
    standard mode's backoff between them is under 1 s, then under 2 s; so the whole call
    ends within the margin whenever the margin is 7 s or more (10 s by default: 0.5 s to
    connect, 1.25 s to wait for each answer).
    """
    return Config(
        retries={"mode": "standard", "total_max_attempts": AWS_MAX_ATTEMPTS},
        connect_timeout=deadline_margin / 20,
        read_timeout=deadline_margin / 8,
    )


COLD_START_MARGIN = 10.0
"""Parameter Store is read before the settings are known: the default margin stands in."""


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Parameter Store is only contacted when SSM_PARAMETER_PATH asks for it."""
    return Settings.from_environ(
        environ,
        parameters=lambda path: read_parameters(
            boto3.client("ssm", config=aws_client_config(COLD_START_MARGIN)), path
        ),
    )


def _backend_name(settings: Settings) -> str:
    return settings.state_backend.value


class Container(containers.DeclarativeContainer):
    environ = providers.Dependency(instance_of=dict)
    settings = providers.Singleton(load_settings, environ)
    backend = providers.Callable(_backend_name, settings)

    aws_config = providers.Singleton(aws_client_config, settings.provided.deadline_margin_seconds)
    s3_client = providers.Singleton(boto3.client, "s3", config=aws_config)
    dynamodb_client = providers.Singleton(boto3.client, "dynamodb", config=aws_config)
    # What is left of the invocation, shared by ProcessBatch and the claim it must not outlast.
    deadline = providers.Singleton(InvocationDeadline)
    owner_id = providers.Singleton(lambda: uuid.uuid4().hex)
    # Epoch seconds for every use case: tests override this one provider to move time.
    clock = providers.Object(time.time)

    cache = providers.Singleton(InMemoryPartitionCache)
    local_store = providers.Singleton(
        TmpChunkStore, settings.provided.tmp_dir, settings.provided.local_disk_budget_bytes
    )
    remote_store = providers.Singleton(S3ChunkStore, s3_client, settings.provided.s3_bucket)
    state_store = providers.Singleton(
        DynamoDbFileStateStore,
        dynamodb_client,
        settings.provided.state_table,
        settings.provided.state_ttl_seconds,
        incomplete_ttl_seconds=settings.provided.incomplete_file_ttl_seconds,
    )
    archive = providers.Singleton(S3RecordArchive, s3_client, settings.provided.s3_bucket)
    metrics = providers.Singleton(EmfMetrics, service=settings.provided.metrics_service)
    validator = providers.Singleton(JsonSchemaRequestValidator)
    policy = providers.Singleton(HostPolicy, settings.provided.upload_allowed_hosts)
    # Every connection re-checks its addresses with the same policy: no DNS rebinding.
    http_session = providers.Singleton(guarded_session, policy)
    uploader = providers.Singleton(
        RequestsUploader,
        http_session,
        connect_timeout=settings.provided.upload_connect_timeout,
        read_timeout=settings.provided.upload_read_timeout,
        retry=providers.Factory(
            RetryPolicy,
            attempts=settings.provided.upload_max_attempts,
            max_total=settings.provided.upload_retry_seconds,
        ),
        metrics=metrics,
    )

    assemble = providers.Factory(
        AssembleAndUpload, local_store, remote_store, uploader, archive, metrics
    )
    lifecycle = providers.Factory(
        FileLifecycle, cache, local_store, remote_store, assemble, settings.provided.limits
    )
    # The local backend's per-shard ledger: one GET a batch, one PUT a batch that changes it.
    shard_book = providers.Singleton(
        ShardBook,
        providers.Singleton(S3ShardLedgers, s3_client, settings.provided.s3_bucket),
        lifecycle,
        clock,
        settings.provided.state_ttl_seconds,
    )
    batch_ledger = providers.Selector(backend, local=shard_book, dynamodb=providers.Object(None))
    shared_ingest = providers.Factory(
        SharedIngestChunk,
        remote_store,
        state_store,
        assemble,
        settings.provided.limits,
        owner_id,
        settings.provided.claim_lease_seconds,
        clock,
        deadline=deadline,
    )
    ingest = providers.Selector(
        backend,
        local=providers.Factory(
            IngestChunk, cache, local_store, lifecycle, settings.provided.limits, shard_book
        ),
        dynamodb=shared_ingest,
    )
    flush = providers.Selector(
        backend,
        local=providers.Factory(FlushPending, cache, local_store, lifecycle),
        dynamodb=providers.Factory(NothingToFlush),
    )
    # A singleton, unlike the other use cases: it numbers this container's batches.
    process_batch = providers.Singleton(
        ProcessBatch,
        validator,
        policy,
        ingest,
        flush,
        archive,
        deadline_margin=settings.provided.deadline_margin_seconds,
        metrics=metrics,
        deadline=deadline,
        ledger=batch_ledger,
    )

    decode_event = providers.Object(records_from_event)

    # What operators run through `sfb status` and `sfb redrive`.
    shared_state = providers.Selector(backend, local=providers.Object(None), dynamodb=state_store)
    file_report = providers.Factory(FileReport, remote_store, archive, shared_state, archive)
    redrive = providers.Factory(
        Redrive,
        remote_store,
        archive,
        uploader,
        lifecycle,
        providers.Selector(backend, local=providers.Object(None), dynamodb=shared_ingest),
        shared_state,
        clock,
    )

    # What the scheduled `expire` handler and `sfb expire` run: the local backend's state is
    # its pending/ listing, the dynamodb backend's its table; chunks are S3 objects for both.
    incomplete_files = providers.Selector(backend, local=remote_store, dynamodb=state_store)
    expire_incomplete = providers.Factory(
        ExpireIncompleteFiles,
        files=incomplete_files,
        chunks=remote_store,
        records=archive,
        clock=clock,
        ttl_seconds=settings.provided.incomplete_file_ttl_seconds,
        backend=backend,
        metrics=metrics,
    )


def build_container(environ: Mapping[str, str]) -> Container:
    """Validate the settings and set up logging now, so a bad setting fails the cold start."""
    container = Container(environ=dict(environ))
    settings = container.settings()
    configure_logging(settings.log_level)
    return container
