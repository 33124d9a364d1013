"""Offline jobs end to end: prepare features, train a bundle on a window, score, evaluate."""

from vigil.pipeline._demo import run_demo
from vigil.pipeline._jobs import (
    Prepared,
    TrainWindow,
    data_span,
    default_train_window,
    evaluate_window,
    graph_spec,
    graph_table,
    model_inputs,
    prepare,
    score_window,
    test_rows,
    train_bundle,
)

__all__ = [
    "Prepared",
    "TrainWindow",
    "data_span",
    "default_train_window",
    "evaluate_window",
    "graph_spec",
    "graph_table",
    "model_inputs",
    "prepare",
    "run_demo",
    "score_window",
    "test_rows",
    "train_bundle",
]
