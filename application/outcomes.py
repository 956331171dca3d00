"""What became of a file when something tried to finish it: one answer for the upload, the
batch and the operator's redrive alike."""

from __future__ import annotations

from enum import Enum


class FileOutcome(Enum):
    UPLOADED = "uploaded"
    REFUSED = "refused for good, kept under failed/"
    RETRY_LATER = "failed for now, try later"
    INCOMPLETE = "incomplete"
    BUSY = "being assembled elsewhere"
    NOT_FOUND = "not found"

    @property
    def is_final(self) -> bool:
        """The file is finished: uploaded, or refused and kept under failed/."""
        return self in (FileOutcome.UPLOADED, FileOutcome.REFUSED)
