"""A race's lanes in the trainer process (server.trainer.race): one seed, the lane furthest
behind next, rounds, and the cost over the same number of examples."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.mnist import load_sample
from engine.training import TrainConfig
from server.trainer.protocol import LaneConfig, Status
from server.trainer.race import Race
from server.trainer.run import LiveRun


@pytest.fixture(scope="module")
def dataset():
    return load_sample()


def make_race(dataset, *configs: TrainConfig, pace: str = "examples") -> Race:
    lanes = [LaneConfig(f"lane {i}", config) for i, config in enumerate(configs)]
    before = LiveRun.__new__(LiveRun)  # the run before the race plays no part here
    return Race(lanes, pace, dataset, None, before)


def train_round(race: Race) -> list[int]:
    """Begin a round and train it; the lanes in the order they were trained."""
    race.begin_round()
    order = []
    while (lane := race.next_lane()) is not None:
        lane.run.train_one()
        order.append(race.lanes.index(lane))
    return order


def test_lanes_share_the_first_lanes_seed_so_one_architecture_starts_alike(dataset) -> None:
    race = make_race(
        dataset,
        TrainConfig(hidden=(8,), seed=7, batch_size=10),
        TrainConfig(hidden=(8,), seed=99, batch_size=100, lr=0.5),
        TrainConfig(hidden=(4,), seed=3),
    )
    assert [run.trainer.config.seed for run in race.runs] == [7, 7, 7]
    first, second = (run.trainer.network for run in race.runs[:2])
    for a, b in zip(first.weights + first.biases, second.weights + second.biases, strict=True):
        np.testing.assert_array_equal(a, b)
    orders = [run.trainer._shuffled_order(0) for run in race.runs]
    np.testing.assert_array_equal(orders[0], orders[2])
    assert [lane.run.lane for lane in race.lanes] == [0, 1, 2]
    assert race.status is Status.PAUSED


def test_pace_examples_steps_the_lane_furthest_behind_until_the_round_is_done(dataset) -> None:
    race = make_race(
        dataset, TrainConfig(hidden=(4,), batch_size=100), TrainConfig(hidden=(4,), batch_size=250)
    )
    assert race.next_lane() is None  # no round has begun
    order = train_round(race)
    assert order == [0, 1, 0, 0]  # ties go to the first lane
    assert [run.trainer.progress.examples_seen for run in race.runs] == [300, 250]
    train_round(race)
    assert [run.trainer.progress.examples_seen for run in race.runs] == [500, 500]
    assert race.rounds == 2


def test_a_batch_larger_than_the_data_makes_rounds_of_the_whole_set(dataset) -> None:
    race = make_race(
        dataset,
        TrainConfig(hidden=(4,), batch_size=1000),
        TrainConfig(hidden=(4,), batch_size=60_000, epochs=2),
    )
    assert race.round_size == dataset.train_size
    train_round(race)
    assert [run.trainer.progress.examples_seen for run in race.runs] == [dataset.train_size] * 2


def test_an_ended_lane_drops_out_and_the_race_ends_with_the_last(dataset) -> None:
    race = make_race(
        dataset,
        TrainConfig(hidden=(4,), batch_size=1000, epochs=1),
        TrainConfig(hidden=(4,), batch_size=500, epochs=2),
    )
    while not race.runs[0].status.ended:
        train_round(race)
    assert not race.ended and race.runs[0].status is Status.FINISHED
    assert set(train_round(race)) == {1}  # lane 0 takes no more
    while not race.ended:
        train_round(race)
    assert [run.trainer.progress.epoch for run in race.runs] == [1, 2]


def test_pace_time_steps_the_lane_with_the_fewest_seconds(dataset) -> None:
    race = make_race(
        dataset,
        TrainConfig(hidden=(4,), batch_size=10),
        TrainConfig(hidden=(4,), batch_size=1000),
        pace="time",
    )
    race.begin_round()
    race.runs[0].seconds = 0.05
    assert race.next_lane() is race.lanes[1]
    race.runs[1].seconds = 0.2  # past the round's 0.1 s
    assert race.next_lane() is race.lanes[0]
    race.runs[0].seconds = 0.1
    assert race.next_lane() is None


def test_a_lanes_cost_is_over_its_latest_hundred_examples(dataset) -> None:
    race = make_race(
        dataset, TrainConfig(hidden=(4,), batch_size=10), TrainConfig(hidden=(4,), batch_size=500)
    )
    small, large = race.runs
    assert small.recent_cost(100) is None
    small.recent_costs.extend([5.0] * 5 + [1.0] * 10)
    large.recent_costs.extend([3.0, 2.0])
    assert small.recent_cost(100) == 1.0  # the latest ten mini-batches of ten
    assert large.recent_cost(100) == 2.0  # the latest mini-batch holds a hundred already
    state = race.state()
    assert [lane.cost for lane in state.lanes] == [1.0, 2.0]
