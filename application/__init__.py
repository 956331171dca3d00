"""Use cases over ports: what the service does, independent of AWS and of the filesystem."""
