"""The room's digits on a real server: drawings from several devices reach every screen, read
by the live network exactly as /api/classify reads them; the scores agree with the drawings;
moderation needs the token and reaches every screen at once; the exports give the pixels back;
the gallery outlasts a restart; and learning from the room's drawings raises the room's
accuracy while MNIST's holds."""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from drawn_digits import drawn_set, png
from live_server import NO_LIMITS, LiveServer, Stream, connect, status_is

from engine.data.mnist import load_sample

PATIENCE = 60.0  # seconds a frame may take to show a change (never a speed test)
DEVICES = itertools.count(1)


@pytest.fixture(scope="module")
def mnist_digits() -> list[tuple[int, list[float]]]:
    """Test digits of the sample as JSON pixels: whole 255ths, as the gallery keeps them."""
    sample = load_sample()
    return [
        (int(label), whole_255ths(image))
        for image, label in zip(sample.test_images[:40], sample.test_labels[:40])
    ]


def whole_255ths(image: np.ndarray) -> list[float]:
    return (np.rint(image * 255).astype(np.float64) / 255).tolist()


@pytest.fixture
def empty(server: LiveServer) -> LiveServer:
    """The module's server with an empty gallery, learning off, names hidden, a fresh run."""
    server.ok("DELETE", "/api/gallery")
    server.ok("PATCH", "/api/gallery", json={"learn": False, "names": False, "hold_out": True})
    server.fresh_run()
    return server


def device(number: int | None = None) -> dict[str, str]:
    """Headers of another device in the room: the server trusts X-Forwarded-For from
    127.0.0.1 (uvicorn's default for a proxy on the same machine), so each test device is
    its own client to the rate limit."""
    number = next(DEVICES) if number is None else number
    return {"X-Forwarded-For": f"10.{number // 65536 % 256}.{number // 256 % 256}.{number % 256}"}


def send(
    server: LiveServer,
    label: int,
    pixels: list[float] | None = None,
    picture: bytes | None = None,
    author: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST /api/gallery from a device: JSON pixels, or a PNG with the label in the query."""
    headers = headers or device()
    if picture is not None:
        query = {"label": label, **({"author": author} if author else {})}
        return server.http.post(
            "/api/gallery",
            content=picture,
            params=query,
            headers={**headers, "content-type": "image/png"},
        )
    body: dict[str, Any] = {"pixels": pixels, "label": label}
    if author is not None:
        body["author"] = author
    return server.http.post("/api/gallery", json=body, headers=headers)


def sent(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return response.json()


def gallery_with(predicate: Callable[[dict[str, Any]], bool]) -> Callable[[dict[str, Any]], bool]:
    return lambda frame: frame["type"] == "gallery" and predicate(frame)


def ids_in(frame: dict[str, Any]) -> set[int]:
    return {item["id"] for item in frame["items"]}


async def viewers(server: LiveServer, count: int) -> list[Stream]:
    return [await connect(server) for _ in range(count)]


async def close(streams: list[Stream]) -> None:
    for stream in streams:
        await stream.connection.close()


# Every screen


def test_drawings_from_several_devices_reach_every_viewer(
    empty: LiveServer, mnist_digits: list[tuple[int, list[float]]]
) -> None:
    server = empty
    drawn = drawn_set(1)

    async def scenario() -> None:
        screens = await viewers(server, 3)
        ids = set()
        for student, name in enumerate(["Ada", "Bo", "Cy"]):
            phone = device()
            label, pixels = mnist_digits[student]
            ids.add(sent(send(server, label, pixels, author=name, headers=phone))["id"])
            digit, picture = drawn[student + 3]
            ids.add(sent(send(server, digit, picture=png(picture), headers=phone))["id"])
        for screen in screens:
            frame = await screen.until(gallery_with(lambda f: ids_in(f) == ids), PATIENCE)
            assert frame["count"] == 6
            assert all("author" not in item for item in frame["items"]), "names are off"
        await close(screens)

    asyncio.run(scenario())
    listed = server.http.get("/api/gallery").json()["items"]
    assert all("author" not in item for item in listed)
    authors = {item["author"] for item in server.ok("GET", "/api/gallery")["items"]}
    assert authors == {"Ada", "Bo", "Cy", None}


def test_names_reach_every_screen_only_while_the_presenter_shows_them(
    empty: LiveServer, mnist_digits: list[tuple[int, list[float]]]
) -> None:
    server = empty
    drawing = sent(send(server, mnist_digits[0][0], mnist_digits[0][1], author="  Zoë  "))

    async def scenario() -> None:
        (screen,) = await viewers(server, 1)
        server.ok("PATCH", "/api/gallery", json={"names": True})
        frame = await screen.until(gallery_with(lambda f: f["settings"]["names"]), PATIENCE)
        assert [item["author"] for item in frame["items"]] == ["Zoë"]
        assert server.http.get(f"/api/gallery/{drawing['id']}").json()["author"] == "Zoë"
        server.ok("PATCH", "/api/gallery", json={"names": False})
        frame = await screen.until(gallery_with(lambda f: not f["settings"]["names"]), PATIENCE)
        assert "author" not in frame["items"][0]
        await close([screen])

    asyncio.run(scenario())


def test_the_gallery_reads_each_drawing_as_classify_does(
    empty: LiveServer, mnist_digits: list[tuple[int, list[float]]]
) -> None:
    server = empty
    for _ in range(15):  # a network that tells digits apart a little
        server.ok("POST", "/api/run/step")
    for label, pixels in mnist_digits[:10]:
        sent(send(server, label, pixels))
    for digit, picture in drawn_set(1)[:5]:
        sent(send(server, digit, picture=png(picture)))
    listed = server.http.get("/api/gallery").json()  # paused: the network stays as it is
    assert len(listed["items"]) == 15
    for item in listed["items"]:
        pixels = server.http.get(f"/api/gallery/{item['id']}").json()["pixels"]
        classified = server.http.post("/api/classify", json={"pixels": pixels}).json()
        assert item["digit"] == classified["digit"]
        assert item["probabilities"] == pytest.approx(classified["probabilities"], abs=2e-5)
        assert classified["input"] == pytest.approx(pixels, abs=1e-4), (
            "the gallery's pixels are the network's input"
        )


def test_accuracy_and_confusion_agree_with_the_drawings(
    empty: LiveServer, mnist_digits: list[tuple[int, list[float]]]
) -> None:
    server = empty
    for _ in range(10):
        server.ok("POST", "/api/run/step")
    for label, pixels in mnist_digits[:30]:
        sent(send(server, label, pixels))

    async def last_frame() -> dict[str, Any]:
        (screen,) = await viewers(server, 1)
        frame = await screen.until(gallery_with(lambda f: f["count"] == 30), PATIENCE)
        await close([screen])
        return frame

    frame = asyncio.run(last_frame())
    answer = server.http.get("/api/gallery").json()
    for scores in (frame, answer):
        items = scores["items"]
        confusion = np.array(scores["confusion"])
        assert confusion.shape == (10, 10) and confusion.sum() == scores["count"] == len(items)
        expected = np.zeros((10, 10), int)
        for item in items:
            expected[item["label"], item["digit"]] += 1
        np.testing.assert_array_equal(confusion, expected)
        right = [item["label"] == item["digit"] for item in items]
        assert scores["accuracy"] == pytest.approx(np.mean(right), abs=1e-5)
        held_out = [item for item in items if item["held_out"]]
        training = [item for item in items if not item["held_out"]]
        assert 0 < len(held_out) < len(items), "the split puts drawings on both sides"
        for half, name in ((training, "training"), (held_out, "held_out")):
            assert scores[name]["count"] == len(half)
            accuracy = np.mean([item["label"] == item["digit"] for item in half])
            assert scores[name]["accuracy"] == pytest.approx(accuracy, abs=1e-5)
    server.ok("PATCH", "/api/gallery", json={"hold_out": False})
    everything = server.http.get("/api/gallery").json()
    assert everything["training"]["count"] == 30 and everything["held_out"]["count"] == 0


# Moderation


def test_hiding_and_deleting_need_the_token_and_reach_every_screen(
    empty: LiveServer, mnist_digits: list[tuple[int, list[float]]]
) -> None:
    server = empty
    ids = [sent(send(server, label, pixels))["id"] for label, pixels in mnist_digits[:4]]
    rude, deleted = ids[0], ids[1]
    for method, path, body in [
        ("PATCH", f"/api/gallery/{rude}", {"hidden": True}),
        ("DELETE", f"/api/gallery/{deleted}", None),
        ("DELETE", "/api/gallery", None),
        ("PATCH", "/api/gallery", {"names": True}),
        ("GET", "/api/gallery/export.csv", None),
        ("GET", "/api/gallery/export.npz", None),
    ]:
        assert server.http.request(method, path, json=body).status_code == 401
        wrong = {"Authorization": "Bearer not-the-token"}
        assert server.http.request(method, path, json=body, headers=wrong).status_code == 403
    assert {item["id"] for item in server.http.get("/api/gallery").json()["items"]} == set(ids)

    async def scenario() -> None:
        screens = await viewers(server, 2)
        for change, shown in [
            (("PATCH", f"/api/gallery/{rude}", {"hidden": True}), set(ids) - {rude}),
            (("DELETE", f"/api/gallery/{deleted}", None), set(ids[2:])),
            (("PATCH", f"/api/gallery/{rude}", {"hidden": False}), {rude, *ids[2:]}),
            (("PATCH", f"/api/gallery/{rude}", {"hidden": True}), set(ids[2:])),
        ]:
            method, path, body = change
            server.ok(method, path, json=body)
            for screen in screens:
                frame = await screen.until(
                    gallery_with(lambda f, shown=shown: ids_in(f) == shown), PATIENCE
                )
                assert frame["count"] == len(shown)
        await close(screens)

    asyncio.run(scenario())
    viewer_items = server.http.get("/api/gallery").json()["items"]
    assert {item["id"] for item in viewer_items} == set(ids[2:])
    assert server.http.get(f"/api/gallery/{rude}").status_code == 404
    assert server.http.get(f"/api/gallery/{rude}/image.png").status_code == 404
    presenter_items = {item["id"]: item for item in server.ok("GET", "/api/gallery")["items"]}
    assert presenter_items[rude]["hidden"] is True and deleted not in presenter_items
    assert server.control("GET", f"/api/gallery/{rude}/image.png").status_code == 200
    csv_rows = server.control("GET", "/api/gallery/export.csv").text.strip().split("\n")
    assert len(csv_rows) == 1 + 2, "hidden drawings are not exported"
    assert server.control("DELETE", f"/api/gallery/{deleted}").status_code == 404
    assert server.ok("DELETE", "/api/gallery") == {"deleted": 3}
    assert server.http.get("/api/gallery").json()["count"] == 0


# Files


def test_the_csv_and_npz_give_back_the_same_pixels(
    empty: LiveServer, mnist_digits: list[tuple[int, list[float]]]
) -> None:
    server = empty
    for label, pixels in mnist_digits[:5]:
        sent(send(server, label, pixels, author="Ada"))
    for digit, picture in drawn_set(1)[:3]:
        sent(send(server, digit, picture=png(picture)))
    kept = {
        item["id"]: server.http.get(f"/api/gallery/{item['id']}").json()
        for item in server.http.get("/api/gallery").json()["items"]
    }

    exported = server.control("GET", "/api/gallery/export.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0] == ["label", *(f"pixel{i}" for i in range(784))]
    assert len(rows) == 1 + len(kept)
    for row, drawing in zip(rows[1:], kept.values()):
        assert int(row[0]) == drawing["label"]
        assert [int(value) for value in row[1:]] == [round(p * 255) for p in drawing["pixels"]]
    for row, (label, pixels) in zip(rows[1:6], mnist_digits[:5]):
        assert int(row[0]) == label
        assert [int(value) / 255 for value in row[1:]] == pixels, "the pixels sent, exactly"

    archive = np.load(io.BytesIO(server.control("GET", "/api/gallery/export.npz").content))
    assert archive["images"].shape == (len(kept), 28, 28) and archive["images"].dtype == np.uint8
    rows_as_images = np.array([[int(v) for v in row[1:]] for row in rows[1:]], np.uint8)
    np.testing.assert_array_equal(archive["images"].reshape(-1, 784), rows_as_images)
    assert archive["ids"].tolist() == list(kept)
    assert archive["labels"].tolist() == [d["label"] for d in kept.values()]
    assert archive["held_out"].tolist() == [d["held_out"] for d in kept.values()]
    assert archive["authors"].tolist() == ["Ada"] * 5 + [""] * 3

    first = next(iter(kept))
    picture = server.http.get(f"/api/gallery/{first}/image.png", params={"scale": 4})
    assert picture.headers["content-type"] == "image/png"
    from PIL import Image

    image = Image.open(io.BytesIO(picture.content))
    assert image.size == (112, 112)
    np.testing.assert_array_equal(
        np.asarray(image)[::4, ::4].reshape(784), np.array(kept[first]["pixels"]) * 255
    )
    again = server.http.get(
        f"/api/gallery/{first}/image.png",
        params={"scale": 4},
        headers={"If-None-Match": picture.headers["etag"]},
    )
    assert again.status_code == 304


def test_the_gallery_outlasts_a_restart(server_factory: Any, tmp_path: Any) -> None:
    state = tmp_path / "kept"
    first = server_factory(state)
    sample = load_sample()
    ids = []
    for image, label in zip(sample.test_images[:4], sample.test_labels[:4]):
        pixels = whole_255ths(image)
        ids.append(sent(send(first, int(label), pixels, author=f"student {label}"))["id"])
    first.ok("PATCH", f"/api/gallery/{ids[1]}", json={"hidden": True})
    before = {i: first.ok("GET", f"/api/gallery/{i}") for i in ids}
    first.stop()

    second = server_factory(state)
    after = {item["id"]: item for item in second.ok("GET", "/api/gallery")["items"]}
    assert list(after) == ids
    for drawing_id, drawing in before.items():
        kept = second.ok("GET", f"/api/gallery/{drawing_id}")
        for field in ("label", "author", "hidden", "held_out", "created_at", "pixels"):
            assert kept[field] == drawing[field], field
    assert ids[1] not in {item["id"] for item in second.http.get("/api/gallery").json()["items"]}
    assert sent(send(second, 3, before[ids[0]]["pixels"]))["id"] > max(ids)


# Learning from the room


def test_learning_from_the_room_raises_its_training_half_and_mnist_holds(
    server_factory: Any,
) -> None:
    """The same network trained twice, ten epochs of the built-in sample from the same seed:
    without the room's drawings, then with the training half of them mixed in. The room is
    a hundred thick-stroke digits, some in styles MNIST has few of (a 1 with a foot, a crossed
    7); the network reads a fifth of them wrong before it learns from them."""
    server = server_factory()
    for number, (digit, picture) in enumerate(drawn_set(10)):
        sent(send(server, digit, picture=png(picture), headers=device(10_000 + number // 5)))
    config = {"epochs": 10, "seed": 0}

    def train() -> tuple[dict[str, Any], float]:
        run = server.ok("POST", "/api/run", json=config)
        server.ok("PATCH", "/api/run", json={"speed": None})

        async def until_finished() -> dict[str, Any]:
            (screen,) = await viewers(server, 1)
            server.ok("POST", "/api/run/start")
            await screen.until(status_is("finished"), PATIENCE)
            frame = await screen.until(
                gallery_with(lambda f: f["run"] == run["id"] and len(f["evaluations"]) == 10),
                PATIENCE,
            )
            await close([screen])
            return frame

        frame = asyncio.run(until_finished())
        test_accuracy = server.http.get("/api/run").json()["metrics"]["test_accuracy"]
        assert frame["test"]["accuracy"] == pytest.approx(test_accuracy, abs=1e-4)
        return frame, test_accuracy

    alone, alone_test = train()
    server.ok("PATCH", "/api/gallery", json={"learn": True})
    learnt, learnt_test = train()

    before = alone["evaluations"][-1]
    after = learnt["evaluations"][-1]
    print(
        f"\nthe room's training half: {before['training']['accuracy']:.3f} → "
        f"{after['training']['accuracy']:.3f}; held out: {before['held_out']['accuracy']:.3f} → "
        f"{after['held_out']['accuracy']:.3f}; MNIST test: {alone_test:.4f} → {learnt_test:.4f}"
    )
    assert after["training"]["count"] == before["training"]["count"] > 40
    assert after["training"]["accuracy"] >= before["training"]["accuracy"] + 0.1
    assert abs(learnt_test - alone_test) <= 0.01
    epochs = [evaluation["epoch"] for evaluation in learnt["evaluations"]]
    assert epochs == list(range(1, 11)), "the room is scored at every evaluation"


# Refusals


PIXELS = [0.0] * 392 + [1.0] * 392


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"pixels": PIXELS, "label": 10}, "label"),
        ({"pixels": PIXELS, "label": -1}, "label"),
        ({"pixels": PIXELS, "label": "3"}, "label"),
        ({"pixels": PIXELS, "label": 3.5}, "label"),
        ({"pixels": PIXELS, "label": True}, "label"),
        ({"pixels": PIXELS}, "label"),
        ({"pixels": PIXELS[:700], "label": 3}, "pixels"),
        ({"pixels": [*PIXELS, 0.5], "label": 3}, "pixels"),
        ({"pixels": [2.0, *PIXELS[1:]], "label": 3}, "pixels"),
        ({"pixels": ["x", *PIXELS[1:]], "label": 3}, "pixels"),
        ({"pixels": [0.0] * 784, "label": 3}, "pixels"),
        ({"pixels": [0.0] * 783 + [1.0], "label": 3}, "pixels"),
        ({"label": 3}, "pixels"),
        ({"pixels": PIXELS, "label": 3, "author": "x" * 25}, "author"),
        ({"pixels": PIXELS, "label": 3, "author": 7}, "author"),
        ({"pixels": PIXELS, "label": 3, "author": "Ada\u202eevil"}, "author"),
        ({"pixels": PIXELS, "label": 3, "mood": "happy"}, "mood"),
    ],
)
def test_bad_drawings_are_422_naming_the_field(
    server: LiveServer, body: dict[str, Any], field: str
) -> None:
    count = server.http.get("/api/gallery").json()["count"]
    response = server.http.post("/api/gallery", json=body, headers=device())
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(f"{field}: ")
    assert server.http.get("/api/gallery").json()["count"] == count


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"pixels": [NaN' + ", 0" * 783 + '], "label": 3}', "pixels"),
        ('{"pixels": [Infinity' + ", 1" * 783 + '], "label": 3}', "pixels"),
        ('{"pixels": [' + ", ".join(["1"] * 784) + '], "label": NaN}', "label"),
        ("[1, 2, 3]", "body"),
        ('{"pixels": [1, 2', "body"),
    ],
)
def test_nan_and_broken_json_are_422_naming_the_field(
    server: LiveServer, text: str, field: str
) -> None:
    response = server.http.post(
        "/api/gallery", content=text, headers={**device(), "content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(f"{field}: ")


def test_pictures_need_a_label_in_the_query(server: LiveServer) -> None:
    picture = png(drawn_set(1)[7][1])
    without = send(server, 0, picture=picture)
    assert without.status_code == 201  # label 0 is a label
    missing = server.http.post(
        "/api/gallery", content=picture, headers={**device(), "content-type": "image/png"}
    )
    assert missing.status_code == 422 and missing.json()["detail"].startswith("label: ")
    wrong = server.http.post(
        "/api/gallery",
        content=picture,
        params={"label": 12},
        headers={**device(), "content-type": "image/png"},
    )
    assert wrong.status_code == 422 and wrong.json()["message"].startswith("label: ")
    blank = io.BytesIO()
    from PIL import Image

    Image.new("L", (200, 200), 0).save(blank, "PNG")
    answer = server.http.post(
        "/api/gallery",
        content=blank.getvalue(),
        params={"label": 3},
        headers={**device(), "content-type": "image/png"},
    )
    assert answer.status_code == 422 and "blank" in answer.text


def test_a_device_sending_faster_than_people_draw_gets_429_with_retry_after(
    server: LiveServer, mnist_digits: list[tuple[int, list[float]]]
) -> None:
    phone, neighbour = device(), device()
    label, pixels = mnist_digits[0]
    answers = [send(server, label, pixels, headers=phone) for _ in range(8)]
    codes = [answer.status_code for answer in answers]
    assert codes[:6] == [201] * 6 and codes[6:] == [429, 429]
    wait = int(answers[-1].headers["retry-after"])
    assert 1 <= wait <= 5
    assert "wait" in answers[-1].json()["detail"]
    bad = server.http.post("/api/gallery", json={"pixels": pixels, "label": 11}, headers=phone)
    assert bad.status_code == 422, "a mistake is named even while the device waits"
    assert send(server, label, pixels, headers=neighbour).status_code == 201
    time.sleep(wait)
    assert send(server, label, pixels, headers=phone).status_code == 201


def test_a_full_gallery_refuses_more_with_409(server_factory: Any) -> None:
    server = server_factory(flags=(*NO_LIMITS, "--gallery-size", "3"))
    sample = load_sample()
    pixels = whole_255ths(sample.test_images[0])
    for _ in range(3):
        sent(send(server, 7, pixels))
    full = send(server, 7, pixels)
    assert full.status_code == 409 and "full" in full.json()["detail"]
    assert server.http.get("/api/gallery").json()["count"] == 3
    server.ok("DELETE", "/api/gallery")
    sent(send(server, 7, pixels))
