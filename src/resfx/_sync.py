"""The old name of `resfx._device_sync`, kept while `train/_loop.py` imports it from here."""

from ._device_sync import synchronize as synchronize
