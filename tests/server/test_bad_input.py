"""Bad input against a real server: each kind gets a 4xx whose message names the field or the
problem, and afterwards the server still serves and the run it was training still trains."""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import os
import random
import socket
import struct
import threading
import time
import zipfile
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest
import websockets
from live_server import LiveServer, connect
from PIL import Image

JSON = {"content-type": "application/json"}
BODY_LIMIT = 2 * 1024 * 1024
CHECKPOINT_LIMIT = 32 * 1024 * 1024
MAX_SIDE = 4096
PATIENCE = 30.0  # seconds a live server gets to show it is still alive (never a speed test)
VIEWER_ROUTES = {("post", "/api/classify"), ("post", "/api/explain"), ("post", "/api/gallery")}
# Reads only the presenter may make: the gallery's exports name the room's drawings.
PRESENTER_READS = {("get", "/api/gallery/export.csv"), ("get", "/api/gallery/export.npz")}


@pytest.fixture
def run(server: LiveServer) -> dict[str, Any]:
    """A run training at a steady 40 mini-batches a second that will not finish in this module."""
    view = server.fresh_run(hidden=[16], batch_size=50, epochs=1000)
    server.ok("PATCH", "/api/run", json={"speed": 40})
    server.ok("POST", "/api/run/start")
    return view


def still_training(server: LiveServer, run: dict[str, Any]) -> None:
    """The server answers, and the same run is still running: its batch count keeps rising."""
    assert server.http.get("/api/health").json() == {"status": "ok"}
    first = server.http.get("/api/run").json()
    assert (first["id"], first["status"]) == (run["id"], "running"), first
    deadline = time.monotonic() + PATIENCE
    while (now := server.http.get("/api/run").json())["batch"] <= first["batch"]:
        assert time.monotonic() < deadline, f"no mini-batch trained in {PATIENCE} s: {now}"
        time.sleep(0.02)
    assert (now["id"], now["status"]) == (run["id"], "running"), now


def message(response: httpx.Response) -> str:
    """The sentence the server gave: ``message`` for validation errors, else ``detail``."""
    body = response.json()
    text = body.get("message") or body["detail"]
    assert isinstance(text, str), body
    return text


def refused(response: httpx.Response, status: int, *words: str) -> str:
    """Assert ``status`` and that the message holds every one of ``words``; return it."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    text = message(response)
    for word in words:
        assert word.lower() in text.lower(), (word, text)
    return text


def post_json(server: LiveServer, path: str, text: str | bytes, method: str = "POST") -> Any:
    """A presenter request with ``text`` as its raw JSON body (Python's json would refuse NaN)."""
    return server.control(method, path, content=text, headers=JSON)


# --- JSON bodies ---------------------------------------------------------------------------

MALFORMED_JSON = {
    "cut short": '{"hidden": [16',
    "unquoted key": "{lr: 1}",
    "trailing comma": '{"lr": 1,}',
    "single quotes": "{'lr': 1}",
    "not utf-8": b'{"activation": "\xff"}',
    "nested 100k deep": "[" * 100_000 + "]" * 100_000,
    "5000-digit number": '{"seed": ' + "9" * 5000 + "}",
}


@pytest.mark.parametrize("body", MALFORMED_JSON.values(), ids=MALFORMED_JSON.keys())
@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/api/run"), ("PATCH", "/api/run"), ("POST", "/api/classify")]
)
def test_malformed_json_is_422_saying_so(server: LiveServer, run, method, path, body) -> None:
    response = post_json(server, path, body, method)
    refused(response, 422, "body", "not valid JSON")
    still_training(server, run)


@pytest.mark.parametrize(
    ("method", "body", "field"),
    [
        ("POST", {"lr": "0.1"}, "lr"),
        ("POST", {"hidden": "16,16"}, "hidden"),
        ("POST", {"hidden": [16.5]}, "hidden.0"),
        ("POST", {"hidden": [16, None]}, "hidden.1"),
        ("POST", {"batch_size": 10.0}, "batch_size"),
        ("POST", {"batch_size": True}, "batch_size"),
        ("POST", {"epochs": "10"}, "epochs"),
        ("POST", {"seed": None}, "seed"),
        ("POST", {"activation": 1}, "activation"),
        ("POST", {"loss": ["mse"]}, "loss"),
        ("POST", {"optimizer": {}}, "optimizer"),
        ("POST", {"weight_decay": "none"}, "weight_decay"),
        ("POST", [16, 16], "body"),
        ("POST", None, "body"),
        ("POST", "adam", "body"),
        ("PATCH", {"lr": "fast"}, "lr"),
        ("PATCH", {"lr": [1]}, "lr"),
        ("PATCH", {"lr": None}, "lr"),
        ("PATCH", {"speed": "fast"}, "speed"),
        ("PATCH", {"speed": True}, "speed"),
        ("PATCH", [], "body"),
    ],
)
def test_wrong_types_are_422_naming_the_field(server: LiveServer, run, method, body, field):
    response = post_json(server, "/api/run", json.dumps(body), method)
    text = refused(response, 422)
    assert text.startswith(f"{field}:"), text
    still_training(server, run)


@pytest.mark.parametrize(
    ("path", "method", "body", "field"),
    [
        ("/api/classify", "POST", {}, "pixels"),
        ("/api/classify", "POST", {"pixel": [0.0] * 784}, "pixels"),
        ("/api/classify", "POST", [0.0] * 784, "pixels"),
        ("/api/run", "PATCH", {"learning_rate": 0.1}, "learning_rate"),
        ("/api/run", "POST", {"layers": [16]}, "layers"),
    ],
)
def test_missing_and_unknown_fields_are_named(server: LiveServer, run, path, method, body, field):
    text = refused(server.control(method, path, json=body), 422)
    assert text.startswith(f"{field}:"), text
    still_training(server, run)


def test_an_empty_body_where_a_config_is_due_is_422(server: LiveServer, run) -> None:
    refused(post_json(server, "/api/run", b""), 422, "body")
    still_training(server, run)


OUT_OF_RANGE = [
    ({"hidden": []}, "hidden"),
    ({"hidden": [16] * 5}, "hidden"),
    ({"hidden": [0]}, "hidden.0"),
    ({"hidden": [-16]}, "hidden.0"),
    ({"hidden": [16, 513]}, "hidden.1"),
    ({"activation": "softplus"}, "activation"),
    ({"loss": "hinge"}, "loss"),
    ({"optimizer": "rmsprop"}, "optimizer"),
    ({"lr": 0}, "lr"),
    ({"lr": -1.0}, "lr"),
    ({"lr": 100.5}, "lr"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 60_001}, "batch_size"),
    ({"epochs": 0}, "epochs"),
    ({"epochs": 1001}, "epochs"),
    ({"epochs": 10**30}, "epochs"),
    ({"seed": -1}, "seed"),
    ({"seed": 2**32}, "seed"),
    ({"weight_decay": -0.1}, "weight_decay"),
    ({"weight_decay": 1.5}, "weight_decay"),
    ({"lr_schedule": "step"}, "lr_schedule"),
    ({"augment_shift": -1}, "augment_shift"),
    ({"augment_shift": 5}, "augment_shift"),
]


@pytest.mark.parametrize(("body", "field"), OUT_OF_RANGE, ids=[str(b) for b, _ in OUT_OF_RANGE])
def test_out_of_range_configs_are_422_naming_the_field(server: LiveServer, run, body, field):
    text = refused(server.control("POST", "/api/run", json=body), 422)
    assert text.startswith(f"{field}:"), text
    still_training(server, run)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"lr": 0}, "lr"),
        ({"lr": -0.5}, "lr"),
        ({"lr": 101}, "lr"),
        ({"speed": 0}, "speed"),
        ({"speed": -5}, "speed"),
        ({"speed": 0.05}, "speed"),
        ({"speed": 1e-300}, "speed"),  # would have the worker sleep past the clock's range
        ({"speed": 5e-324}, "speed"),
        ({"speed": 10_001}, "speed"),
    ],
)
def test_out_of_range_live_changes_are_422_and_change_nothing(server: LiveServer, run, body, field):
    before = server.http.get("/api/run").json()
    text = refused(server.control("PATCH", "/api/run", json=body), 422)
    assert text.startswith(f"{field}:"), text
    after = server.http.get("/api/run").json()
    assert (after["config"]["lr"], after["speed"]) == (before["config"]["lr"], before["speed"])
    still_training(server, run)


NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400"]


@pytest.mark.parametrize("number", NON_FINITE)
@pytest.mark.parametrize(
    ("method", "template", "field"),
    [
        ("POST", '{"lr": %s}', "lr"),
        ("POST", '{"weight_decay": %s}', "weight_decay"),
        ("POST", '{"batch_size": %s}', "batch_size"),
        ("POST", '{"epochs": %s}', "epochs"),
        ("POST", '{"seed": %s}', "seed"),
        ("POST", '{"augment_shift": %s}', "augment_shift"),
        ("POST", '{"hidden": [16, %s]}', "hidden.1"),
        ("PATCH", '{"lr": %s}', "lr"),
        ("PATCH", '{"speed": %s}', "speed"),
    ],
)
def test_nan_and_infinity_are_refused_naming_the_field(
    server: LiveServer, run, method, template, field, number
) -> None:
    text = refused(post_json(server, "/api/run", template % number, method), 422)
    assert text.startswith(f"{field}:"), text
    still_training(server, run)


@pytest.mark.parametrize("number", NON_FINITE)
def test_nan_and_infinity_pixels_are_refused(server: LiveServer, run, number) -> None:
    pixels = ", ".join(["0.5"] * 783 + [number])
    refused(post_json(server, "/api/classify", f'{{"pixels": [{pixels}]}}'), 422, "pixels")
    still_training(server, run)


# --- bodies too large ----------------------------------------------------------------------


def raw_post(server: LiveServer, path: str, content_type: str, framing: str) -> tuple[int, str]:
    """Start sending a 50 MB body and read the answer *without* sending the rest.

    Chunked, the server only learns the size by counting, so a little over the limit is sent:
    a server that buffered whole bodies before checking would never answer. With a declared
    Content-Length it can refuse at once, so only the first 64 kB are sent.
    """
    total = 50 * 1024 * 1024
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}"]
    head += [f"Content-Type: {content_type}", f"Authorization: Bearer {server.token}"]
    head += ["Transfer-Encoding: chunked"] if framing == "chunked" else [f"Content-Length: {total}"]
    chunk = b"0" * 65536
    limit = CHECKPOINT_LIMIT if path == "/api/checkpoint" else BODY_LIMIT
    chunks = limit // len(chunk) + 2 if framing == "chunked" else 1
    with socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE) as connection:
        connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        for _ in range(chunks):
            framed = b"%x\r\n%s\r\n" % (len(chunk), chunk) if framing == "chunked" else chunk
            try:
                connection.sendall(framed)
            except OSError:  # the server answered and closed while we were still sending
                break
        answer = http.client.HTTPResponse(connection)
        answer.begin()
        return answer.status, answer.read().decode()


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
@pytest.mark.parametrize(
    ("path", "content_type", "limit"),
    [
        ("/api/run", "application/json", BODY_LIMIT),
        ("/api/classify", "application/json", BODY_LIMIT),
        ("/api/classify", "image/png", BODY_LIMIT),
        ("/api/checkpoint", "application/octet-stream", CHECKPOINT_LIMIT),
    ],
)
def test_bodies_over_the_limit_are_413_before_they_end(
    server: LiveServer, run, path, content_type, limit, framing
) -> None:
    status, text = raw_post(server, path, content_type, framing)
    assert status == 413, text
    if framing == "chunked":
        assert json.loads(text) == {"detail": f"body: larger than the limit of {limit:,} bytes"}
    else:
        # Starlette answers a declared size itself, before any route or handler runs.
        assert text == "Content Too Large"
    still_training(server, run)


def resident_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_fifty_megabyte_streams_do_not_grow_the_server(server: LiveServer, run) -> None:
    """Whole 50 MB chunked bodies, sent to the end: if the server kept them, it would grow."""

    def fifty_megabytes() -> Iterator[bytes]:
        chunk = b"7" * 65536
        for _ in range(800):
            yield chunk

    before = resident_kb(server.process.pid)
    for path, kind in [("/api/run", "application/json"), ("/api/classify", "image/png")] * 2:
        response = server.control(
            "POST", path, content=fifty_megabytes(), headers={"content-type": kind}
        )
        refused(response, 413, "body", f"{BODY_LIMIT:,} bytes")
    grown_mb = (resident_kb(server.process.pid) - before) / 1024
    assert grown_mb < 25, f"the server grew by {grown_mb:.0f} MB"
    still_training(server, run)


# --- pictures ------------------------------------------------------------------------------


def encoded(image: Image.Image, image_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format)
    return buffer.getvalue()


def png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_bomb(width: int, height: int) -> bytes:
    """A complete black-and-white PNG of ``width`` x ``height`` zeros: tens of kilobytes that
    decode to ``width * height`` pixels (400 million for 20000 x 20000)."""
    row = bytes(1 + (width + 7) // 8)
    squeeze = zlib.compressobj(9)
    data = b"".join(squeeze.compress(row) for _ in range(height)) + squeeze.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    ihdr, idat, iend = png_chunk(b"IHDR", header), png_chunk(b"IDAT", data), png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + ihdr + idat + iend


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real 16x16 JPEG whose frame header claims ``width`` x ``height``."""
    body = bytearray(encoded(Image.new("L", (16, 16), 255), "JPEG"))
    frame = body.index(b"\xff\xc0")
    body[frame + 5 : frame + 9] = struct.pack(">HH", height, width)
    return bytes(body)


def classify(server: LiveServer, body: bytes, content_type: str | None) -> httpx.Response:
    headers = {"content-type": content_type} if content_type is not None else {}
    return server.http.post("/api/classify", content=body, headers=headers)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (png_bomb(20_000, 20_000), "image/png"),
        (png_bomb(MAX_SIDE + 1, 8), "image/png"),
        (png_bomb(8, MAX_SIDE + 1), "image/png"),
        (jpeg_claiming(5000, 5000), "image/jpeg"),
        (jpeg_claiming(65_000, 65_000), "image/jpeg"),
    ],
    ids=["png 20000x20000 bomb", "png 4097 wide", "png 4097 tall", "jpeg 5000", "jpeg 65000"],
)
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_pictures_over_4096_pixels_a_side_are_413(server: LiveServer, run, body, content_type):
    assert len(body) < 100_000
    refused(classify(server, body, content_type), 413, f"{MAX_SIDE}x{MAX_SIDE}")
    still_training(server, run)


def test_a_4096_pixel_square_is_decoded(server: LiveServer, run) -> None:
    """The limit itself is allowed (it is blank, so the answer says that)."""
    refused(classify(server, png_bomb(MAX_SIDE, MAX_SIDE), "image/png"), 422, "blank")
    still_training(server, run)


NOT_PICTURES = {
    "text": b"hello, I am not a picture",
    "json": b'{"pixels": [0, 0, 0]}',
    "gif": encoded(Image.new("L", (28, 28), 0), "GIF"),
    "bmp": encoded(Image.new("L", (28, 28), 0), "BMP"),
    "pdf": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n",
    "png cut short": encoded(Image.effect_noise((64, 64), 60))[:200],
    "png header only": b"\x89PNG\r\n\x1a\n",
    "empty": b"",
}


@pytest.mark.parametrize("content_type", ["image/png", "image/jpeg", "image/webp"])
@pytest.mark.parametrize("body", NOT_PICTURES.values(), ids=NOT_PICTURES.keys())
def test_non_images_with_an_image_type_are_422(server: LiveServer, run, body, content_type):
    refused(classify(server, body, content_type), 422, "image")
    still_training(server, run)


@pytest.mark.parametrize(
    "content_type",
    [
        "image/gif",
        "image/svg+xml",
        "image/bmp",
        "text/plain",
        "application/xml",
        "application/octet-stream",
        "multipart/form-data; boundary=x",
        None,
    ],
)
def test_unknown_types_are_415_naming_the_type(server: LiveServer, run, content_type) -> None:
    body = encoded(Image.new("L", (28, 28), 0))
    shown = content_type.split(";")[0] if content_type else "missing"
    refused(classify(server, body, content_type), 415, shown, "not supported")
    still_training(server, run)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_configs_in_another_type_than_json_are_415(server: LiveServer, run, content_type) -> None:
    response = server.control(
        "POST", "/api/run", content=b'{"hidden": [8]}', headers={"content-type": content_type}
    )
    refused(response, 415, content_type, "application/json")
    still_training(server, run)


BLANK_PICTURES = {
    "1x1 black": (Image.new("L", (1, 1), 0), "PNG"),
    "1x1 white": (Image.new("L", (1, 1), 255), "PNG"),
    "1x1 transparent": (Image.new("RGBA", (1, 1), (0, 0, 0, 0)), "PNG"),
    "white page": (Image.new("L", (280, 280), 255), "PNG"),
    "black page": (Image.new("L", (280, 280), 0), "PNG"),
    "grey page": (Image.new("RGB", (300, 200), (128, 128, 128)), "JPEG"),
    "transparent canvas": (Image.new("RGBA", (280, 280), (0, 0, 0, 0)), "PNG"),
    "white webp": (Image.new("RGB", (64, 64), (255, 255, 255)), "WEBP"),
}


@pytest.mark.parametrize(("image", "image_format"), BLANK_PICTURES.values(), ids=BLANK_PICTURES)
def test_tiny_and_blank_pictures_are_422_blank(server: LiveServer, run, image, image_format):
    body = encoded(image, image_format)
    refused(classify(server, body, f"image/{image_format.lower()}"), 422, "blank")
    still_training(server, run)


@pytest.mark.parametrize(
    ("pixels", "problem"),
    [
        ([], "784"),
        ([0.5] * 783, "784"),
        ([0.5] * 785, "784"),
        ([0.5] * 1568, "784"),
        ([[0.5] * 28] * 28, "784"),
        ([0.5] * 783 + [-0.01], "between 0 and 1"),
        ([0.5] * 783 + [1.01], "between 0 and 1"),
        ([255] * 784, "between 0 and 1"),
        ([0.5] * 783 + ["0.5"], "number"),
        ([0.5] * 783 + [None], "number"),
        ([True] * 784, "number"),
        ("0.5" * 784, "list"),
        ({"0": 0.5}, "list"),
    ],
    ids=[
        "empty",
        "783",
        "785",
        "1568",
        "28x28 nested",
        "below 0",
        "above 1",
        "0..255",
        "string",
        "null",
        "booleans",
        "a string",
        "an object",
    ],
)
def test_bad_pixel_arrays_are_422_naming_pixels(server: LiveServer, run, pixels, problem) -> None:
    text = refused(server.http.post("/api/classify", json={"pixels": pixels}), 422, problem)
    assert text.startswith("pixels:"), text
    still_training(server, run)


# --- websockets ----------------------------------------------------------------------------


def test_websocket_clients_that_misbehave_and_vanish(server: LiveServer, run) -> None:
    """Clients that send text, binary, too much or nothing, then vanish without a goodbye:
    a reading client sees the viewer count rise and return, and training never stops."""

    def viewers_are(count: int) -> Any:
        return lambda frame: frame["type"] == "status" and frame["viewers"] == count

    async def scenario() -> None:
        watcher = await connect(server)
        if watcher.frames[0]["viewers"] != 1:  # the hello's count holds until a status frame
            await watcher.until(viewers_are(1))
        talker = await websockets.connect(server.ws_url)
        await talker.send("hello server")
        await talker.send("{not json")
        chatter = await websockets.connect(server.ws_url)
        for index in range(300):
            await chatter.send(f"message {index}")
        binary = await websockets.connect(server.ws_url)
        await binary.send(bytes(range(256)) * 16)
        silent = await websockets.connect(server.ws_url, max_queue=1)
        oversize = await websockets.connect(server.ws_url, max_size=2**24)
        await watcher.until(viewers_are(6))

        await oversize.send("x" * (1024 * 1024))  # over the server's message limit
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(oversize.recv(), PATIENCE)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        half_open = socket.create_connection(("127.0.0.1", server.port))
        half_open.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websock")
        for client in (talker, chatter, binary, silent):
            client.transport.abort()  # gone without a closing handshake
        half_open.close()
        await watcher.until(viewers_are(1))
        frames = await watcher.quiet_for(0.5)
        assert any(frame["type"] == "batches" for frame in frames)
        await watcher.connection.close()

    asyncio.run(scenario())
    still_training(server, run)


# --- control calls -------------------------------------------------------------------------


def test_a_burst_of_control_calls_from_many_clients(server: LiveServer, run) -> None:
    """Four hundred calls from eight clients at once, good and bad interleaved: nothing
    fails with a 5xx, the good ones succeed, and the run ends in a consistent state."""
    good = [
        ("POST", "/api/run/start", {}),
        ("POST", "/api/run/pause", {}),
        ("POST", "/api/run/step", {}),
        ("PATCH", "/api/run", {"json": {"lr": 0.5}}),
        ("PATCH", "/api/run", {"json": {"speed": 200}}),
        ("PATCH", "/api/run", {"json": {"speed": None}}),
        ("POST", "/api/run", {"json": {"hidden": [12], "batch_size": 100, "epochs": 1000}}),
        ("POST", "/api/run/reset", {}),
        ("GET", "/api/run", {}),
        ("GET", "/api/model", {}),
    ]
    bad = [
        ("PATCH", "/api/run", {"json": {"lr": -1}}),
        ("POST", "/api/run", {"json": {"hidden": [0]}}),
        ("POST", "/api/run", {"content": b"{", "headers": JSON}),
        ("POST", "/api/classify", {"json": {"pixels": [2.0] * 784}}),
    ]
    calls = [*good, *bad]
    order = list(range(400))
    random.Random(3).shuffle(order)
    results: list[tuple[str, int]] = []
    lock = threading.Lock()

    def client(share: list[int]) -> None:
        with httpx.Client(base_url=server.url, headers=server.auth, timeout=60) as http:
            for index in share:
                method, path, kwargs = calls[index % len(calls)]
                status = http.request(method, path, **kwargs).status_code
                expected = 422 if (method, path, kwargs) in bad else 200
                with lock:
                    results.append((f"{method} {path} {kwargs}", status - expected))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(client, [order[i::8] for i in range(8)]))
    assert len(results) == 400
    assert [call for call, off in results if off] == []

    paused = server.ok("POST", "/api/run/pause")
    config = paused["config"]
    model = server.http.get("/api/model").json()
    assert model["layer_sizes"] == [784, *config["hidden"], 10]
    assert paused["examples_seen"] == paused["batch"] * config["batch_size"]
    stepped = server.ok("POST", "/api/run/step")
    assert (stepped["id"], stepped["batch"]) == (paused["id"], paused["batch"] + 1)
    server.ok("PATCH", "/api/run", json={"speed": 40})
    server.ok("POST", "/api/run/start")
    still_training(server, stepped)


def test_config_changes_during_steps_never_tear_a_read(server: LiveServer) -> None:
    """New configs land between two mini-batches of a slow network training at full speed;
    every classification answered meanwhile comes from one whole network."""
    sizes = {8: [8], 9: [9, 9], 10: [10, 10, 10]}
    server.fresh_run(hidden=[256, 256], batch_size=2000, epochs=1000)
    server.ok("PATCH", "/api/run", json={"speed": None})
    server.ok("POST", "/api/run/start")
    pixels = {"pixels": [0.0] * 392 + [1.0] * 392}
    with ThreadPoolExecutor(6) as pool:
        changes = [
            pool.submit(server.control, "POST", "/api/run", json={"hidden": hidden, "epochs": 500})
            for hidden in sizes.values()
        ]
        changes += [pool.submit(server.control, "POST", "/api/run/step") for _ in range(4)]
        changes += [pool.submit(server.control, "PATCH", "/api/run", json={"lr": 0.1})]
        reads = [pool.submit(server.http.post, "/api/classify", json=pixels) for _ in range(20)]
        changed = [future.result() for future in changes]
        answers = [future.result() for future in reads]
    assert [response.status_code for response in changed + answers] == [200] * 28
    allowed = [[256, 256, 10]] + [[*hidden, 10] for hidden in sizes.values()]
    for answer in answers:
        assert [len(layer) for layer in answer.json()["activations"]] in allowed
    final = server.http.get("/api/run").json()
    assert final["config"]["hidden"] in list(sizes.values())
    model = server.http.get("/api/model").json()
    assert model["layer_sizes"] == [784, *final["config"]["hidden"], 10]
    server.ok("PATCH", "/api/run", json={"speed": 40})
    server.ok("POST", "/api/run/start")
    still_training(server, final)


# --- checkpoints ---------------------------------------------------------------------------


def npz(arrays: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def bad_checkpoints(good: bytes) -> dict[str, tuple[bytes, str]]:
    """Uploads that must be refused, each with a word its refusal must contain."""
    with np.load(io.BytesIO(good)) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = json.loads(str(arrays["header"]))

    def edited(**changes: Any) -> bytes:
        copy = json.loads(json.dumps(header))
        for path, value in changes.items():
            section, key = path.split("__")
            copy[section][key] = value
        return npz({**arrays, "header": np.array(json.dumps(copy))})

    not_npz = io.BytesIO()
    with zipfile.ZipFile(not_npz, "w") as archive:
        archive.writestr("readme.txt", "hello")
    single = io.BytesIO()
    np.save(single, np.zeros(3))
    without = {name: value for name, value in arrays.items() if name != "weight_0"}
    return {
        "random bytes": (random.Random(0).randbytes(5000), "checkpoint"),
        "text": (b"this is not a checkpoint", "checkpoint"),
        "a zip of text": (not_npz.getvalue(), "header"),
        "one .npy array": (single.getvalue(), "npz"),
        "cut at 100 bytes": (good[:100], "checkpoint"),
        "cut in half": (good[: len(good) // 2], "checkpoint"),
        "last byte missing": (good[:-1], "checkpoint"),
        "a weight missing": (npz(without), "weight_0"),
        "weights of the wrong shape": (npz({**arrays, "weight_0": np.zeros((16, 785))}), "shape"),
        "NaN weights": (
            npz({**arrays, "weight_0": np.full_like(arrays["weight_0"], np.nan)}),
            "nan",
        ),
        "header for other layers": (edited(config__hidden=[32]), "match"),
        "another optimizer's header": (edited(config__optimizer="adam"), "optimizer"),
        "fractional batch size": (edited(config__batch_size=100.5), "batch_size"),
        "fractional seed": (edited(config__seed=1.5), "seed"),
        "boolean learning rate": (edited(config__lr=True), "lr"),
        "past this data set's epoch": (edited(progress__batch_in_epoch=5000), "mini-batch"),
        "epoch beyond the run": (edited(progress__epoch=5000), "epoch"),
    }


def test_bad_checkpoints_are_422_and_leave_the_model_alone(server: LiveServer, run) -> None:
    server.ok("POST", "/api/run/pause")
    before = server.http.get("/api/model").json()
    good = server.http.get("/api/checkpoint").content
    for name, (body, word) in bad_checkpoints(good).items():
        response = server.control(
            "POST",
            "/api/checkpoint",
            content=body,
            headers={"content-type": "application/octet-stream"},
        )
        assert response.status_code == 422, (name, response.text[:300])
        text = refused(response, 422, "body")
        assert word.lower() in text.lower(), (name, text)
    assert server.http.get("/api/model").json() == before
    after = server.http.get("/api/run").json()
    assert (after["id"], after["status"]) == (run["id"], "paused")
    server.ok("POST", "/api/run/start")
    still_training(server, run)


# --- who may ask ---------------------------------------------------------------------------


def presenter_operations(server: LiveServer) -> list[tuple[str, str]]:
    """Every operation in the server's own OpenAPI schema that is not a read or a viewer's
    question, and the presenter's reads: all of them are the presenter's, including routes
    added after this test."""
    paths = server.http.get("/openapi.json").json()["paths"]
    return sorted(
        (method, path)
        for path, operations in paths.items()
        for method in operations
        if (method != "get" and (method, path) not in VIEWER_ROUTES)
        or (method, path) in PRESENTER_READS
    )


def test_every_presenter_route_needs_the_right_token(server: LiveServer, run) -> None:
    operations = presenter_operations(server)
    assert ("post", "/api/run") in operations and ("post", "/api/checkpoint") in operations
    paths = server.http.get("/openapi.json").json()["paths"]
    documented = [
        (method, path)
        for path, methods in paths.items()
        for method, operation in methods.items()
        if operation.get("security")
    ]
    assert sorted(documented) == operations  # /docs shows which routes need the token
    wrong_tokens = [
        f"Bearer {server.token}x",
        f"Bearer {server.token[:-1]}",
        f"Bearer {server.token.upper()}",
        "Bearer null",
        "Bearer \u00e9t\u00e9".encode(),  # not ASCII: UTF-8 bytes the server reads as Latin-1
    ]
    missing_tokens = [None, "", "Bearer", f"Basic {server.token}", server.token]
    for method, path in operations:
        for authorization in missing_tokens:
            headers = {} if authorization is None else {"Authorization": authorization}
            response = server.http.request(method, path, json={}, headers=headers)
            refused(response, 401, "token")
            assert response.headers["www-authenticate"] == "Bearer"
        for authorization in wrong_tokens:
            response = server.http.request(
                method, path, json={}, headers={"Authorization": authorization}
            )
            refused(response, 403, "token")
    for method, path in sorted(VIEWER_ROUTES):
        if path in server.http.get("/openapi.json").json()["paths"]:
            response = server.http.request(method, path, json={})
            assert response.status_code not in (401, 403), (path, response.text)
    still_training(server, run)
