"""Explain one example, follow the walk-through, teach with it: on a real server."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import numpy as np
import pytest
from live_server import LiveServer, connect

from engine.data.mnist import load_dataset
from engine.explain import COMPARISON_BATCH
from engine.network import Network
from server.frames import EXPLAIN_STEPS, dequantise
from server.routes.explain import ANSWERS_KEPT, KEY_DIGITS


def live_network(server: LiveServer) -> Network:
    """The server's current network, rebuilt from GET /api/model's full floats."""
    model = server.http.get("/api/model").json()
    network = Network(model["layer_sizes"], model["activation"], model["loss"])
    network.weights = [np.array(w, np.float32) for w in model["weights"]]
    network.biases = [np.array(b, np.float32) for b in model["biases"]]
    return network


def explained(server: LiveServer, **body: Any) -> dict[str, Any]:
    response = server.http.post("/api/explain", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def by_key(server: LiveServer, key: str) -> dict[str, Any]:
    response = server.http.get(f"/api/explain/{key}")
    assert response.status_code == 200, response.text
    return response.json()


def decode_pixels(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), np.uint8) / 255


def assert_close_to_quantised(quantised: dict[str, Any], exact: np.ndarray) -> None:
    """Within half a quantisation step (int8 scaled by the largest magnitude)."""
    assert quantised["shape"] == list(exact.shape)
    step = quantised["scale"] / 127
    np.testing.assert_allclose(dequantise(quantised), exact, rtol=0, atol=step * 0.501 + 1e-7)


def assert_close_to_rounded(values: list[float], exact: np.ndarray) -> None:
    """Four significant digits."""
    np.testing.assert_allclose(values, exact, rtol=6e-4, atol=1e-30)


@pytest.fixture
def paused_run(server: LiveServer) -> dict[str, Any]:
    """A fresh 16-16 run, trained for two mini-batches so the weights are not the seed's."""
    server.fresh_run(hidden=[16, 16])
    server.ok("POST", "/api/run/step")
    return server.ok("POST", "/api/run/step")


@pytest.mark.parametrize("loss", ["mse", "cross-entropy"])
def test_the_trace_is_the_engines_backward_pass(
    server: LiveServer, loss: str, no_user_data: Any
) -> None:
    server.fresh_run(hidden=[16, 12], loss=loss, activation="tanh")
    server.ok("POST", "/api/run/step")
    network = live_network(server)
    pixels = np.random.default_rng(3).random(784).astype(np.float32)
    answer = explained(server, pixels=pixels.tolist(), label=4)

    backward = network.backward(pixels[None], np.array([4]))
    assert answer["cost"] == pytest.approx(backward.cost, rel=1e-5)
    assert answer["label"] == 4 and answer["target"] == [0, 0, 0, 0, 1, 0, 0, 0, 0, 0]
    assert answer["layer_sizes"] == [784, 16, 12, 10] and answer["loss"] == loss
    assert answer["example"]["index"] is None
    np.testing.assert_allclose(decode_pixels(answer["example"]["pixels"]), pixels, atol=1 / 510)
    forward = network.forward(pixels[None])
    for layer, trace in enumerate(answer["layers"]):
        np.testing.assert_allclose(
            trace["activations"], forward.activations[layer + 1][0], atol=6e-5
        )
        # A nudge is the desired change, −dC/da.
        assert_close_to_rounded(trace["nudges"], -backward.activation_gradients[layer][0])
        assert_close_to_rounded(trace["deltas"], backward.deltas[layer][0])
        assert_close_to_rounded(trace["bias_gradient"], backward.biases[layer])
        assert_close_to_quantised(trace["weight_gradient"], backward.weights[layer])
    hidden = answer["layers"][1]
    assert len(hidden["contributions"]) == 12 and len(hidden["contributions"][0]) == 5
    strongest = hidden["contributions"][0][0]
    term = network.weights[2][strongest["neuron"], 0] * backward.deltas[2][0, strongest["neuron"]]
    assert strongest["nudge"] == pytest.approx(-term, rel=1e-3)
    assert answer["prediction"] == int(np.argmax(forward.output[0]))

    # Beside it: the mean gradient of the first 100 training digits of the same data.
    dataset = load_dataset()
    images = dataset.train_images[:COMPARISON_BATCH]
    average = network.backward(images, dataset.train_labels[:COMPARISON_BATCH])
    batch = answer["batch_average"]
    assert batch["size"] == COMPARISON_BATCH
    assert batch["cost"] == pytest.approx(average.cost, rel=1e-5)
    assert_close_to_quantised(batch["first_layer"], average.weights[0])
    assert_close_to_quantised(batch["output_layer"], average.weights[-1])
    for rounded, exact in zip(batch["bias_gradients"], average.biases):
        assert_close_to_rounded(rounded, exact)
    assert_close_to_quantised(answer["output_weights"], network.weights[-1])


def test_a_test_digit_by_index(server: LiveServer, paused_run: dict[str, Any]) -> None:
    answer = explained(server, index=7)
    example = answer["example"]
    assert example["index"] == 7 and answer["label"] == example["label"]
    assert (answer["run"], answer["batch"]) == (paused_run["id"], 2)
    # The same digit sent as pixels is the same example.
    again = explained(
        server, pixels=decode_pixels(example["pixels"]).tolist(), label=answer["label"]
    )
    assert again["cost"] == pytest.approx(answer["cost"], rel=1e-6)


def test_a_trace_is_fetched_again_by_its_key(
    server: LiveServer, paused_run: dict[str, Any]
) -> None:
    answer = explained(server, index=7)
    key = answer["key"]
    assert len(key) == KEY_DIGITS and int(key, 16) >= 0
    assert by_key(server, key) == answer
    assert explained(server, index=7)["key"] == key, "the same example and weights: the same key"
    assert explained(server, index=8)["key"] != key
    drawing = {"pixels": decode_pixels(answer["example"]["pixels"]).tolist(), "label": 1}
    assert explained(server, **drawing)["key"] != key, "another label is another example"
    server.ok("POST", "/api/run/step")
    trained = explained(server, index=7)
    assert trained["key"] != key and trained["batch"] == answer["batch"] + 1
    assert by_key(server, key) == answer, "an older trace is kept while it is among the latest"


def test_an_unknown_or_forgotten_key_is_a_404(
    server: LiveServer, paused_run: dict[str, Any]
) -> None:
    first = explained(server, index=0)["key"]
    for index in range(1, ANSWERS_KEPT + 1):
        explained(server, index=index)
    for key in (first, "0" * KEY_DIGITS):
        response = server.http.get(f"/api/explain/{key}")
        assert response.status_code == 404, response.text
        assert error_message(response).startswith("key"), error_message(response)


@pytest.mark.parametrize(
    "key",
    ["step", "0" * (KEY_DIGITS - 1), "0" * (KEY_DIGITS + 1), "A" * KEY_DIGITS, "g" * KEY_DIGITS],
)
def test_a_malformed_key_is_a_422(server: LiveServer, key: str) -> None:
    response = server.http.get(f"/api/explain/{key}")
    assert response.status_code == 422, response.text
    assert error_message(response).startswith("key"), error_message(response)


def test_teaching_lowers_the_examples_cost_and_every_viewer_sees_it(
    server: LiveServer, paused_run: dict[str, Any]
) -> None:
    before = explained(server, index=3)

    async def teach_and_watch() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        stream = await connect(server)
        async with stream.connection:
            # The paused run's own snapshot: the hello may come a broadcaster tick before the
            # second step's snapshot has reached it, and then follows the first step's.
            await stream.until(
                lambda frame: frame["type"] == "snapshot" and frame["batch"] == paused_run["batch"]
            )
            taught = await asyncio.to_thread(
                server.ok, "POST", "/api/teach", json={"index": 3, "lr": 0.5}
            )
            # The worker's snapshot and the route's explain frame, in either order.
            seen: dict[str, dict[str, Any]] = {}
            while len(seen) < 2:
                frame = await stream.next()
                if frame["type"] == "snapshot" or (frame["type"] == "explain" and frame["lesson"]):
                    seen[frame["type"]] = frame
            return taught, [seen["explain"], seen["snapshot"]]

    taught, (explain, snapshot) = asyncio.run(teach_and_watch())
    assert taught["cost_before"] == pytest.approx(before["cost"], rel=1e-5)
    assert taught["cost_after"] < taught["cost_before"]
    after = explained(server, index=3)
    assert after["cost"] == pytest.approx(taught["cost_after"], rel=1e-5)
    assert taught["run"]["status"] == "paused" and taught["run"]["batch"] == 2

    assert explain["step"] == EXPLAIN_STEPS and explain["example"]["index"] == 3
    assert explain["lesson"]["cost_after"] == taught["cost_after"]
    assert explain["key"] == after["key"] != before["key"], "the trace with the taught weights"
    assert explain["lesson"]["lr"] == 0.5
    assert len(explain["lesson"]["output_after"]) == 10
    # The snapshot after the step carries the taught weights.
    network = live_network(server)
    assert_close_to_quantised(snapshot["weights"][2], network.weights[2])


def explain_frame_at(step: int | None) -> Any:
    return lambda frame: frame["type"] == "explain" and frame["step"] == step


def test_viewers_follow_the_walk_through(server: LiveServer, paused_run: dict[str, Any]) -> None:
    async def follow() -> tuple[dict[str, Any], ...]:
        stream = await connect(server)
        async with stream.connection:
            await asyncio.to_thread(
                server.ok, "POST", "/api/explain/step", json={"index": 5, "step": 3}
            )
            third = await stream.until(explain_frame_at(3))
            late = await connect(server)  # a viewer who arrives now lands on the same step
            async with late.connection:
                joined = await late.until(lambda frame: frame["type"] == "explain")
            drawing = {"pixels": [0.0] * 392 + [1.0] * 392, "label": 8, "step": 2}
            await asyncio.to_thread(server.ok, "POST", "/api/explain/step", json=drawing)
            second = await stream.until(explain_frame_at(2))
            await asyncio.to_thread(server.ok, "POST", "/api/explain/end")
            ended = await stream.until(explain_frame_at(None))
            return third, joined, second, ended

    third, joined, second, ended = asyncio.run(follow())
    assert (third["step"], third["example"]["index"], third["run"]) == (3, 5, paused_run["id"])
    assert third["neuron"] == third["example"]["label"] and third["lesson"] is None
    assert joined == third
    # A viewer fetches the presenter's trace by the frame's key, without sending the example.
    followed = by_key(server, third["key"])
    assert followed["example"]["index"] == 5 and followed == explained(server, index=5)
    assert (second["step"], second["example"]["index"], second["example"]["label"]) == (2, None, 8)
    assert decode_pixels(second["example"]["pixels"]).sum() == 392
    drawn = by_key(server, second["key"])
    assert (drawn["example"]["index"], drawn["label"]) == (None, 8)
    assert (ended["step"], ended["example"], ended["key"]) == (None, None, None)


def error_message(response: Any) -> str:
    body = response.json()
    return body.get("message") or body["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"index": 1_000_000}, "index"),
        ({"index": -1}, "index"),
        ({"index": "3"}, "index"),
        ({"pixels": [0.5] * 10, "label": 3}, "pixels"),
        ({"pixels": [0.5] * 785, "label": 3}, "pixels"),
        ({"pixels": [0.5] * 783 + [2], "label": 3}, "pixels"),
        ({"pixels": [0.5] * 784}, "label"),
        ({"pixels": [0.5] * 784, "label": 10}, "label"),
        ({"pixels": [0.5] * 784, "label": -1}, "label"),
        ({"index": 2, "pixels": [0.5] * 784, "label": 1}, "pixels"),
        ({}, "pixels"),
    ],
)
def test_bad_examples_get_a_422_naming_the_field(
    server: LiveServer, body: dict[str, Any], field: str
) -> None:
    for path, extra in (("/api/explain", {}), ("/api/teach", {"lr": 0.1})):
        response = server.control("POST", path, json={**body, **extra})
        assert response.status_code == 422, response.text
        assert error_message(response).startswith(field), error_message(response)
    assert server.http.get("/api/health").status_code == 200


@pytest.mark.parametrize("lr", [0, -1, 10.5, None, "fast"])
def test_teach_needs_a_sensible_learning_rate(server: LiveServer, lr: Any) -> None:
    body = {"index": 0} if lr is None else {"index": 0, "lr": lr}
    response = server.control("POST", "/api/teach", json=body)
    assert response.status_code == 422
    assert error_message(response).startswith("lr")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/teach", {"index": 0, "lr": 0.5}),
        ("/api/explain/step", {"index": 0, "step": 1}),
        ("/api/explain/end", None),
    ],
)
def test_only_the_presenter_teaches_and_leads(
    server: LiveServer, paused_run: dict[str, Any], path: str, body: Any
) -> None:
    weights = server.http.get("/api/model").json()["weights"]
    assert server.http.post(path, json=body).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert server.http.post(path, json=body, headers=wrong).status_code == 403
    assert server.http.get("/api/model").json()["weights"] == weights


def test_a_taught_step_is_saved_with_the_run(server_factory: Any, tmp_path: Any) -> None:
    first = server_factory(tmp_path / "kept")
    first.fresh_run(hidden=[16])
    taught = first.ok("POST", "/api/teach", json={"index": 1, "lr": 1.0})
    first.stop()  # a server that stops saves the run, if it changed since the last save
    again = server_factory(tmp_path / "kept")
    assert explained(again, index=1)["cost"] == pytest.approx(taught["cost_after"], rel=1e-5)
