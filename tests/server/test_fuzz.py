"""Fuzz every operation in the live server's own OpenAPI schema with schemathesis.

Each operation that takes input gets as many requests that fit its schema as that break it,
enough for :data:`MIN_REQUESTS` in all however many operations there are, twice: once with the
presenter's token, so presenter routes are exercised past the auth check and nothing is rate
limited (the presenter never is), and once without it, as a stranger, against a server with
its default limits: then the presenter's routes answer 401 and the costly viewer routes 429
once the stranger's burst is spent, answers the schema documents like any other. Viewer
operations go first, while a run trains at full speed, so they are fuzzed against weights that
change under them; the presenter's operations follow and change the run. Whatever arrives, no
answer may be a 5xx or differ from what the schema documents, and the server must still serve
and train after.

Generation is derandomised (the same requests every run) and never shrinks: on a failure the
report lists every failing request as it was sent.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from live_server import LiveServer, start_server
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

MIN_REQUESTS = 1000
MIN_EXAMPLES = 50  # per operation that takes input, and per mode (fitting / breaking the schema)
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
# Beyond "no 5xx": every answer, errors included, is one the schema documents (see
# server/openapi.py), in the documented content type and shape.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
PATIENCE = 30.0
VIEWER_QUESTIONS = ("/api/classify", "/api/explain")
LIMITED_PATHS = ("/api/classify", "/api/explain", "/api/explain/{key}", "/api/model")
LIMITED_PATHS += ("/api/checkpoint", "/api/gallery")  # the last: a drawing sent to the board


def takes_input(operation: Any) -> bool:
    return bool(operation.body) or any(True for _ in operation.iter_parameters())


def presenter_only(operation: Any) -> bool:
    """As the bad-input tests decide: every operation that is neither a read nor a viewer's
    question (POST /api/classify, POST /api/explain) is the presenter's."""
    return operation.method != "get" and operation.path not in VIEWER_QUESTIONS


def fuzz(
    server: LiveServer,
    operation: Any,
    mode: GenerationMode,
    examples: int,
    headers: dict[str, str],
    sent: Counter,
    failures: list[str],
) -> None:
    """Send ``examples`` generated requests for ``operation`` with ``headers``; record each
    and what broke."""

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def send(case: Any) -> None:
        response = case.call(base_url=server.url, headers=headers, timeout=120)
        sent[(operation.label, mode.value, response.status_code)] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except Exception as error:  # collected, so one run reports every failing request
            failures.append(f"{operation.label} ({mode.value}): {error}")

    try:
        send()
    except Unsatisfiable:
        # A body that is any string of bytes (a checkpoint) has no schema-breaking values.
        if mode is not GenerationMode.NEGATIVE:
            raise


def still_serving_and_training(server: LiveServer) -> None:
    assert server.http.get("/api/health").json() == {"status": "ok"}
    run = server.fresh_run(hidden=[16], batch_size=50, epochs=1000)
    server.ok("PATCH", "/api/run", json={"speed": None})
    server.ok("POST", "/api/run/start")
    deadline = time.monotonic() + PATIENCE
    while (now := server.http.get("/api/run").json())["batch"] < 5:
        assert time.monotonic() < deadline, f"the run did not train after the fuzzing: {now}"
        time.sleep(0.05)
    assert (now["id"], now["status"]) == (run["id"], "running")


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with its default limits (every test client is the same one, 127.0.0.1)."""
    tmp = tmp_path_factory.mktemp("limited")
    live = start_server(tmp / "state", tmp, flags=())
    yield live
    live.stop()


def fuzz_every_operation(server: LiveServer, headers: dict[str, str]) -> Counter:
    """At least :data:`MIN_REQUESTS` generated requests over every operation, with
    ``headers``; every answer checked. What was sent, by (operation, mode, status)."""
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=presenter_only)  # viewers first, while the run below trains
    assert any(presenter_only(operation) for operation in operations)
    server.fresh_run(hidden=[32, 16], batch_size=100, epochs=1000)
    server.ok("PATCH", "/api/run", json={"speed": None})
    server.ok("POST", "/api/run/start")

    with_input = sum(takes_input(operation) for operation in operations)
    examples = max(MIN_EXAMPLES, math.ceil(1.25 * MIN_REQUESTS / (len(MODES) * with_input)))
    sent: Counter = Counter()
    failures: list[str] = []
    for operation in operations:
        for mode in MODES if takes_input(operation) else MODES[:1]:
            fuzz(server, operation, mode, examples, headers, sent, failures)

    summary = "\n".join(f"{count:5d}  {key}" for key, count in sorted(sent.items()))
    assert not failures, "\n\n".join(failures[:20]) + f"\n\n{len(failures)} failures\n{summary}"
    print(f"\n{sum(sent.values())} requests\n{summary}")
    assert sum(sent.values()) >= MIN_REQUESTS, summary
    assert {key: count for key, count in sent.items() if key[2] >= 500} == {}
    still_serving_and_training(server)
    return sent


def test_fuzzing_the_openapi_schema_finds_no_server_error(server: LiveServer) -> None:
    fuzz_every_operation(server, server.auth)


def test_fuzzing_as_a_stranger_meets_only_documented_refusals(limited: LiveServer) -> None:
    """Without the token: the presenter's routes answer 401 and the costly viewer routes 429
    once the burst is spent (both documented, so checked like any answer), never a 5xx."""
    sent = fuzz_every_operation(limited, {})
    by_status = Counter()
    for (label, _, status), count in sent.items():
        by_status[status] += count
        if status == 429:
            assert label.split()[1] in LIMITED_PATHS, f"{label} answered 429"
    assert by_status[429] > 0 and by_status[401] > 0, by_status


SEQUENCES = 60


def test_random_sequences_of_operations_find_no_server_error(server: LiveServer) -> None:
    """Requests that fit the schema, from every operation in random order: configs, then a
    step on them, a teaching step on a network that was just replaced, an explanation while
    it trains. No 5xx, every answer as documented, and the server trains on afterwards."""
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    cases = st.one_of([result.ok().as_strategy() for result in schema.get_all_operations()])
    sent: Counter = Counter()
    failures: list[str] = []

    @settings(
        max_examples=SEQUENCES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(sequence=st.lists(cases, min_size=2, max_size=15))
    def send(sequence: list[Any]) -> None:
        for position, case in enumerate(sequence, 1):
            response = case.call(base_url=server.url, headers=server.auth, timeout=120)
            sent[(case.operation.label, response.status_code)] += 1
            try:
                case.validate_response(response, checks=CHECKS)
            except Exception as error:
                where = f"request {position} of {[c.operation.label for c in sequence]}"
                failures.append(f"{where}: {error}")

    send()
    summary = "\n".join(f"{count:5d}  {key}" for key, count in sorted(sent.items()))
    print(f"\n{sum(sent.values())} requests in {SEQUENCES} sequences\n{summary}")
    assert not failures, "\n\n".join(failures[:20]) + f"\n\n{len(failures)} failures\n{summary}"
    still_serving_and_training(server)
