"""How long does the run library take to list a thousand runs?

Builds a library (``server.store.Store``, a real SQLite file in a temporary directory) of
1,000 runs of 600 mini-batches each, written as a trainer writes them: 100 mini-batches per
call, an evaluation and an update of the run after each epoch of 100 mini-batches (the built-in
sample at batch size 100). Epoch weights are left out: they live in a table that listing never
reads. It prints:

- how long the writes took to queue (what the trainer waits) and to commit, and the file size;
- ``Store.runs()`` (what ``GET /api/runs`` reads): median and best of the repeats;
- for scale: one run's ``costs()`` (600 mini-batches) and ``latest_run_id()``;
- ``GET /api/runs`` from a real ``backprop-live serve`` on that library, over HTTP: the whole
  answer (reading, JSON, the socket), its size, and ``GET /api/runs/{id}`` for one run;
- with ``--page`` (needs Playwright and Debian's chromium), the /runs page in headless Chromium
  at 1920x1080: how long until all the rows show, and the longest main-thread task while it
  loads and then while it refreshes and the table scrolls to the end.

Target (issue 11): a library of 1,000 runs lists in under 100 ms and the page stays responsive
(no main-thread task over 50 ms, the browser's own "long task"). Nothing here passes or fails;
the machine is shared, so the best of the repeats is the least disturbed figure.

    python benchmarks/library.py [--runs 1000] [--batches 600] [--repeats 20] [--page]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
from browser_fps import CHROMIUM, start_server
from live import free_port

from server.store import DB_FILE, Store

BATCH_SIZE = 100
BATCHES_PER_EPOCH = 100
BATCHES_PER_CALL = 100
LAYERS = 3


def fill(store: Store, runs: int, batches: int) -> None:
    """``runs`` runs with ``batches`` mini-batches each, of a cost curve that falls."""
    rng = np.random.default_rng(0)
    for number in range(runs):
        run_id = uuid.uuid4().hex[:12]
        config = {"hidden": [16, 16], "activation": "sigmoid", "lr": 3.0, "batch_size": 100}
        store.create_run(run_id, f"run {number}", config, "sample", time.time())
        for first in range(0, batches, BATCHES_PER_CALL):
            index = np.arange(first, min(first + BATCHES_PER_CALL, batches))
            costs = 0.1 + 0.8 / np.sqrt(1 + index) + rng.normal(0, 0.01, len(index))
            norms = rng.random((len(index), LAYERS))
            store.add_batches(run_id, first, costs, (index + 1) * BATCH_SIZE, index * 0.01, norms)
            if (index[-1] + 1) % BATCHES_PER_EPOCH == 0:
                epoch, examples = (index[-1] + 1) // BATCHES_PER_EPOCH, (index[-1] + 1) * BATCH_SIZE
                store.add_evaluation(run_id, epoch, examples, index[-1] * 0.01, 0.9, 0.2)
                store.update_run(run_id, examples_seen=examples, seconds=index[-1] * 0.01)


def timings(measure: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(median, best) of ``repeats`` calls, in milliseconds."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        measure()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds) * 1e3, min(seconds) * 1e3


# Long tasks (over 50 ms) on the page's main thread, from the page's first moment.
LONG_TASKS = """
window.__long = { count: 0, longest: 0 };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    window.__long.count += 1;
    window.__long.longest = Math.max(window.__long.longest, entry.duration);
  }
}).observe({ type: "longtask", buffered: true });
"""
TAKE_LONG_TASKS = """() => {
  const taken = { ...window.__long };
  Object.assign(window.__long, { count: 0, longest: 0 });
  return taken;
}"""


def over_http(directory: str, repeats: int, show_page: bool) -> None:
    """GET /api/runs (and one run, and the page) from a real server on the library."""
    port = free_port()
    server = start_server(port, directory, None)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            answer = http.get("/api/runs")
            runs = answer.json()["runs"]
            median, best = timings(lambda: http.get("/api/runs").raise_for_status(), repeats)
            size = len(answer.content) / 1e3
            print(f"GET /api/runs over HTTP, {len(runs):,} runs, {size:,.0f} kB:")
            print(f"  median {median:.1f} ms, best {best:.1f} ms")
            one = f"/api/runs/{runs[len(runs) // 2]['id']}"
            median, best = timings(lambda: http.get(one).raise_for_status(), repeats)
            print("GET /api/runs/{id} (one run's summary, evaluations and costs):")
            print(f"  median {median:.1f} ms, best {best:.1f} ms")
        if show_page:
            page_timings(f"http://127.0.0.1:{port}", len(runs))
    finally:
        server.terminate()
        server.wait(20)


def page_timings(base: str, rows: int) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.add_init_script(LONG_TASKS)
        page.goto(f"{base}/runs")
        page.wait_for_function(
            "(n) => document.querySelectorAll('[data-rows] > *').length >= n", arg=rows
        )
        shown = page.evaluate("performance.now()")
        loading = page.evaluate(TAKE_LONG_TASKS)
        page.evaluate("document.querySelector('.table-wrap').scrollTo(0, 1e9)")
        page.wait_for_timeout(9000)  # two refreshes of the list, the last rows' sparklines
        later = page.evaluate(TAKE_LONG_TASKS)
        browser.close()
    print(f"the /runs page (headless Chromium, 1920x1080), {rows:,} rows:")
    print(f"  all rows shown {shown:.0f} ms after navigation began")
    for what, tasks in (("while loading", loading), ("then, refreshing and scrolled", later)):
        longest = f"longest {tasks['longest']:.0f} ms" if tasks["count"] else "none"
        print(f"  long tasks (>50 ms) {what}: {tasks['count']}, {longest}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=600, help="mini-batches per run")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--page", action="store_true", help="also time the /runs page")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        in_process(Path(directory), options)
        over_http(directory, options.repeats, options.page)


def in_process(directory: Path, options: argparse.Namespace) -> None:
    with Store(directory) as store:
        start = time.perf_counter()
        fill(store, options.runs, options.batches)
        queued = time.perf_counter() - start
        if not store.flush(timeout=3600):
            raise SystemExit("the writes did not commit; see the log")
        committed = time.perf_counter() - start
        megabytes = sum(file.stat().st_size for file in directory.glob(f"{DB_FILE}*")) / 1e6
        mini_batches = options.runs * options.batches
        print(f"library: {options.runs:,} runs x {options.batches:,} mini-batches")
        print(f"  writes queued in {queued:.2f} s, committed after {committed:.2f} s")
        print(f"  ({mini_batches / committed:,.0f} mini-batches/s); file {megabytes:.1f} MB")

        listed = store.runs()
        some_run = listed[len(listed) // 2].id
        print(f"runs() of {len(listed):,} runs over {options.repeats} repeats:")
        print("  median {:.1f} ms, best {:.1f} ms".format(*timings(store.runs, options.repeats)))
        print(f"for scale, one run's costs() ({len(store.costs(some_run).batch):,} mini-batches):")
        median, best = timings(lambda: store.costs(some_run), options.repeats)
        print(f"  median {median:.1f} ms, best {best:.1f} ms")
        median, best = timings(store.latest_run_id, options.repeats)
        print(f"latest_run_id(): median {median:.2f} ms, best {best:.2f} ms")


if __name__ == "__main__":
    main()
