"""The probe protocol with a grid given out of order: found by the mutation pass."""

import torch

from resfx.probe import ProbeSettings, linear_probe, strength_to_c


def test_an_unordered_grid_reports_and_refits_the_strength_its_validation_chose() -> None:
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(48) % 3
    rows = torch.randn(48, 4, generator=generator) + 0.8 * torch.nn.functional.one_hot(labels, 4)
    settings = ProbeSettings(strengths=(10.0, 1e-4, 0.3))
    result = linear_probe(rows[:36], labels[:36], rows[36:], labels[36:], 3, settings)
    assert result.strengths == (1e-4, 0.3, 10.0)
    best = max(range(3), key=lambda j: (result.val_accuracy[j], j))
    assert result.strength == result.strengths[best]
    assert result.c == strength_to_c(result.strength, 36)
