"""The risk model, its calibration, the 0-100 score and the bundle on disk."""

import json

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil import ModelError, SchemaError
from vigil.features import Count, FeatureSet, Value
from vigil.models import (
    IsotonicCalibrator,
    ModelBundle,
    PlattCalibrator,
    RiskModel,
    probability_at_score,
    risk_level,
    risk_score,
)


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.7, size=3000)) > 1.8
    return X, y


def test_fit_predict_and_early_stopping(toy):
    X, y = toy
    model = RiskModel(n_estimators=400, learning_rate=0.3, early_stopping_rounds=10)
    model.fit(X[:2000], y[:2000], X_valid=X[2000:], y_valid=y[2000:])
    assert model.best_iteration_ < 399  # stopped early
    assert model.booster_.num_boosted_rounds() == model.best_iteration_ + 1
    p = model.predict_proba(X[2000:])
    assert p.shape == (1000,) and np.all((p >= 0) & (p <= 1))
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y[2000:], p) > 0.85


def test_platt_keeps_the_ranking_and_calibrates(toy):
    X, y = toy
    model = RiskModel(n_estimators=50, early_stopping_rounds=None).fit(
        X[:2000], y[:2000], X_valid=X[2000:], y_valid=y[2000:])
    margin = model.predict_margin(X[2000:])
    p = model.predict_proba(X[2000:])
    order = np.argsort(margin)
    assert np.all(np.diff(p[order]) >= 0)  # strictly monotone map: same ranking
    # calibrated on the validation slice: mean predicted rate near the observed rate
    assert abs(p.mean() - y[2000:].mean()) < 0.02


def test_isotonic_calibrator_round_trips_and_is_monotone():
    rng = np.random.default_rng(0)
    m = rng.normal(size=2000)
    y = rng.random(2000) < 1 / (1 + np.exp(-2 * m))
    cal = IsotonicCalibrator().fit(m, y)
    grid = np.linspace(-3, 3, 50)
    assert np.all(np.diff(cal.predict(grid)) >= 0)
    again = IsotonicCalibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
    np.testing.assert_array_equal(again.predict(grid), cal.predict(grid))
    platt = PlattCalibrator().fit(m, y)
    assert platt.a_ == pytest.approx(2.0, rel=0.2)


def test_model_rejects_one_class_and_bad_params(toy):
    X, _ = toy
    with pytest.raises(ModelError, match="both fraud and legitimate"):
        RiskModel().fit(X, np.zeros(len(X)))
    with pytest.raises(ModelError, match="unknown model parameter 'depth'"):
        RiskModel().set_params(depth=3)
    with pytest.raises(ModelError, match="not fitted"):
        RiskModel().predict_proba(X)


def test_same_seed_same_model(toy, tmp_path):
    X, y = toy
    a = RiskModel(n_estimators=30, subsample=0.7, seed=3).fit(X, y)
    b = RiskModel(n_estimators=30, subsample=0.7, seed=3).fit(X, y)
    c = RiskModel(n_estimators=30, subsample=0.7, seed=4).fit(X, y)
    a.save(tmp_path / "a"), b.save(tmp_path / "b"), c.save(tmp_path / "c")
    read = lambda n: (tmp_path / n / "model.ubj").read_bytes()  # noqa: E731
    assert read("a") == read("b")
    assert read("a") != read("c")


def test_risk_score_scale_and_levels():
    assert risk_score(np.array([1e-6, 1e-4, 0.01, 0.5, 0.999])).tolist() == [0, 0, 40, 80, 100]
    assert risk_score(probability_at_score(65)).item() == 65
    assert risk_level(np.array([10, 65, 74, 75, 99])).tolist() == [
        "normal", "elevated", "elevated", "highest", "highest"]
    s = risk_score(np.linspace(0, 1, 101))
    assert np.all(np.diff(s) >= 0)


def _bundle(toy):
    X, y = toy
    fs = FeatureSet("toy", {"card": "card_id"},
                    [Value("a"), Value("b"), Count(by="card", window="1h")])
    model = RiskModel(n_estimators=20, early_stopping_rounds=None).fit(
        X, y, feature_names=fs.names)
    return fs, ModelBundle(fs, model, training={"window": {"start": "2024-01-01"}},
                           metrics={"validation": {"auc": 0.9}})


def _features(X):
    return pa.table({"payment_id": [str(i) for i in range(len(X))], "a": X[:, 0],
                     "b": X[:, 1], "count_by_card_1h": X[:, 2]})


def test_bundle_round_trip_gives_identical_scores_without_pickle(toy, tmp_path):
    X, _ = toy
    fs, bundle = _bundle(toy)
    bundle.save(tmp_path / "b")
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["bundle.json", "model.ubj"]
    doc = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert doc["feature_set"] == fs.to_dict()
    assert doc["training"]["window"]["start"] == "2024-01-01"
    assert {"xgboost", "duckdb", "python"} <= set(doc["libraries"])
    assert doc["model_version"].startswith("toy-")
    loaded = ModelBundle.load(tmp_path / "b")
    table = _features(X[:200])
    np.testing.assert_array_equal(loaded.score(table).column("probability").to_numpy(),
                                  bundle.score(table).column("probability").to_numpy())
    assert loaded.feature_set == fs
    assert loaded.model_version == bundle.model_version


def test_bundle_errors(toy, tmp_path):
    X, _ = toy
    _, bundle = _bundle(toy)
    with pytest.raises(ModelError, match=r"bundle\.json is missing"):
        ModelBundle.load(tmp_path / "nothing")
    bundle.save(tmp_path / "b")
    (tmp_path / "b" / "model.ubj").write_bytes(b"tampered")
    with pytest.raises(ModelError, match="does not match the checksum"):
        ModelBundle.load(tmp_path / "b")
    bundle.save(tmp_path / "c")
    doc = json.loads((tmp_path / "c" / "bundle.json").read_text())
    doc["format"] = 99
    (tmp_path / "c" / "bundle.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="format 99 is not supported"):
        ModelBundle.load(tmp_path / "c")
    with pytest.raises(SchemaError, match="count_by_card_1h"):
        bundle.score(_features(X[:5]).drop_columns(["count_by_card_1h"]))


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=0.0, max_value=1.0, allow_nan=False))
def test_the_scalar_risk_score_equals_the_vectorised_one(p):
    from vigil.models._risk_score import risk_level, risk_level_one, risk_score_one

    score = risk_score_one(p)
    assert score == int(risk_score(np.array([p]))[0])
    assert risk_level_one(score) == str(risk_level(score))


@pytest.fixture(scope="module")
def serving_model(toy):
    X, y = toy
    model = RiskModel(n_estimators=60, learning_rate=0.3, max_depth=4)
    return model.fit(X[:2000], y[:2000]).for_serving()


_CELL = st.one_of(st.floats(-5, 5, width=32), st.just(float("nan")))


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.lists(_CELL, min_size=3, max_size=3), min_size=1, max_size=5))
def test_the_direct_c_api_path_gives_xgboosts_own_numbers(serving_model, rows):
    """Margins and SHAP contributions through :class:`DirectBooster` equal what XGBoost's
    Python API gives for the same rows, bit for bit, missing values included."""
    import xgboost as xgb

    from vigil.models._xgb_direct import DirectBooster

    x = np.array(rows, dtype=np.float32)
    booster = serving_model._direct.booster
    direct = DirectBooster(booster)
    want_margin = booster.inplace_predict(x, predict_type="margin", missing=np.nan)
    want_contribs = booster.predict(xgb.DMatrix(x, missing=np.nan), pred_contribs=True)
    assert np.array_equal(direct.margins(x), want_margin.astype(np.float64))
    assert np.array_equal(direct.contributions(x), want_contribs.astype(np.float64))
    margin, _p, contribs = serving_model.explain_one(x[0])
    assert np.array_equal(contribs, want_contribs[0].astype(np.float64))
    assert serving_model.predict_one(x[0])[0] == pytest.approx(margin, rel=1e-5, abs=1e-5)


def test_the_direct_path_refuses_rows_of_the_wrong_width(serving_model):
    from vigil.models._xgb_direct import DirectBooster

    direct = DirectBooster(serving_model._direct.booster)
    with pytest.raises(ValueError, match="rows of 3 features"):
        direct.margins(np.zeros(4))
    with pytest.raises(ValueError, match="rows of 3 features"):
        direct.contributions(np.zeros((2, 2)))
