"""Autograd utilities: the graph as data, reachable parameters, gradient flow, saved bytes, drift.

Graph utilities are pure functions over `grad_fn.next_functions`; drawing
(`graph_to_dot`) is separate from tracing.

Example:
    >>> import torch, resfx
    >>> from resfx import autograd
    >>> model = resfx.get_resnet_for_feature_extraction(num_classes=10)
    >>> x = torch.randn(2, 3, 32, 32)
    >>> with autograd.DriftGuard(model), autograd.SavedTensorMeter(exclude=model) as meter:
    ...     loss = model.train()(x).sum()
    ...     autograd.reachable_parameters(loss, model)
    ['fc.weight', 'fc.bias']
    >>> meter.bytes  # the pooled features, saved for fc.weight's gradient
    4096
"""

from .._freeze import DriftError as DriftError
from .._freeze import DriftGuard as DriftGuard
from ._flow import GradientFlowError as GradientFlowError
from ._flow import GradientFlowReport as GradientFlowReport
from ._flow import check_gradient_flow as check_gradient_flow
from ._graph import Graph as Graph
from ._graph import GraphNode as GraphNode
from ._graph import count_graph_nodes as count_graph_nodes
from ._graph import graph_to_dot as graph_to_dot
from ._graph import reachable_parameters as reachable_parameters
from ._graph import trace_graph as trace_graph
from ._saved import SavedTensorMeter as SavedTensorMeter
from ._saved import saved_activation_bytes as saved_activation_bytes

__all__ = [
    "DriftError",
    "DriftGuard",
    "GradientFlowError",
    "GradientFlowReport",
    "Graph",
    "GraphNode",
    "SavedTensorMeter",
    "check_gradient_flow",
    "count_graph_nodes",
    "graph_to_dot",
    "reachable_parameters",
    "saved_activation_bytes",
    "trace_graph",
]
