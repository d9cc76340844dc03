"""Smoke test of `benchmarks/extract.py` (folder -> every stage's features -> .npy, resfx vs
torchvision): 16 generated JPEGs, one round, no RSS child. Run the script itself for numbers."""

import extract


def test_extract_benchmark_runs_and_both_sides_write_the_same_features(benchmark) -> None:
    argv = ["--images", "16", "--size", "32", "--batch-size", "8", "--rounds", "1"]
    result = benchmark.pedantic(extract.main, args=(argv,), rounds=1, iterations=1)
    assert set(result["rates"]) == {
        "resfx, 0 workers",
        "resfx, 2 workers",
        "torchvision DataLoader, 0 workers",
        "torchvision DataLoader, 2 workers",
        "decode only, resfx 2 workers",
        "decode limit, decode_jpeg + resize, 1 core",
    }
    assert all(len(rates) == 1 and rates[0] > 0 for rates in result["rates"].values())
    # the same weights and stages; only the draft decode's pixels differ
    assert set(result["feature_gap"]) == {"stem", "layer1", "layer2", "layer3", "layer4", "pooled"}
    assert max(result["feature_gap"].values()) < 0.5
