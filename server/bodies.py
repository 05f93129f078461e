"""The JSON answers of the HTTP routes that show the network: GET /api/model, GET
/api/runs/{id}/epochs/{k}/model, POST /api/classify, POST /api/explain and the gallery's.
Encoded with :mod:`server.frames`' rounding and quantisation, so numbers look the same in an
answer as in a frame."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from engine.explain import AverageGradient, Contribution, Trace
from engine.network import Network
from server.frames import (
    VALUE_DIGITS,
    ExampleFrame,
    probe_frame,
    quantise,
    rounded_list,
    score_frame,
    significant,
    significant_list,
)
from server.gallery import Gallery
from server.scores import RoomScores, probabilities
from server.trainer.probe import Probe


def model_dict(network: Network) -> dict[str, Any]:
    """GET /api/model: the architecture and every weight as a full float."""
    return {
        "layer_sizes": list(network.layer_sizes),
        "activation": network.activation,
        "loss": network.loss,
        "weights": [w.tolist() for w in network.weights],
        "biases": [b.tolist() for b in network.biases],
    }


def epoch_model(network: Network, probe: Probe, run_id: str, epoch: int) -> dict[str, Any]:
    """GET /api/runs/{id}/epochs/{k}/model: GET /api/model's answer for the network stored at
    the end of epoch ``epoch``, with ``run``, ``epoch``, and the probe digit (as a snapshot
    frame carries it) with its ``activations`` per layer 1..L in that network, so a replay
    shows what that network made of it."""
    forward = network.forward(np.asarray(probe.pixels, network.dtype)[None, :])
    return model_dict(network) | {
        "run": run_id,
        "epoch": epoch,
        "probe": probe_frame(probe),
        "activations": [rounded_list(a[0]) for a in forward.activations[1:]],
    }


def classification(network: Network, pixels: np.ndarray) -> dict[str, Any]:
    """POST /api/classify's answer for one preprocessed 784-pixel digit."""
    forward = network.forward(np.asarray(pixels, network.dtype).reshape(1, -1))
    output = forward.output[0]
    return {
        "digit": int(np.argmax(output)),
        "probabilities": rounded_list(probabilities(network, output), 5),
        "input": rounded_list(forward.activations[0][0]),
        "activations": [rounded_list(a[0]) for a in forward.activations[1:]],
    }


def contribution_dict(contribution: Contribution) -> dict[str, Any]:
    """One term of a neuron's nudge; ``nudge`` is the term itself, −weight × delta."""
    return {
        "neuron": contribution.neuron,
        "weight": significant(contribution.weight, VALUE_DIGITS),
        "delta": significant(contribution.delta, VALUE_DIGITS),
        "nudge": significant(-contribution.amount, VALUE_DIGITS),
    }


def explanation(
    trace: Trace, network: Network, average: AverageGradient, example: ExampleFrame
) -> dict[str, Any]:
    """POST /api/explain's answer: ``trace`` (computed on ``network``) for the browser.

    Vectors are rounded to 4 significant digits (activations to 4 decimals); every matrix is
    quantised, so a 784-16-16-10 network's trace is about 50 kB. Per layer 1..L:
    ``weighted_inputs`` z, ``activations`` a, ``nudges`` −dC/da (the desired change of each
    activation), ``deltas`` dC/dz, ``bias_gradient`` dC/db, ``weight_gradient`` dC/dW (row j of
    layer 1 is neuron j's 28x28 gradient image), ``contributions`` (per neuron the largest terms
    of its nudge, from the next layer: ``{neuron, weight, delta, nudge}`` with ``nudge`` =
    −weight·delta; empty for the output layer). ``output_weights`` and ``output_biases`` are the
    output layer's parameters (the levers of step 3). ``batch_average`` is the mean gradient over
    a fixed mini-batch of ``size`` training digits, for comparison: its cost, its dC/dW of the
    first and of the output layer, and its dC/db of every layer.
    """
    layers = []
    for layer in trace.layers:
        layers.append(
            {
                "weighted_inputs": significant_list(layer.weighted_inputs),
                "activations": rounded_list(layer.activations),
                "nudges": significant_list(-layer.activation_gradients),
                "deltas": significant_list(layer.deltas),
                "bias_gradient": significant_list(layer.bias_gradient),
                "weight_gradient": quantise(layer.weight_gradient),
                "contributions": [
                    [contribution_dict(c) for c in neuron] for neuron in layer.contributions
                ],
            }
        )
    return {
        "example": example,
        "layer_sizes": list(network.layer_sizes),
        "activation": network.activation,
        "loss": network.loss,
        "label": trace.label,
        "target": trace.target.astype(int).tolist(),
        "prediction": int(np.argmax(trace.output)),
        "cost": significant(trace.cost, 7),
        "layers": layers,
        "output_weights": quantise(network.weights[-1]),
        "output_biases": significant_list(network.biases[-1]),
        "batch_average": {
            "size": average.size,
            "cost": significant(average.cost, 7),
            "first_layer": quantise(average.weights[0]),
            "output_layer": quantise(average.weights[-1]),
            "bias_gradients": [significant_list(b) for b in average.biases],
        },
    }


def drawing_dicts(scores: RoomScores, presenter: bool, names: bool) -> list[dict[str, Any]]:
    """The drawings in ``scores`` with their reading; ``author`` for the presenter, or for
    anyone while names are shown; ``hidden`` for the presenter only."""
    items = []
    for drawing, digit, chances, held_out in zip(
        scores.drawings, scores.digits.tolist(), scores.probabilities, scores.held_out.tolist()
    ):
        item: dict[str, Any] = {
            "id": drawing.id,
            "label": drawing.label,
            "digit": digit,
            "probabilities": rounded_list(chances, 5),
            "held_out": held_out,
            "created_at": round(drawing.created_at, 3),
        }
        if presenter or names:
            item["author"] = drawing.author
        if presenter:
            item["hidden"] = drawing.hidden
        items.append(item)
    return items


def gallery_dict(
    scores: RoomScores, gallery: Gallery, run: str, batches_trained: int, presenter: bool
) -> dict[str, Any]:
    """GET /api/gallery: every drawing in ``scores`` as the network reads it after
    ``batches_trained`` mini-batches of ``run``, and the scores of the visible ones."""
    overall = score_frame(scores.score())
    return {
        "run": run,
        "batch": batches_trained,
        "items": drawing_dicts(scores, presenter, gallery.settings.names),
        "count": overall["count"],
        "accuracy": overall["accuracy"],
        "confusion": scores.confusion.tolist(),
        "training": score_frame(scores.score(~scores.held_out)),
        "held_out": score_frame(scores.score(scores.held_out)),
        "settings": dataclasses.asdict(gallery.settings),
        "capacity": gallery.capacity,
    }
