"""Learning-rate schedules: warmup, cosine floor, warmup-stable-decay shapes."""

import math

import pytest

from pretrain.job_config import LRConfig
from pretrain.lr import lr_multiplier


def test_warmup_is_linear_and_never_zero():
    cfg = LRConfig(schedule="cosine", warmup_steps=4, min_lr_ratio=0.1)
    assert [lr_multiplier(s, cfg, 100) for s in range(4)] == pytest.approx([0.2, 0.4, 0.6, 0.8])


def test_cosine_reaches_the_floor_on_the_last_step():
    cfg = LRConfig(schedule="cosine", warmup_steps=10, min_lr_ratio=0.1)
    values = [lr_multiplier(s, cfg, 100) for s in range(100)]
    assert values[10] == pytest.approx(1.0)
    assert values[-1] == pytest.approx(0.1)
    assert values[55] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 45 / 89)))
    assert all(a >= b for a, b in zip(values[10:], values[11:], strict=False))


@pytest.mark.parametrize("shape", ["linear", "sqrt", "cosine"])
def test_wsd_holds_then_decays_over_the_last_fraction(shape):
    cfg = LRConfig(schedule="wsd", warmup_steps=5, min_lr_ratio=0.0, decay_fraction=0.2, decay_shape=shape)
    values = [lr_multiplier(s, cfg, 100) for s in range(100)]
    assert values[5:80] == [1.0] * 75
    assert values[-1] == pytest.approx(0.0)
    assert 0.0 < values[90] < 1.0
    mid = {"linear": 0.45, "sqrt": 1 - math.sqrt(0.55), "cosine": 0.5 * (1 + math.cos(math.pi * 0.55))}
    assert values[90] == pytest.approx(mid[shape])
