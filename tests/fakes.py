"""Stand-ins shared by the scenario and calibration tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from studentflow.synth.pairs import linear_predictor


class FakeModel:
    """Log-linear model with the GravityModel contract: params, predict, draw_params."""

    def __init__(self, params: dict, se: float = 0.02):
        self.params = pd.Series(params, dtype=float)
        self.se = se

    def predict(self, pairs, params=None):
        p = self.params if params is None else params
        return np.exp(linear_predictor(pairs, dict(p)))

    def draw_params(self, n, seed):
        rng = np.random.default_rng(seed)
        draws = self.params.to_numpy() + self.se * rng.standard_normal((n, len(self.params)))
        return pd.DataFrame(draws, columns=self.params.index)
