"""Who may do what: viewers read and classify, only the presenter changes the run."""

from __future__ import annotations

import asyncio
import base64
import io

import numpy as np
import pytest
import websockets
from live_server import LiveServer, connect
from PIL import Image

CONTROLS = [
    ("POST", "/api/run", {"json": {}}),
    ("PATCH", "/api/run", {"json": {"speed": 5}}),
    ("POST", "/api/run/start", {}),
    ("POST", "/api/run/pause", {}),
    ("POST", "/api/run/step", {}),
    ("POST", "/api/run/reset", {}),
    ("POST", "/api/checkpoint", {"content": b"x"}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), CONTROLS)
def test_controls_need_the_presenter_token(server: LiveServer, method, path, kwargs) -> None:
    before = server.http.get("/api/run").json()
    missing = server.http.request(method, path, **kwargs)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = server.http.request(method, path, headers={"Authorization": "Bearer nope"}, **kwargs)
    assert wrong.status_code == 403
    after = server.http.get("/api/run").json()
    assert (after["id"], after["status"], after["batch"]) == (
        before["id"],
        before["status"],
        before["batch"],
    )


def test_viewers_read_the_run_the_model_and_a_checkpoint(server: LiveServer) -> None:
    server.fresh_run(hidden=[12])
    assert server.http.get("/api/health").json() == {"status": "ok"}
    assert server.http.get("/api/run").json()["config"]["hidden"] == [12]
    model = server.http.get("/api/model").json()
    assert model["layer_sizes"] == [784, 12, 10]
    assert np.array(model["weights"][0]).shape == (12, 784)
    checkpoint = server.http.get("/api/checkpoint")
    assert checkpoint.status_code == 200
    assert checkpoint.content[:2] == b"PK"  # an .npz is a zip archive
    for page in ("/", "/draw"):
        assert server.http.get(page).status_code == 200


def test_a_checkpoint_round_trip_restores_the_weights(server: LiveServer) -> None:
    server.fresh_run(hidden=[10])
    server.ok("POST", "/api/run/step")
    saved_model = server.http.get("/api/model").json()
    saved = server.http.get("/api/checkpoint").content
    server.fresh_run(hidden=[20])
    loaded = server.ok(
        "POST",
        "/api/checkpoint",
        content=saved,
        headers={"content-type": "application/octet-stream"},
    )
    assert (loaded["status"], loaded["batch"], loaded["config"]["hidden"]) == ("paused", 1, [10])
    assert server.http.get("/api/model").json()["weights"] == saved_model["weights"]
    broken = server.control("POST", "/api/checkpoint", content=b"not a checkpoint")
    assert broken.status_code == 422


def probe_pixels(server: LiveServer) -> list[float]:
    async def first_snapshot() -> dict:
        stream = await connect(server)
        async with stream.connection:
            return await stream.until(lambda frame: frame["type"] == "snapshot")

    snapshot = asyncio.run(first_snapshot())
    codes = np.frombuffer(base64.b64decode(snapshot["probe"]["pixels"]), np.uint8)
    return (codes / 255).tolist()


def test_viewers_classify_pixels_and_pictures(server: LiveServer) -> None:
    server.fresh_run(hidden=[16, 16])
    pixels = probe_pixels(server)
    answer = server.http.post("/api/classify", json={"pixels": pixels})
    assert answer.status_code == 200
    result = answer.json()
    assert 0 <= result["digit"] <= 9
    assert len(result["probabilities"]) == 10
    assert abs(sum(result["probabilities"]) - 1) < 1e-3
    assert len(result["input"]) == 784
    assert [len(layer) for layer in result["activations"]] == [16, 16, 10]

    picture = Image.fromarray((np.array(pixels).reshape(28, 28) * 255).astype(np.uint8))
    picture = picture.resize((280, 280))
    png = io.BytesIO()
    picture.save(png, "PNG")
    drawn = server.http.post(
        "/api/classify", content=png.getvalue(), headers={"content-type": "image/png"}
    )
    assert drawn.status_code == 200
    assert len(drawn.json()["input"]) == 784


def test_classify_refuses_blank_and_unknown_input(server: LiveServer) -> None:
    blank = io.BytesIO()
    Image.new("L", (280, 280), 255).save(blank, "PNG")
    answer = server.http.post(
        "/api/classify", content=blank.getvalue(), headers={"content-type": "image/png"}
    )
    assert answer.status_code == 422
    assert "ink" in answer.text.lower() or "blank" in answer.text.lower()
    assert (
        server.http.post(
            "/api/classify", content=b"x", headers={"content-type": "text/plain"}
        ).status_code
        == 415
    )
    assert server.http.post("/api/classify", json={"pixels": [0.5] * 10}).status_code == 422
    too_big = server.http.post(
        "/api/classify", content=b"0" * (2 * 1024 * 1024 + 1), headers={"content-type": "image/png"}
    )
    assert too_big.status_code == 413
    assert server.http.get("/api/health").status_code == 200


def test_websocket_from_a_foreign_origin_is_refused(server: LiveServer) -> None:
    async def try_origins() -> None:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(server.ws_url, origin="http://evil.example")
        assert refused.value.response.status_code == 403
        stream = await connect(server, origin=f"http://127.0.0.1:{server.port}")
        await stream.connection.close()

    asyncio.run(try_origins())
