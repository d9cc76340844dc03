"""Measuring what freezing saves: the timing core shared by `resfx bench` and `benchmarks/`.

Example:
    >>> from resfx.bench import time_step
    >>> time_step(lambda: None, warmup=0, repeats=3).device
    'cpu'
"""

from ._measure import Timing as Timing
from ._measure import machine_info as machine_info
from ._measure import synchronize as synchronize
from ._measure import synchronized as synchronized
from ._measure import time_step as time_step

__all__ = ["Timing", "machine_info", "synchronize", "synchronized", "time_step"]
