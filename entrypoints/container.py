"""The one place where ports meet adapters, built once per Lambda container."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping

import boto3
from botocore.config import Config
from dependency_injector import containers, providers

from adapters.chunk_copies import CopiedChunkObjects
from adapters.chunk_objects import S3ChunkObjects
from adapters.dynamodb_batch import DynamoDbFileStateBatches
from adapters.dynamodb_state import DynamoDbFileStateStore
from adapters.emf_metrics import EmfMetrics
from adapters.endpoint_policy import HostPolicy
from adapters.guarded_transport import guarded_session
from adapters.http_uploader import RequestsUploader, RetryPolicy
from adapters.json_logging import configure_logging
from adapters.kinesis import records_from_event
from adapters.kinesis_lineage import KinesisLineage
from adapters.memory_cache import InMemoryPartitionCache
from adapters.redis_chunks import RedisChunkStore
from adapters.redis_client import redis_client
from adapters.redis_state import RedisFileStateBatches, RedisFileStateStore
from adapters.s3_storage import S3ChunkStore, S3RecordArchive
from adapters.settings import Settings
from adapters.shard_log import S3ShardLog
from adapters.ssm_parameters import read_parameters
from adapters.tmp_storage import TmpChunkStore
from adapters.validation import JsonSchemaRequestValidator
from application.assemble import AssembleAndUpload
from application.backends.local import LocalBackend
from application.backends.shared import SharedBackend
from application.chunk_objects import StoredChunks
from application.expiry import ExpireIncompleteFiles
from application.flush import FlushPending
from application.ingest import IngestChunk
from application.lanes import FileLanes
from application.lifecycle import FileLifecycle
from application.log_files import LoggedFiles
from application.operations import FileReport, Redrive
from application.process_batch import ProcessBatch
from application.shard_book import ShardBook
from application.shared_ingest import SharedIngestChunk
from application.whole_files import WholeFiles
from domain import Limits

AWS_MAX_ATTEMPTS = 3
"""Attempts per AWS call, botocore's standard retry mode included."""


def aws_client_config(deadline_margin: float, connections: int = 10) -> Config:
    """One stalled AWS call, retries included, must end inside DEADLINE_MARGIN_SECONDS.

    The rule: 3 attempts x (connect margin/20 + read margin/8) = 0.525 x the margin, and the
    standard mode's backoff between them is under 1 s, then under 2 s; so the whole call
    ends within the margin whenever the margin is 7 s or more (10 s by default: 0.5 s to
    connect, 1.25 s to wait for each answer). ``connections``: one for each file lane.
    """
    return Config(
        retries={"mode": "standard", "total_max_attempts": AWS_MAX_ATTEMPTS},
        connect_timeout=deadline_margin / 20,
        read_timeout=deadline_margin / 8,
        max_pool_connections=max(10, connections),
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


def _limits(settings: Settings) -> Limits:
    return settings.limits


def _collecting_ttl(state_ttl: float, incomplete_ttl: float) -> float:
    """A collecting file's chunks live as long as its state does."""
    return state_ttl + incomplete_ttl


def _new_owner_id() -> str:
    return uuid.uuid4().hex


class Container(containers.DeclarativeContainer):
    """Every provider is wired by keyword. Tests build this container from a settings dict
    and override the adapter providers (stores, uploader, clock) with fakes."""

    environ = providers.Dependency(instance_of=dict)
    settings = providers.Singleton(load_settings, environ)
    log_setup = providers.Resource(configure_logging, level=settings.provided.log_level)
    backend_name = providers.Callable(_backend_name, settings)
    limits = providers.Callable(_limits, settings)
    clock = providers.Object(time.time)
    """Epoch seconds for every use case: tests override this one provider to move time."""

    aws_config = providers.Singleton(
        aws_client_config,
        deadline_margin=settings.provided.deadline_margin_seconds,
        connections=settings.provided.upload_concurrency,
    )
    s3_client = providers.Singleton(boto3.client, "s3", config=aws_config)
    dynamodb_client = providers.Singleton(boto3.client, "dynamodb", config=aws_config)
    kinesis_client = providers.Singleton(boto3.client, "kinesis", config=aws_config)
    owner_id = providers.Singleton(_new_owner_id)

    # Adapters: the seed's components, one provider each.
    validator = providers.Singleton(JsonSchemaRequestValidator)
    cache = providers.Singleton(InMemoryPartitionCache)
    local_store = providers.Singleton(
        TmpChunkStore,
        root=settings.provided.tmp_dir,
        budget=settings.provided.local_disk_budget_bytes,
    )
    remote_store = providers.Singleton(
        S3ChunkStore, client=s3_client, bucket=settings.provided.s3_bucket
    )
    shard_log = providers.Singleton(
        S3ShardLog, client=s3_client, bucket=settings.provided.s3_bucket
    )
    state_store = providers.Singleton(
        DynamoDbFileStateStore,
        client=dynamodb_client,
        table=settings.provided.state_table,
        ttl_seconds=settings.provided.state_ttl_seconds,
        incomplete_ttl_seconds=settings.provided.incomplete_file_ttl_seconds,
    )
    state_batches = providers.Singleton(
        DynamoDbFileStateBatches,
        client=dynamodb_client,
        table=settings.provided.state_table,
        ttl_seconds=settings.provided.state_ttl_seconds,
    )
    # The dynamodb backend's chunk bytes: one S3 object a batch, its item in the state table.
    chunk_objects = providers.Singleton(
        S3ChunkObjects,
        s3=s3_client,
        bucket=settings.provided.s3_bucket,
        db=dynamodb_client,
        table=settings.provided.state_table,
        ttl_seconds=providers.Callable(
            _collecting_ttl,
            settings.provided.state_ttl_seconds,
            settings.provided.incomplete_file_ttl_seconds,
        ),
        clock=clock,
        read_ahead=settings.provided.assembly_read_ahead,
    )
    # Copies of the chunks this container stored, read back at assembly instead of S3.
    copies_store = providers.Singleton(
        TmpChunkStore,
        root=settings.provided.tmp_dir,
        budget=settings.provided.local_disk_budget_bytes,
        name="sfb-copies",
    )
    chunk_copies = providers.Singleton(CopiedChunkObjects, objects=chunk_objects, disk=copies_store)
    stored_chunks = providers.Singleton(StoredChunks, objects=chunk_copies, state=state_store)
    # The redis backend's: one connection pool per container, made only when it is chosen.
    redis = providers.Singleton(
        redis_client,
        url=settings.provided.redis_url,
        deadline_margin=settings.provided.deadline_margin_seconds,
        connections=settings.provided.upload_concurrency,
    )
    redis_state = providers.Singleton(
        RedisFileStateStore,
        client=redis,
        ttl_seconds=settings.provided.state_ttl_seconds,
        incomplete_ttl_seconds=settings.provided.incomplete_file_ttl_seconds,
    )
    redis_batches = providers.Singleton(
        RedisFileStateBatches, client=redis, ttl_seconds=settings.provided.state_ttl_seconds
    )
    redis_chunks = providers.Singleton(
        RedisChunkStore,
        client=redis,
        spill=remote_store,
        budget=settings.provided.redis_max_chunk_bytes,
        ttl_seconds=providers.Callable(
            _collecting_ttl,
            settings.provided.state_ttl_seconds,
            settings.provided.incomplete_file_ttl_seconds,
        ),
    )
    # The local backend's book of the shards' logs, one per container; it follows a reshard
    # through the stream's shard lineage (the client is made only if a shard asks).
    lineage = providers.Singleton(KinesisLineage, client=kinesis_client.provider)
    shard_book = providers.Singleton(
        ShardBook,
        log=shard_log,
        clock=clock,
        retention_seconds=settings.provided.state_ttl_seconds,
        lineage=lineage,
        read_ahead=settings.provided.assembly_read_ahead,
    )
    # Where assembly reads chunks: the shards' logs (local), S3 objects (dynamodb), Redis with
    # what it spilled to S3 (redis).
    chunk_store = providers.Selector(
        backend_name, local=shard_book, dynamodb=chunk_copies, redis=redis_chunks
    )
    archive = providers.Singleton(
        S3RecordArchive, client=s3_client, bucket=settings.provided.s3_bucket
    )
    metrics = providers.Singleton(EmfMetrics, service=settings.provided.metrics_service)
    policy = providers.Singleton(HostPolicy, allowed_hosts=settings.provided.upload_allowed_hosts)
    # Every connection re-checks its addresses with the same policy: no DNS rebinding.
    http_session = providers.Singleton(
        guarded_session, guard=policy, connections=settings.provided.upload_concurrency
    )
    uploader = providers.Singleton(
        RequestsUploader,
        session=http_session,
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
        AssembleAndUpload,
        local=local_store,
        remote=chunk_store,
        uploader=uploader,
        archive=archive,
        metrics=metrics,
        read_ahead=settings.provided.assembly_read_ahead,
    )

    # The local backend: its lifecycle, over the shards' logs.
    logged_files = providers.Singleton(LoggedFiles, book=shard_book, shards=shard_log)
    lifecycle = providers.Singleton(
        FileLifecycle,
        cache=cache,
        local=local_store,
        book=shard_book,
        assemble=assemble,
        limits=limits,
    )
    local_backend = providers.Singleton(
        LocalBackend,
        ingest=providers.Factory(
            IngestChunk,
            cache=cache,
            local=local_store,
            files=lifecycle,
            limits=limits,
            book=shard_book,
        ),
        flush=providers.Factory(
            FlushPending, cache=cache, local=local_store, files=lifecycle, book=shard_book
        ),
        lifecycle=lifecycle,
        stored=logged_files,
        book=shard_book,
    )

    # The shared backends, dynamodb and redis: the same use cases on the chosen stores.
    shared_state = providers.Selector(
        backend_name, local=state_store, dynamodb=state_store, redis=redis_state
    )
    shared_batches = providers.Selector(
        backend_name, local=state_batches, dynamodb=state_batches, redis=redis_batches
    )
    # The dynamodb backend stores a batch's chunks in one object; redis each as it comes.
    shared_remote = providers.Selector(
        backend_name, local=remote_store, dynamodb=remote_store, redis=redis_chunks
    )
    shared_objects = providers.Selector(
        backend_name,
        local=providers.Object(None),
        dynamodb=stored_chunks,
        redis=providers.Object(None),
    )
    shared_backend = providers.Singleton(
        SharedBackend,
        ingest=providers.Factory(
            SharedIngestChunk,
            remote=shared_remote,
            state=shared_state,
            assemble=assemble,
            limits=limits,
            owner=owner_id,
            lease_seconds=settings.provided.claim_lease_seconds,
            clock=clock,
            objects=shared_objects,
        ),
        state=shared_state,
        files=shared_state,
        clock=clock,
        whole=providers.Factory(
            WholeFiles,
            batches=shared_batches,
            state=shared_state,
            remote=shared_remote,
            local=local_store,
            assemble=assemble,
            limits=limits,
            owner=owner_id,
            clock=clock,
            objects=shared_objects,
        ),
    )

    # The one seam: STATE_BACKEND picks what ProcessBatch and the operator commands use.
    state_backend = providers.Selector(
        backend_name, local=local_backend, dynamodb=shared_backend, redis=shared_backend
    )

    # A singleton, unlike the other use cases: it numbers this container's batches.
    process_batch = providers.Singleton(
        ProcessBatch,
        validator=validator,
        policy=policy,
        backend=state_backend,
        archive=archive,
        deadline_margin=settings.provided.deadline_margin_seconds,
        metrics=metrics,
        lanes=providers.Singleton(FileLanes, concurrency=settings.provided.upload_concurrency),
    )

    decode_event = providers.Object(records_from_event)

    # What operators run through `sfb status` and `sfb redrive`.
    file_report = providers.Factory(
        FileReport, backend=state_backend, archive=archive, expired=archive
    )
    redrive = providers.Factory(Redrive, backend=state_backend, archive=archive, uploader=uploader)

    # What the scheduled `expire` handler and `sfb expire` run: the local backend's state is
    # its shards' logs, the dynamodb backend's its table and its chunk objects, the redis
    # backend's its server (chunks in it, or spilled to S3).
    incomplete_files = providers.Selector(
        backend_name, local=logged_files, dynamodb=state_store, redis=redis_state
    )
    pending_chunks = providers.Selector(
        backend_name, local=logged_files, dynamodb=stored_chunks, redis=redis_chunks
    )
    expire_incomplete = providers.Factory(
        ExpireIncompleteFiles,
        files=incomplete_files,
        chunks=pending_chunks,
        records=archive,
        clock=clock,
        ttl_seconds=settings.provided.incomplete_file_ttl_seconds,
        backend=backend_name,
        metrics=metrics,
    )


def build_container(environ: Mapping[str, str]) -> Container:
    """Validate the settings and set up logging now, so a bad setting fails the cold start."""
    container = Container(environ=dict(environ))
    container.settings()
    container.init_resources()
    return container
