"""KL over the answer choices and top-1 agreement, from stored responses."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fixture_store import lm_eval_fixture

from evalkit.compare.divergence import choice_loglikelihoods, kl_and_agreement, per_document


def test_identical_loglikelihoods_give_kl_zero_and_agreement_one() -> None:
    _, samples = lm_eval_fixture("v1_hellaswag")
    responses = pd.Series([s.response for s in samples])
    out = per_document(responses, responses.copy())
    assert out["kl"].notna().all()
    np.testing.assert_allclose(out["kl"], 0.0, atol=1e-12)
    assert (out["agree"] == 1).all()


def test_known_kl_and_disagreement() -> None:
    p, q = np.array([0.7, 0.2, 0.1]), np.array([0.2, 0.5, 0.3])
    kl, agree = kl_and_agreement(np.log(p)[None] + 3.0, np.log(q)[None] - 1.0)  # shifts: unnormalised lls
    assert kl[0] == pytest.approx(float(np.sum(p * np.log(p / q))))
    assert not agree[0]


def test_generation_responses_are_left_out() -> None:
    mc = json.dumps({"argmax": 0, "loglikelihoods": [-1.0, -2.0]})
    out = per_document(pd.Series([mc, "42"]), pd.Series([mc, "41"]))
    assert out["kl"].iloc[0] == 0.0 and np.isnan(out["kl"].iloc[1])
    assert choice_loglikelihoods("The answer is 4") is None
