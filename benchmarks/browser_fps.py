"""Frames per second and the longest main-thread task of the live page while the server trains
at full speed, in headless Chromium at 1920x1080.

    python benchmarks/browser_fps.py [--seconds 15] [--preset 3blue1brown|nielsen|modern]
                                     [--data-dir DIR] [--viewers 1]

Targets (issue 4): at least 30 frames per second, no main-thread task over 50 ms. The page
draws only on requestAnimationFrame, so the frame rate falls when a frame's work (parsing
frames, decoding weights, drawing panels) no longer fits in 16 ms; long tasks show where.
Prints measured figures and their ratio to the target; it never passes or fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from live import free_port

REPO = Path(__file__).resolve().parents[1]
# The page's presets (static/js/controls.js), as run configs.
PRESETS = {
    "3blue1brown": {
        "hidden": [16, 16],
        "activation": "sigmoid",
        "loss": "mse",
        "optimizer": "sgd",
        "lr": 3.0,
        "batch_size": 100,
    },
    "nielsen": {
        "hidden": [30],
        "activation": "sigmoid",
        "loss": "mse",
        "optimizer": "sgd",
        "lr": 3.0,
        "batch_size": 10,
    },
    "modern": {
        "hidden": [128],
        "activation": "relu",
        "loss": "cross-entropy",
        "optimizer": "adam",
        "lr": 0.001,
        "batch_size": 100,
    },
}

CHROMIUM = os.environ.get("BACKPROP_LIVE_CHROMIUM", "/usr/bin/chromium")
TOKEN = "benchmark-token"
TARGET_FPS = 30.0
TARGET_LONGEST_MS = 50.0

# Counts animation frames and records every long task (> 50 ms, the browser's own threshold).
MEASURE = """
window.__fps = { frames: 0, longest: 0, longTasks: 0, since: performance.now() };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    window.__fps.longTasks += 1;
    window.__fps.longest = Math.max(window.__fps.longest, entry.duration);
  }
}).observe({ type: "longtask", buffered: true });
(function count() { window.__fps.frames += 1; requestAnimationFrame(count); })();
"""

RESET = """() => {
  Object.assign(window.__fps, { frames: 0, longest: 0, longTasks: 0, since: performance.now() });
}"""
READ = "() => ({ ...window.__fps, elapsed: performance.now() - window.__fps.since })"


def start_server(port: int, state_dir: str, data_dir: str | None) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "server.cli", "serve", "--port", str(port)]
    command += ["--token", TOKEN, "--state-dir", state_dir]
    if data_dir:
        command += ["--data-dir", data_dir]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health").status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="3blue1brown")
    default_data = REPO.parent / "shared" / "data" / "mnist"
    parser.add_argument("--data-dir", default=str(default_data) if default_data.is_dir() else None)
    parser.add_argument("--viewers", type=int, default=1, help="pages open at once")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with tempfile.TemporaryDirectory() as state_dir:
        server = start_server(port, state_dir, args.data_dir)
        try:
            config = {**PRESETS[args.preset], "epochs": 1000}
            httpx.post(f"{base}/api/run", json=config, headers=auth).raise_for_status()
            httpx.patch(f"{base}/api/run", json={"speed": None}, headers=auth).raise_for_status()
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
                )
                pages = []
                for _ in range(args.viewers):
                    page = browser.new_page(viewport={"width": 1920, "height": 1080})
                    page.add_init_script(MEASURE)
                    page.goto(f"{base}/?token={TOKEN}")
                    pages.append(page)
                pages[0].wait_for_function("() => window.backpropLive.state.runId !== null")
                httpx.post(f"{base}/api/run/start", headers=auth).raise_for_status()
                pages[0].wait_for_timeout(3000)  # warm up: first frames, JIT, layout
                batch_before = httpx.get(f"{base}/api/run").json()["batch"]
                for page in pages:
                    page.evaluate(RESET)
                load = os.getloadavg()
                pages[0].wait_for_timeout(args.seconds * 1000)
                results = [page.evaluate(READ) for page in pages]
                run = httpx.get(f"{base}/api/run").json()
                browser.close()
        finally:
            server.terminate()
            server.wait(20)

    trained = run["batch"] - batch_before
    sizes = "-".join(str(n) for n in [784, *config["hidden"], 10])
    print(f"network {sizes} ({args.preset}), data {run['dataset']['name']}, {args.seconds:g} s")
    print(f"server trained {trained / args.seconds:.1f} mini-batches/s while the page drew")
    # The server, the browser and anything else share the CPUs: say how busy they were.
    print(f"load average {load[0]:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for i, result in enumerate(results):
        seconds = result["elapsed"] / 1000
        fps = result["frames"] / seconds
        longest = result["longest"]
        print(
            f"page {i + 1}: {fps:.1f} frames/s ({fps / TARGET_FPS:.2f}x the {TARGET_FPS:g} "
            f"target); long tasks (>50 ms): {result['longTasks']}; longest task "
            + (
                f"{longest:.0f} ms ({longest / TARGET_LONGEST_MS:.2f}x the 50 ms limit)"
                if longest
                else "none over 50 ms"
            )
        )
    print(json.dumps({"results": results, "batches_per_second": trained / args.seconds}))


if __name__ == "__main__":
    main()
