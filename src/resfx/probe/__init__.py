"""Probes per stage: which stage's frozen features transfer best, per architecture.

For each architecture, one frozen inference pass over the train and test images
computes the average-pooled output of every chosen stage (stem, layer1..layer4).
Each stage then gets two probes, the protocols the field trusts:

- **linear** (`linear_probe`): features standardised on the training rows; a stratified,
  seeded validation share held out; a multinomial logistic regression with an L2
  penalty fitted for a whole grid of strengths in one batched L-BFGS solve
  (`fit_logistic`); the strength of best validation accuracy refit on all training rows
  and scored on the test rows. scikit-learn's `C` is `1 / (strength * rows)`.
- **kNN** (`knn_probe`): cosine similarity on L2-normalised features, the top 20
  neighbours voting with weights `exp(sim / 0.07)` (DINO's).

`probe_features` runs both on any `resfx.features.FeatureSource`; `probe_stages` on a
model and two image splits; `run_probe` is `resfx probe` (seeds, several architectures,
probe.json and probe.png).

Example:
    >>> import resfx
    >>> from resfx.data import load_split
    >>> from resfx.models import ResNet, ResNetConfig
    >>> model = resfx.freeze(ResNet(ResNetConfig(width=4, layers=(1, 1, 1, 1))))
    >>> rows = probe_stages(model, load_split("synthetic", "train", 64),
    ...                     load_split("synthetic", "test", 32), stages=["stem", "layer4"],
    ...                     image_size=32)
    >>> [row.stage for row in rows]
    ['stem', 'layer4']
"""

from ._chart import plot_probe as plot_probe
from ._chart import probe_title as probe_title
from ._knn import KnnProbeResult as KnnProbeResult
from ._knn import knn_probe as knn_probe
from ._logistic import LogisticFit as LogisticFit
from ._logistic import fit_logistic as fit_logistic
from ._logistic import strength_to_c as strength_to_c
from ._protocol import DEFAULT_SETTINGS as DEFAULT_SETTINGS
from ._protocol import DEFAULT_STRENGTHS as DEFAULT_STRENGTHS
from ._protocol import LinearProbeResult as LinearProbeResult
from ._protocol import ProbeResult as ProbeResult
from ._protocol import ProbeSettings as ProbeSettings
from ._protocol import linear_probe as linear_probe
from ._protocol import mean_and_std as mean_and_std
from ._protocol import probe_features as probe_features
from ._protocol import probe_stage_sources as probe_stage_sources
from ._protocol import standardise as standardise
from ._protocol import stratified_split as stratified_split
from ._rows import ProbeRow as ProbeRow
from ._rows import format_probe_table as format_probe_table
from ._run import PROBE_OUTPUTS as PROBE_OUTPUTS
from ._run import PROBE_STAGES as PROBE_STAGES
from ._run import ProbeArgs as ProbeArgs
from ._run import probe_stages as probe_stages
from ._run import run_probe as run_probe

__all__ = [
    "DEFAULT_SETTINGS",
    "DEFAULT_STRENGTHS",
    "PROBE_OUTPUTS",
    "PROBE_STAGES",
    "KnnProbeResult",
    "LinearProbeResult",
    "LogisticFit",
    "ProbeArgs",
    "ProbeResult",
    "ProbeRow",
    "ProbeSettings",
    "fit_logistic",
    "format_probe_table",
    "knn_probe",
    "linear_probe",
    "mean_and_std",
    "plot_probe",
    "probe_features",
    "probe_stage_sources",
    "probe_stages",
    "run_probe",
    "standardise",
    "stratified_split",
    "strength_to_c",
]
