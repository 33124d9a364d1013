"""Scoring one payment at a time: online features, the model's score and reasons, rules."""

from vigil.scoring._reasons import Describer, Reason, elapsed_words, window_words
from vigil.scoring._scorer import Scorer, ScoreResult, check_servable, online_features

__all__ = ["Describer", "Reason", "ScoreResult", "Scorer", "check_servable", "elapsed_words",
           "online_features", "window_words"]
