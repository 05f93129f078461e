"""The run under the presenter's control, watched over real websockets."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from live_server import LiveServer, connect, status_is


def test_lifecycle_idle_running_paused_step_reset_finished(server: LiveServer) -> None:
    run = server.fresh_run(epochs=1, batch_size=1000)  # 8 mini-batches on the sample
    assert (run["status"], run["batch"], run["batches_per_epoch"]) == ("idle", 0, 8)
    assert run["config"]["batch_size"] == 1000
    assert server.ok("POST", "/api/run/step")["status"] == "paused"
    assert server.http.get("/api/run").json()["batch"] == 1

    assert server.ok("POST", "/api/run/start")["status"] == "running"
    assert server.ok("POST", "/api/run/pause")["status"] == "paused"

    reset = server.ok("POST", "/api/run/reset")
    assert (reset["status"], reset["batch"]) == ("idle", 0)
    assert reset["id"] != run["id"]

    server.ok("PATCH", "/api/run", json={"speed": None})
    server.ok("POST", "/api/run/start")

    async def until_finished() -> dict:
        stream = await connect(server)
        async with stream.connection:
            if stream.frames[0]["run"]["status"] == "finished":
                return stream.frames[0]["run"]
            return (await stream.until(status_is("finished")))["run"]

    finished = asyncio.run(until_finished())
    assert (finished["epoch"], finished["batch"]) == (1, 8)
    assert finished["metrics"]["test_accuracy"] is not None
    assert server.control("POST", "/api/run/start").status_code == 409
    assert server.control("POST", "/api/run/step").status_code == 409


def test_every_batch_arrives_once_in_order_at_full_speed(server: LiveServer) -> None:
    run = server.fresh_run(epochs=2, batch_size=10)  # 1,600 mini-batches, as fast as possible
    server.ok("PATCH", "/api/run", json={"speed": None})
    total = 2 * run["batches_per_epoch"]

    async def watch() -> list:
        streams = [await connect(server) for _ in range(2)]
        server.ok("POST", "/api/run/start")
        for stream in streams:
            await stream.until(status_is("finished"))
            await stream.connection.close()
        return streams

    for stream in asyncio.run(watch()):
        assert stream.batch_indices(run["id"]) == list(range(total))
        types = [frame["type"] for frame in stream.frames]
        assert types.count("eval") == 2
        evals = [frame for frame in stream.frames if frame["type"] == "eval"]
        assert [frame["batch"] for frame in evals] == [total // 2 - 1, total - 1]
        before_first_eval = stream.frames[: types.index("eval")]
        assert max(stream.batch_indices(run["id"])[: len(before_first_eval)]) < total
        assert any(frame["type"] == "snapshot" for frame in stream.frames)


def test_pause_stops_the_stream_and_step_yields_exactly_one_batch(server: LiveServer) -> None:
    run = server.fresh_run(epochs=50)
    server.ok("PATCH", "/api/run", json={"speed": 200})

    async def watch() -> None:
        stream = await connect(server)
        server.ok("POST", "/api/run/start")
        await stream.until(lambda frame: frame["type"] == "batches")
        paused = server.ok("POST", "/api/run/pause")
        await stream.until(status_is("paused"))
        await stream.quiet_for(0.3)  # frames already on their way
        assert stream.batch_indices(run["id"]) == list(range(paused["batch"]))
        later = await stream.quiet_for(0.5)
        assert not [frame for frame in later if frame["type"] == "batches"]

        stepped = server.ok("POST", "/api/run/step")
        assert stepped["batch"] == paused["batch"] + 1
        await stream.until(lambda frame: frame["type"] == "batches")
        await stream.quiet_for(0.5)
        assert stream.batch_indices(run["id"]) == list(range(paused["batch"] + 1))
        snapshot = [frame for frame in stream.frames if frame["type"] == "snapshot"][-1]
        assert snapshot["batch"] == stepped["batch"]
        await stream.connection.close()

    asyncio.run(watch())


def test_live_changes_of_learning_rate_and_speed(server: LiveServer) -> None:
    server.fresh_run()
    changed = server.ok("PATCH", "/api/run", json={"lr": 0.5, "speed": 7.5})
    assert (changed["config"]["lr"], changed["speed"]) == (0.5, 7.5)
    assert server.ok("PATCH", "/api/run", json={"speed": None})["speed"] is None
    assert server.ok("POST", "/api/run/reset")["config"]["lr"] == 0.5


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"hidden": []}, "hidden"),
        ({"hidden": [16, 16, 16, 16, 16]}, "hidden"),
        ({"hidden": [513]}, "hidden"),
        ({"lr": 0}, "lr"),
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": 1001}, "epochs"),
        ({"activation": "softplus"}, "activation"),
        ({"hidden": "16,16"}, "hidden"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_config_validation_names_the_field(server: LiveServer, body: dict, field: str) -> None:
    before = server.http.get("/api/run").json()["id"]
    response = server.control("POST", "/api/run", json=body)
    assert response.status_code == 422
    assert response.json()["message"].startswith(field)
    assert server.http.get("/api/run").json()["id"] == before


def test_nan_learning_rate_is_refused(server: LiveServer) -> None:
    response = server.control(
        "PATCH", "/api/run", content=b'{"lr": NaN}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["message"].startswith("lr")


def test_config_change_during_steps(server: LiveServer) -> None:
    """New configs posted while mini-batches train land between two steps, never inside one."""
    server.fresh_run(hidden=[256, 256], batch_size=2000, epochs=20)
    server.ok("PATCH", "/api/run", json={"speed": None})
    server.ok("POST", "/api/run/start")
    with ThreadPoolExecutor(4) as pool:
        steps = [pool.submit(server.control, "POST", "/api/run/step") for _ in range(6)]
        configs = [
            pool.submit(server.control, "POST", "/api/run", json={"hidden": [units], "epochs": 3})
            for units in (8, 9, 10)
        ]
        answers = [future.result() for future in steps + configs]
    assert all(answer.status_code == 200 for answer in answers)
    final = server.http.get("/api/run").json()
    assert final["config"]["hidden"] in ([8], [9], [10])
    units = final["config"]["hidden"][0]
    model = server.http.get("/api/model").json()
    assert model["layer_sizes"] == [784, units, 10]
    assert len(model["weights"][0]) == units
    after = server.ok("POST", "/api/run/step")
    assert (after["id"], after["batch"]) == (final["id"], final["batch"] + 1)


def test_a_burst_of_control_calls(server: LiveServer) -> None:
    server.fresh_run(epochs=100)
    calls = [
        ("POST", "/api/run/start", {}),
        ("POST", "/api/run/pause", {}),
        ("POST", "/api/run/step", {}),
        ("PATCH", "/api/run", {"json": {"speed": 500}}),
        ("PATCH", "/api/run", {"json": {"lr": 1.5}}),
        ("GET", "/api/run", {}),
    ]
    lock = threading.Lock()
    codes: list[int] = []

    def fire(i: int) -> None:
        method, path, kwargs = calls[i % len(calls)]
        code = server.control(method, path, **kwargs).status_code
        with lock:
            codes.append(code)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(fire, range(300)))
    assert set(codes) == {200}
    assert server.ok("POST", "/api/run/pause")["status"] == "paused"
    batch = server.http.get("/api/run").json()["batch"]
    assert server.ok("POST", "/api/run/step")["batch"] == batch + 1


def test_a_diverging_run_stops_with_a_message(server: LiveServer) -> None:
    deep = {"hidden": [32, 32, 32, 32], "activation": "relu", "loss": "cross-entropy"}
    server.fresh_run(**deep, lr=100, batch_size=10, epochs=5)
    for _ in range(200):
        run = server.ok("POST", "/api/run/step")
        if run["status"] == "diverged":
            break
    assert run["status"] == "diverged"
    assert "learning rate" in run["message"]
    assert server.control("POST", "/api/run/start").status_code == 409
    assert server.ok("POST", "/api/run/reset")["status"] == "idle"
