"""One module per outside thing: Kinesis, S3, /tmp, HTTP, settings, logs."""
