"""Weights in, by concern.

The registry of named files (`_registry`, built from `resfx._zoo`), the download and hash
checks (`_download`), reading and checking checkpoints (`_load`). `resfx.weights` is the
public face.
"""
