"""sfb status as the operator reads it: state, progress, expiry countdown and the next step."""

from __future__ import annotations

import json

import pytest

from application.views import FileSummary
from domain import FileId
from entrypoints.status_view import (
    StatusRow,
    human_bytes,
    human_duration,
    progress_bar,
    status_document,
    status_rows,
    status_text,
    summary_line,
)

NOW = 1_714_564_800.0  # 2024-05-01T12:00:00Z
HOUR = 3_600.0
DAY = 86_400.0
SECRET = "X-Amz-Signature=SECRETSIG"
URL = f"https://user:pw@bucket.example.com/exports/a.csv?{SECRET}#frag"
FILE = FileId.for_endpoint(URL)


def summary(
    status: str,
    received: int = 12,
    partition_count: int | None = 40,
    age: float = 3 * HOUR,
    size: int = 6 * 1024 * 1024,
    put_endpoint: str | None = URL,
) -> FileSummary:
    return FileSummary(FILE, status, received, partition_count, size, NOW - age, put_endpoint)


def row_of(file: FileSummary, ttl: float = DAY) -> StatusRow:
    [row] = status_rows([file], NOW, ttl)
    return row


@pytest.mark.parametrize(
    ("file", "state", "next_step_says"),
    [
        pytest.param(
            summary("collecting", 12, 40),
            "collecting",
            ["waiting for 28 missing chunks"],
            id="collecting",
        ),
        pytest.param(
            summary("collecting", 40, 40),
            "complete",
            ["complete but never uploaded", f"sfb redrive {FILE}"],
            id="collecting-with-every-chunk-is-complete",
        ),
        pytest.param(
            summary("complete", 40, 40),
            "complete",
            ["complete but never uploaded", f"sfb redrive {FILE}"],
            id="complete",
        ),
        pytest.param(
            summary("assembling", 40, 40),
            "assembling",
            ["being uploaded", "wait for its claim to end", f"sfb redrive {FILE}"],
            id="assembling",
        ),
        pytest.param(
            summary("failed", 0, None, put_endpoint=None),
            "failed",
            ["check the endpoint", f"failed/{FILE}", f"sfb redrive {FILE}", "--all-failed"],
            id="failed",
        ),
        pytest.param(
            summary("expired", 3, 40),
            "expired",
            ["given up", f"expired/{FILE}.json", "send the whole file again", "new putEndpoint"],
            id="expired",
        ),
        pytest.param(
            summary("paused", 3, 40),
            "paused",
            ["unknown state 'paused'", "inspect"],
            id="unknown-state",
        ),
    ],
)
def test_every_state_names_what_the_operator_does_next(
    file: FileSummary, state: str, next_step_says: list[str]
) -> None:
    row = row_of(file)

    assert row.state == state
    for words in next_step_says:
        assert words in row.next_step
    text = status_text([row])
    assert state in text
    assert row.next_step in text


@pytest.mark.parametrize(
    ("ttl", "age", "expires_in", "soon"),
    [
        pytest.param(DAY, 3 * HOUR, 21 * HOUR, False, id="fresh"),
        pytest.param(DAY, 21 * HOUR, 3 * HOUR, False, id="three-hours-of-a-day-left"),
        pytest.param(DAY, 22 * HOUR, 2 * HOUR, True, id="under-ten-percent-left"),
        pytest.param(7 * DAY, 7 * DAY - 20 * HOUR, 20 * HOUR, False, id="week-ttl-20h-left"),
        pytest.param(7 * DAY, 7 * DAY - 10 * HOUR, 10 * HOUR, True, id="week-ttl-10h-left"),
        pytest.param(1_800.0, 300.0, 1_500.0, True, id="short-ttl-under-an-hour-left"),
        pytest.param(DAY, DAY + 600, -600.0, True, id="overdue"),
    ],
)
def test_an_incomplete_file_counts_down_to_its_expiry_and_is_flagged_near_it(
    ttl: float, age: float, expires_in: float, soon: bool
) -> None:
    row = row_of(summary("collecting", 3, 10, age=age), ttl)

    assert row.expires_in_seconds == pytest.approx(expires_in)
    assert row.expires_soon is soon
    assert ("(soon)" in status_text([row]) or "overdue" in status_text([row])) is soon


@pytest.mark.parametrize(
    "file",
    [
        pytest.param(summary("collecting", 40, 40, age=23.5 * HOUR), id="complete"),
        pytest.param(summary("assembling", 40, 40, age=23.5 * HOUR), id="assembling"),
        pytest.param(summary("failed", 0, None, age=23.5 * HOUR), id="failed"),
        pytest.param(summary("expired", 3, 40, age=25 * HOUR), id="expired"),
    ],
)
def test_only_incomplete_files_have_an_expiry(file: FileSummary) -> None:
    row = row_of(file)

    assert row.expires_in_seconds is None
    assert row.expires_soon is False
    assert status_document([row])[0]["expires_in_seconds"] is None


def test_a_file_near_expiry_says_when_it_will_be_given_up_unless_its_chunks_arrive() -> None:
    row = row_of(summary("collecting", 3, 10, age=DAY - 30 * 60))

    assert row.next_step == (
        "expires soon: given up by the first expiry run after 2024-05-01T12:30:00Z unless its "
        "7 missing chunks arrive"
    )


def test_a_file_past_its_expiry_says_the_next_expiry_run_gives_it_up() -> None:
    row = row_of(summary("collecting", 9, 10, age=DAY + 60))

    assert "past its expiry (2024-05-01T11:59:00Z)" in row.next_step
    assert "unless its 1 missing chunk arrives first" in row.next_step
    assert "overdue" in status_text([row])


@pytest.mark.parametrize(
    ("received", "total", "bar"),
    [
        pytest.param(0, 40, "[--------------]", id="none-received"),
        pytest.param(12, 40, "[####----------]", id="some-received"),
        pytest.param(39, 40, "[#############-]", id="full-only-when-every-chunk-is-in"),
        pytest.param(40, 40, "[##############]", id="all-received"),
        pytest.param(0, None, "[??????????????]", id="count-unknown"),
    ],
)
def test_progress_is_a_plain_ascii_bar(received: int, total: int | None, bar: str) -> None:
    assert progress_bar(received, total) == bar
    assert bar.isascii()


def test_the_table_shows_received_of_total_beside_the_bar() -> None:
    text = status_text(
        status_rows(
            [summary("collecting", 12, 40), summary("failed", 0, None, put_endpoint=None)],
            NOW,
            DAY,
        )
    )

    assert "[####----------] 12/40" in text
    assert "[??????????????] ?/?" in text
    assert "6.0 MiB" in text


def test_the_endpoint_is_shown_without_query_fragment_or_credentials() -> None:
    rows = status_rows([summary("collecting"), summary("failed", 0, None)], NOW, DAY)
    printed = status_text(rows) + json.dumps(status_document(rows))

    assert rows[0].endpoint == "https://bucket.example.com/exports/a.csv"
    assert "SECRETSIG" not in printed
    assert "?X-Amz" not in printed
    assert "pw@" not in printed
    assert "frag" not in printed


def test_the_json_document_has_stable_snake_case_keys_and_utc_times() -> None:
    [document] = status_document([row_of(summary("collecting", 3, 10, age=DAY - 30 * 60))])

    assert list(document) == [
        "file_id",
        "state",
        "received",
        "partition_count",
        "bytes",
        "first_seen",
        "age_seconds",
        "expires_in_seconds",
        "expires_soon",
        "endpoint",
        "next_step",
    ]
    assert document["file_id"] == str(FILE)
    assert document["state"] == "collecting"
    assert (document["received"], document["partition_count"]) == (3, 10)
    assert document["bytes"] == 6 * 1024 * 1024
    assert document["first_seen"] == "2024-04-30T12:30:00Z"
    assert document["age_seconds"] == DAY - 30 * 60
    assert document["expires_in_seconds"] == 30 * 60
    assert document["expires_soon"] is True
    assert document["endpoint"] == "https://bucket.example.com/exports/a.csv"
    assert json.loads(json.dumps(document)) == document


def test_a_file_whose_first_chunk_time_is_unknown_has_no_age_and_no_expiry() -> None:
    row = row_of(summary("collecting", age=NOW))

    [document] = status_document([row])
    assert document["first_seen"] is None
    assert document["age_seconds"] is None
    assert document["expires_in_seconds"] is None
    assert "waiting for 28 missing chunks" in row.next_step


def test_the_summary_counts_files_by_state_and_those_expiring_soon() -> None:
    rows = status_rows(
        [
            summary("collecting", 3, 10, age=DAY - 600),
            summary("collecting", 3, 10),
            summary("collecting", 10, 10),
            summary("failed", 0, None),
            summary("paused"),
        ],
        NOW,
        DAY,
    )

    assert summary_line(rows) == (
        "5 files not finished: 2 collecting, 1 complete, 1 failed, 1 paused; 1 expires soon"
    )
    assert status_text(rows).endswith(summary_line(rows) + "\n")


def test_nothing_unfinished_is_one_line() -> None:
    assert status_text([]) == "0 files not finished\n"


def test_control_characters_from_the_store_are_not_printed() -> None:
    row = row_of(summary("odd\x1b[31m", put_endpoint="https://example.com/a\x1bb?q=1"))

    text = status_text([row])
    assert "\x1b" not in text
    assert row.state == "odd?[31m"


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (6 * 1024**2, "6.0 MiB"),
        (5 * 1024**3, "5.0 GiB"),
    ],
)
def test_bytes_read_in_binary_units(size: int, text: str) -> None:
    assert human_bytes(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5.0, "0s"),
        (45.9, "45s"),
        (12 * 60 + 59, "12m"),
        (3 * HOUR + 5 * 60, "3h05m"),
        (2 * DAY + 4 * HOUR + 59 * 60, "2d04h"),
    ],
)
def test_durations_are_rounded_down(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text
