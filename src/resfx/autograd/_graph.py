"""The autograd graph as data: a pure walk over `grad_fn.next_functions`."""

from dataclasses import dataclass, field

from torch import Tensor, nn

from .._typing import AnyTensor


@dataclass(frozen=True)
class GraphNode:
    """One node of an autograd graph.

    Args:
        index: its position in `Graph.nodes` (0 is the output's `grad_fn`).
        name: the node's type, e.g. `"ConvolutionBackward0"`; `"AccumulateGrad"`
            for a leaf tensor that receives a gradient.
        tensor: the leaf tensor of an `AccumulateGrad` node, `None` otherwise
            (not compared: nodes are equal by position, name and parameter).
        parameter: the name of that leaf in the model, when it is one of its
            parameters and a model was given.

    Example:
        >>> GraphNode(0, "AddBackward0", None, None).name
        'AddBackward0'
    """

    index: int
    name: str
    tensor: Tensor | None = field(compare=False)
    parameter: str | None


@dataclass(frozen=True)
class Graph:
    """The part of an autograd graph that a backward from one output would run.

    Args:
        nodes: every node, breadth-first from the output, each once.
        edges: `(i, j)` when node `i` passes a gradient to node `j`.

    Example:
        >>> import torch
        >>> w = torch.ones(2, requires_grad=True)
        >>> graph = trace_graph((w * 3).sum())
        >>> [node.name for node in graph.nodes], graph.edges
        (['SumBackward0', 'MulBackward0', 'AccumulateGrad'], ((0, 1), (1, 2)))
    """

    nodes: tuple[GraphNode, ...]
    edges: tuple[tuple[int, int], ...]

    @property
    def leaves(self) -> tuple[GraphNode, ...]:
        """The `AccumulateGrad` nodes: the tensors a backward would give a `.grad`."""
        return tuple(node for node in self.nodes if node.tensor is not None)

    @property
    def parameters(self) -> tuple[str, ...]:
        """Names of the model's parameters among the leaves, in graph order."""
        return tuple(node.parameter for node in self.leaves if node.parameter is not None)


def trace_graph(output: AnyTensor, model: nn.Module | None = None) -> Graph:
    """Walk the autograd graph behind `output`, before or after `backward()`.

    Only `grad_fn.next_functions` is read: nothing runs, nothing is kept
    alive beyond the returned nodes. A tensor that needs no gradient has an
    empty graph; a leaf that needs one is a single `AccumulateGrad` node.

    Args:
        output: a tensor computed with autograd recording (usually the loss).
        model: if given, leaves that are its parameters carry their names.

    Returns:
        The graph.

    Example:
        >>> import torch, resfx
        >>> model = resfx.nn.Linear(3, 2)
        >>> graph = trace_graph(model(torch.randn(4, 3)).sum(), model)
        >>> graph.parameters
        ('bias', 'weight')
    """
    names = {} if model is None else {id(p): name for name, p in model.named_parameters()}
    if output.grad_fn is None:
        if not output.requires_grad:
            return Graph((), ())
        return Graph((GraphNode(0, "AccumulateGrad", output, names.get(id(output))),), ())
    functions = [output.grad_fn]
    position = {id(output.grad_fn): 0}
    edges = []
    for i, function in enumerate(functions):  # grows while walking: breadth-first
        for successor, _ in function.next_functions:
            if successor is None:
                continue
            j = position.setdefault(id(successor), len(functions))
            if j == len(functions):
                functions.append(successor)
            edges.append((i, j))
    nodes = []
    for i, function in enumerate(functions):
        tensor = getattr(function, "variable", None)
        parameter = None if tensor is None else names.get(id(tensor))
        nodes.append(GraphNode(i, type(function).__name__, tensor, parameter))
    return Graph(tuple(nodes), tuple(edges))


def reachable_parameters(loss: AnyTensor, model: nn.Module) -> list[str]:
    """Names of the parameters of `model` that `loss.backward()` will give a gradient.

    Known before `backward()` runs: a parameter receives a gradient exactly
    when its `AccumulateGrad` node is reachable from the loss. Frozen
    parameters (`requires_grad=False`) never are.

    Args:
        loss: the tensor to differentiate.
        model: the model whose parameters to name.

    Returns:
        The names, in `model.named_parameters()` order.

    Example:
        >>> import torch, resfx
        >>> model = resfx.get_resnet_for_feature_extraction(num_classes=10)
        >>> reachable_parameters(model(torch.randn(1, 3, 32, 32)).sum(), model)
        ['fc.weight', 'fc.bias']
    """
    reached = set(trace_graph(loss, model).parameters)
    return [name for name, _ in model.named_parameters() if name in reached]


def count_graph_nodes(output: AnyTensor) -> int:
    """How many autograd nodes a backward from `output` runs (leaves included).

    Args:
        output: the tensor to differentiate.

    Returns:
        The number of distinct nodes; 0 when `output` needs no gradient.

    Example:
        >>> import torch
        >>> count_graph_nodes((torch.ones(2, requires_grad=True) * 3).sum())
        3
    """
    return len(trace_graph(output).nodes)


def graph_to_dot(graph: Graph) -> str:
    """Graphviz DOT text of a traced graph (render with `dot -Tsvg`); drawing kept apart from tracing.

    Args:
        graph: from `trace_graph`.

    Returns:
        The DOT source: one box per node, named parameters in the leaf labels,
            edges in the direction gradients flow.

    Example:
        >>> import torch
        >>> w = torch.ones(2, requires_grad=True)
        >>> print(graph_to_dot(trace_graph((w * 3).sum())))
        digraph autograd {
          n0 [label="SumBackward0"];
          n1 [label="MulBackward0"];
          n2 [label="AccumulateGrad"];
          n0 -> n1;
          n1 -> n2;
        }
    """
    lines = ["digraph autograd {"]
    for node in graph.nodes:
        label = node.name if node.parameter is None else f"{node.name}\\n{node.parameter}"
        lines.append(f'  n{node.index} [label="{label}"];')
    lines.extend(f"  n{i} -> n{j};" for i, j in graph.edges)
    lines.append("}")
    return "\n".join(lines)
