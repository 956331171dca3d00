"""Tools the tests and the benchmark drive the service with: a local S3-like receiver, a
shard driver that replays batchItemFailures as Lambda does, Kinesis sequence numbers.

They live under tests/, not entrypoints/, because nothing the Lambda runs needs them and
pyproject ships only domain, application, adapters and entrypoints (the zip's test checks it).
"""
