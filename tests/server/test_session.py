"""The pieces the live run is made of, each on its own: the run the trainer trains
(``LiveRun``), its pace (``Pacer``), the worker loop that runs commands between mini-batches
(``Worker``, over real pipes, in a thread), the recorder that keeps it in the run library, and
the web process's view of it (``RunView``)."""

from __future__ import annotations

import re
import threading
from multiprocessing import Pipe
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.checkpoint import load_checkpoint
from engine.data.mnist import Dataset, load_sample
from engine.training import Diverged, TrainConfig, Trainer
from server.trainer.protocol import (
    Conflict,
    Invalid,
    LearnFromRoom,
    NewRun,
    NotFound,
    Pause,
    Reply,
    Request,
    Reset,
    ResumeRun,
    RunChanged,
    SetLearningRate,
    SetSpeed,
    Shutdown,
    Snapshot,
    Start,
    Status,
    StatusChanged,
    Step,
    Teach,
    Trained,
)
from server.trainer.recorder import Recorder
from server.trainer.run import LiveRun
from server.trainer.worker import Pacer, Worker
from server.view import RunView

SMALL = TrainConfig(hidden=(8,), batch_size=500, epochs=2)  # 16 mini-batches per epoch


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return load_sample()


def test_a_run_counts_what_it_trains_and_finishes(dataset: Dataset) -> None:
    run = LiveRun(Trainer(SMALL, dataset))
    records = []
    while run.status is not Status.FINISHED:
        records.append(run.train_one())
    state = run.state()
    assert [record.index for record in records] == list(range(32))
    assert state.batches_trained == 32 and state.epoch == 2
    assert state.examples_seen == 2 * dataset.train_size
    assert state.cost_average == pytest.approx(np.mean([r.cost for r in records[-100:]]))
    assert state.test_accuracy == records[-1].evaluation.accuracy
    assert run.message == "finished all 2 epochs"
    with pytest.raises(Conflict, match="finished"):
        run.check_can_train()


def test_a_diverging_step_is_not_applied_and_stops_the_run(dataset: Dataset) -> None:
    deep = TrainConfig(
        hidden=(32, 32, 32, 32), activation="relu", loss="cross-entropy", lr=100.0, batch_size=10
    )
    run = LiveRun(Trainer(deep, dataset))
    with pytest.raises(Diverged):
        for _ in range(200):
            run.train_one()
    assert run.status is Status.DIVERGED and "learning rate" in (run.message or "")
    assert all(np.isfinite(w).all() for w in run.trainer.network.weights)


def test_the_pace_is_a_steady_beat_that_never_bursts() -> None:
    pacer = Pacer()
    speed = 10.0
    assert pacer.wait_time(Status.PAUSED, speed) is None
    pacer.advance(speed)
    assert 0.09 <= pacer.wait_time(Status.RUNNING, speed) <= 0.1
    pacer.due -= 5.0  # a stall of five seconds: one batch is due now, not fifty at once
    pacer.advance(speed)
    assert pacer.wait_time(Status.RUNNING, speed) == 0.0
    pacer.advance(speed)
    assert 0.09 <= pacer.wait_time(Status.RUNNING, speed) <= 0.1
    assert pacer.wait_time(Status.RUNNING, None) == 0.0


class WorkerInAThread:
    """A Worker serving real pipes on a thread, and the reports it sends back."""

    def __init__(self, dataset: Dataset, state_dir: Path) -> None:
        self.commands, command_end = Pipe(duplex=False)[::-1]
        report_end, self.report_writer = Pipe(duplex=False)
        self.reports = report_end
        self.recorder = Recorder(state_dir, dataset)
        self.worker = Worker(dataset, self.recorder, self.report_writer)
        self.thread = threading.Thread(target=self.worker.serve, args=(command_end,))
        self.thread.start()
        self.next_id = 0

    def call(self, command: Any) -> tuple[Reply, list[Any]]:
        """Send ``command``; return its reply and every report that came before it."""
        self.next_id += 1
        self.commands.send(Request(self.next_id, command))
        before = []
        while True:
            report = self.reports.recv()
            if isinstance(report, Reply) and report.id == self.next_id:
                return report, before
            before.append(report)

    def stop(self) -> None:
        self.call(Shutdown())
        self.thread.join(10)
        self.recorder.close()


@pytest.fixture
def worker(dataset: Dataset, tmp_path: Path) -> Any:
    started = WorkerInAThread(dataset, tmp_path)
    yield started
    if started.thread.is_alive():
        started.stop()


def test_the_worker_announces_its_run_then_answers_each_command_after_its_reports(
    worker: WorkerInAThread,
) -> None:
    announced = [worker.reports.recv(), worker.reports.recv()]
    assert [type(report) for report in announced] == [RunChanged, Snapshot]
    reply, _ = worker.call(NewRun(SMALL))
    assert reply.error is None and reply.state.status is Status.IDLE
    reply, before = worker.call(Step())
    kinds = [type(report) for report in before]
    assert kinds == [Trained, Snapshot, StatusChanged]  # all of the step before its answer
    trained = before[0]
    assert [record.index for record in trained.records] == [0]
    assert before[1].batch == 1 and before[1].activation_gradients is not None
    assert (reply.state.status, reply.state.batches_trained) == (Status.PAUSED, 1)


def test_refusals_travel_back_as_typed_errors(worker: WorkerInAThread) -> None:
    worker.call(NewRun(SMALL))
    reply, _ = worker.call(SetLearningRate(-1.0))
    assert isinstance(reply.error, Invalid) and "lr" in str(reply.error)
    worker.call(SetSpeed(None))
    worker.call(Start())
    while worker.call(Pause())[0].state.status is not Status.FINISHED:
        worker.call(Start())
    reply, _ = worker.call(Start())
    assert isinstance(reply.error, Conflict) and "finished" in str(reply.error)


def test_teaching_changes_the_weights_and_shows_them_before_answering(
    worker: WorkerInAThread, dataset: Dataset
) -> None:
    worker.call(NewRun(SMALL))
    pixels, label = dataset.test_images[0], int(dataset.test_labels[0])
    reply, before = worker.call(Teach(pixels, label, 1.0))
    lesson = reply.value
    assert lesson.cost_after < lesson.cost_before
    snapshots = [report for report in before if isinstance(report, Snapshot)]
    output = snapshots[-1].network.predict(pixels[None, :])[0]
    assert np.allclose(output, lesson.output_after, atol=1e-6)


def test_the_rooms_drawings_join_every_batch_of_this_run_and_the_next_until_turned_off(
    worker: WorkerInAThread, dataset: Dataset
) -> None:
    worker.call(NewRun(SMALL))  # mini-batches of 500: 50 drawings join each
    drawings = np.rint(dataset.test_images[:60] * 255).astype(np.uint8)
    labels = dataset.test_labels[:60]

    def examples_per_step() -> int:
        before = worker.call(Pause())[0].state.examples_seen
        return worker.call(Step())[0].state.examples_seen - before

    assert examples_per_step() == 500
    reply, _ = worker.call(LearnFromRoom(True, drawings, labels))
    assert reply.error is None
    assert examples_per_step() == 550
    room = worker.worker.run.trainer.extra_examples
    np.testing.assert_array_equal(room.images, dataset.test_images[:60])  # byte / 255 again
    worker.call(Reset())
    assert examples_per_step() == 550, "a fresh network learns from the room too"
    worker.call(LearnFromRoom(False, drawings[:0], labels[:0]))
    assert examples_per_step() == 500
    worker.call(LearnFromRoom(True, drawings[:0], labels[:0]))
    assert examples_per_step() == 500, "an empty room adds nothing"


def test_a_restarted_worker_resumes_the_recorded_run_with_its_costs(
    dataset: Dataset, tmp_path: Path
) -> None:
    first = WorkerInAThread(dataset, tmp_path)
    first.call(NewRun(SMALL))
    costs = []
    for _ in range(20):  # into the second epoch
        _, before = first.call(Step())
        costs += [
            record.cost
            for report in before
            if isinstance(report, Trained)
            for record in report.records
        ]
    reply, _ = first.call(Pause())
    weights = [w.copy() for w in first.worker.run.trainer.network.weights]
    first.stop()

    second = WorkerInAThread(dataset, tmp_path)
    changed, snapshot = second.reports.recv(), second.reports.recv()
    assert isinstance(changed, RunChanged) and isinstance(snapshot, Snapshot)
    assert changed.state.id == reply.state.id and changed.state.batches_trained == 20
    assert changed.state.status is Status.PAUSED
    assert np.allclose(changed.record.costs, costs)
    assert [index for index, _ in changed.record.evaluations] == [15]
    for restored, saved in zip(snapshot.network.weights, weights):
        assert np.array_equal(restored, saved)
    second.stop()


def trained_costs(reports: list[Any]) -> list[float]:
    return [
        record.cost
        for report in reports
        if isinstance(report, Trained)
        for record in report.records
    ]


def train_to_the_end(worker: WorkerInAThread) -> tuple[list[float], list[Any]]:
    """Step the live run until it finishes: the costs of those steps and the evaluations."""
    costs, evaluations = [], []
    while True:
        reply, before = worker.call(Step())
        costs += trained_costs(before)
        evaluations += [
            record.evaluation
            for report in before
            if isinstance(report, Trained)
            for record in report.records
            if record.evaluation is not None
        ]
        if reply.state.status is Status.FINISHED:
            return costs, evaluations


def test_a_run_resumed_at_an_epoch_continues_exactly_as_it_did_then(
    worker: WorkerInAThread,
) -> None:
    reply, _ = worker.call(NewRun(SMALL))
    run_id, per_epoch = reply.state.id, reply.state.batches_per_epoch
    costs, evaluations = train_to_the_end(worker)
    store = worker.recorder.store
    assert store is not None and store.flush()
    at_epoch_1 = load_checkpoint(store.weights(run_id, 1)).network

    reply, before = worker.call(ResumeRun(run_id, 1))
    assert reply.error is None, reply.error
    state = reply.state
    assert (state.id, state.status, state.epoch) == (run_id, Status.PAUSED, 1)
    assert state.batches_trained == per_epoch
    assert state.test_accuracy == evaluations[0].accuracy
    changed = next(report for report in before if isinstance(report, RunChanged))
    np.testing.assert_array_equal(changed.record.costs, costs[:per_epoch])
    assert [index for index, _ in changed.record.evaluations] == [per_epoch - 1]
    snapshot = next(report for report in before if isinstance(report, Snapshot))
    for shown, stored in zip(snapshot.network.weights, at_epoch_1.weights):
        np.testing.assert_array_equal(shown, stored)
    assert store.flush()
    assert len(store.costs(run_id).batch) == per_epoch
    assert [row.epoch for row in store.evaluations(run_id)] == [1]
    assert store.weight_epochs(run_id) == [0, 1]

    again, evaluations_again = train_to_the_end(worker)  # the same shuffles, the same steps
    np.testing.assert_array_equal(again, costs[per_epoch:])
    assert evaluations_again == evaluations[1:]


def test_resuming_another_run_pauses_and_keeps_the_one_it_replaces(
    worker: WorkerInAThread,
) -> None:
    first = worker.call(NewRun(SMALL))[0].state.id
    worker.call(Step())
    second = worker.call(NewRun(SMALL))[0].state.id
    worker.call(SetSpeed(None))
    worker.call(Start())
    while not isinstance(worker.reports.recv(), Trained):  # it is training now
        pass
    reply, _ = worker.call(ResumeRun(first, None))
    assert (reply.state.id, reply.state.batches_trained) == (first, 0)  # epoch 0: its start
    store = worker.recorder.store
    assert store is not None and store.flush()
    replaced = store.run(second)
    assert replaced is not None and replaced.status == "paused"
    saved = store.state(second)
    assert saved is not None and saved[0] == replaced.examples_seen // SMALL.batch_size > 0


def test_a_resume_that_cannot_be_done_changes_nothing(
    worker: WorkerInAThread, dataset: Dataset
) -> None:
    live = worker.call(NewRun(SMALL))[0].state
    store = worker.recorder.store
    assert store is not None
    store.create_run("other-data", "trained on the full MNIST", SMALL.to_dict(), "mnist", 1.0)
    store.save_weights("other-data", 0, worker.recorder.checkpoint_bytes(worker.worker.run))
    refusals = [
        (ResumeRun("no-such-run", None), NotFound, "no run no-such-run"),
        (ResumeRun(live.id, 3), Invalid, "epoch: run .* has weights for epochs 0, not for 3"),
        (ResumeRun("other-data", 0), Conflict, "trained on the mnist data"),
    ]
    for command, error, message in refusals:
        reply, before = worker.call(command)
        assert isinstance(reply.error, error), reply.error
        assert re.search(message, str(reply.error))
        assert (reply.state.id, reply.state.status) == (live.id, live.status)
        assert not [report for report in before if isinstance(report, RunChanged)]


def test_the_view_keeps_the_latest_state_and_weights(
    worker: WorkerInAThread, dataset: Dataset
) -> None:
    view = RunView(dataset)
    for _ in range(2):
        view.take(worker.reports.recv())
    reply, before = worker.call(Step())
    for report in [*before, reply]:
        view.take(report)
    run = view.run_dict()
    assert (run["status"], run["batch"]) == ("paused", 1)
    assert view.snapshot.batch == 1
    assert view.network is before[1].network
