"""resfx.autograd: graph tracing, reachable parameters, gradient flow, saved bytes, drift."""

import pytest
import torch
import torchvision
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import resfx
from resfx.autograd import (
    DriftError,
    DriftGuard,
    GradientFlowError,
    SavedTensorMeter,
    check_gradient_flow,
    count_graph_nodes,
    graph_to_dot,
    reachable_parameters,
    saved_activation_bytes,
    trace_graph,
)


def _tiny() -> resfx.ResNet:
    return resfx.ResNet(resfx.ResNetConfig(width=4, layers=(1, 1, 1, 1), num_classes=5))


def _loss(model: nn.Module, batch: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, 32, 32, generator=generator)
    return nn.functional.cross_entropy(model(images), torch.arange(batch) % 5)


def test_trace_graph_of_a_hand_built_expression() -> None:
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    b = torch.tensor([3.0, 4.0], requires_grad=True)
    c = a * b
    out = (c + a).sum()  # `a` feeds two nodes: its leaf appears once
    graph = trace_graph(out)
    names = [node.name for node in graph.nodes]
    assert names == [
        "SumBackward0",
        "AddBackward0",
        "MulBackward0",
        "AccumulateGrad",
        "AccumulateGrad",
    ]
    assert set(graph.edges) == {(0, 1), (1, 2), (1, 3), (2, 3), (2, 4)}
    assert [node.tensor for node in graph.leaves] == [a, b]
    assert count_graph_nodes(out) == 5
    assert trace_graph(torch.ones(2)) == trace_graph(torch.ones(2).sum())
    assert count_graph_nodes(torch.ones(2)) == 0
    leaf = trace_graph(a)
    assert [n.name for n in leaf.nodes] == ["AccumulateGrad"] and leaf.nodes[0].tensor is a


def test_trace_graph_names_parameters_and_walks_after_backward() -> None:
    model = _tiny()
    loss = _loss(model)
    before = trace_graph(loss, model)
    assert sorted(before.parameters) == sorted(name for name, _ in model.named_parameters())
    loss.backward()
    assert trace_graph(loss, model) == before
    dot = graph_to_dot(before)
    assert dot.startswith("digraph autograd {") and "AccumulateGrad\\nfc.weight" in dot
    assert dot.count(" -> ") == len(before.edges)


@given(
    frozen=st.lists(
        st.sampled_from(
            ["conv1", "bn1", "layer1", "layer2.0.downsample", "layer3", "layer4.0.bn2", "fc"]
        ),
        unique=True,
    )
)
def test_reachable_parameters_are_exactly_those_backward_fills(frozen: list[str]) -> None:
    """Two code paths agree: the graph before backward and the .grad fields after it."""
    model = _tiny()
    for name in frozen:
        resfx.freeze(model.get_submodule(name))
    loss = _loss(model)
    reachable = reachable_parameters(loss, model)
    if loss.requires_grad:
        loss.backward()
    assert reachable == [name for name, p in model.named_parameters() if p.grad is not None]
    assert reachable == [name for name, p in model.named_parameters() if p.requires_grad]


def test_reachable_parameters_on_torchvision_resnet34() -> None:
    model = resfx.freeze_to(torchvision.models.resnet34(num_classes=5), "layer3")
    loss = _loss(model)
    reachable = reachable_parameters(loss, model)
    assert reachable == [name for name, p in model.named_parameters() if p.requires_grad]
    assert reachable[0] == "layer4.0.conv1.weight"
    check_gradient_flow(model, loss)
    loss.backward()
    check_gradient_flow(model)


def test_gradient_flow_reports_dead_and_missing_gradients() -> None:
    model = _tiny()
    model.unused = nn.Linear(2, 2)
    resfx.freeze(model.layer1)
    loss = _loss(model)
    with pytest.raises(GradientFlowError, match="does not reach") as before:
        check_gradient_flow(model, loss)
    assert before.value.problems == {"dead": ("unused.weight", "unused.bias")}
    loss.backward()
    with pytest.raises(GradientFlowError, match="without a .grad after backward") as after:
        check_gradient_flow(model)
    assert after.value.problems == {"missing_grad": ("unused.weight", "unused.bias")}
    assert "'unused.bias'" in str(after.value)


def test_gradient_flow_reports_frozen_parameters_that_would_train() -> None:
    model = _tiny()
    loss = _loss(model)
    loss.backward()
    model.layer4.requires_grad_(False)  # by hand, after backward: stale gradients stay
    with pytest.raises(GradientFlowError) as stale:
        check_gradient_flow(model)
    layer4 = tuple(n for n, _ in model.named_parameters() if n.startswith("layer4."))
    assert stale.value.problems == {"frozen_with_grad": layer4}

    model = _tiny()
    loss = _loss(model)
    resfx.freeze(model.fc)  # after the forward pass: the graph still reaches it
    with pytest.raises(GradientFlowError) as late:
        check_gradient_flow(model, loss)
    assert late.value.problems == {"frozen_reachable": ("fc.weight", "fc.bias")}


def test_gradient_flow_reports_non_finite_gradients() -> None:
    model = _tiny()
    with torch.no_grad():
        model.fc.bias[0] = float("inf")
    _loss(model).backward()
    with pytest.raises(GradientFlowError) as raised:
        check_gradient_flow(model)
    assert "fc.weight" in raised.value.problems["non_finite_grad"]


def test_gradient_flow_reports_requires_grad_set_without_underscore() -> None:
    model = _tiny()
    model.layer2.requires_grad = False  # a no-op: layer2 keeps training
    loss = _loss(model)
    assert "layer2.0.conv1.weight" in reachable_parameters(loss, model)
    with pytest.raises(GradientFlowError, match="a no-op") as raised:
        check_gradient_flow(model, loss)
    assert raised.value.problems == {"requires_grad_attribute": ("layer2",)}


def test_gradient_flow_report_when_all_is_well() -> None:
    model = resfx.freeze_to(_tiny(), "layer2")
    loss = _loss(model)
    report = check_gradient_flow(model, loss)
    assert report.reachable == report.trainable
    assert report.trainable == tuple(n for n, p in model.named_parameters() if p.requires_grad)
    stem_to_layer2 = ("conv1.", "bn1.", "layer1.", "layer2.")
    assert report.frozen == tuple(
        n for n, _ in model.named_parameters() if n.startswith(stem_to_layer2)
    )
    assert not set(report.frozen) & set(report.trainable)
    loss.backward()
    assert check_gradient_flow(model).with_grad == report.trainable


def test_saved_tensor_meter_counts_each_storage_once() -> None:
    x = torch.randn(100, requires_grad=True)
    with SavedTensorMeter() as meter:
        y = x.exp()  # saves y (400 bytes)
        z = y[:50] * y[50:]  # saves two views of y's storage: counted already
    assert (meter.bytes, meter.tensors) == (400, 1)
    z.sum().backward()
    assert saved_activation_bytes(lambda: x.detach().exp()) == 0
    with pytest.raises(RuntimeError, match="entered twice"), meter:
        pass


def test_saved_tensor_meter_shows_what_freezing_saves() -> None:
    model = _tiny()
    full = saved_activation_bytes(lambda: _loss(model, batch=4), exclude=model)
    resfx.freeze_to(model, "layer3")
    layer4 = saved_activation_bytes(lambda: _loss(model, batch=4), exclude=model)
    resfx.freeze_to(model, "layer4")
    head = saved_activation_bytes(lambda: _loss(model, batch=4), exclude=model)
    resfx.freeze(model)
    assert saved_activation_bytes(lambda: _loss(model, batch=4), exclude=model) == 0
    assert full > layer4 > head > 0
    # the head's input (4 x 32 floats), log-softmax's output (4 x 5 floats), and the
    # negative log-likelihood's targets (4 int64) and total weight (1 float)
    assert head == 4 * 32 * 4 + 4 * 5 * 4 + 4 * 8 + 4
    assert saved_activation_bytes(lambda: _loss(model, batch=4)) == 0


def test_drift_guard_names_what_changed_bitwise() -> None:
    model = resfx.freeze(_tiny())
    guard = DriftGuard(model)
    assert len(guard.names) == len(model.state_dict())
    guard.check()
    with torch.no_grad():
        model.layer1[0].conv1.weight[0, 0, 0, 0] += 1e-7
        model.layer3[0].bn1.running_var.neg_()
    with pytest.raises(DriftError) as raised:
        guard.check()
    assert raised.value.changed == (
        "layer1.0.conv1.weight: 1 of 144 elements differ",
        "layer3.0.bn1.running_var: 16 of 16 elements differ",
    )


def test_drift_guard_compares_bits_not_values() -> None:
    layer = resfx.freeze(nn.Linear(2, 2))
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([float("nan"), 0.0]))
    guard = DriftGuard(layer)
    guard.check()  # NaN is bitwise equal to itself (torch.equal says it is not)
    with torch.no_grad():
        layer.bias[1] = -0.0  # equal as a value, different bits
    with pytest.raises(DriftError, match="bias: 1 of 2 elements differ"):
        guard.check()
    layer.bias = nn.Parameter(torch.zeros(3), requires_grad=False)
    with pytest.raises(
        DriftError, match=r"bias: was torch.float32 \(2,\), now torch.float32 \(3,\)"
    ):
        guard.check()
    del layer.bias
    layer.register_parameter("bias", None)
    with pytest.raises(DriftError, match="bias: no longer in the module"):
        guard.check()


def test_drift_guard_catches_plain_requires_grad_false_but_not_the_train_policy() -> None:
    model = _tiny()
    model.layer1.requires_grad_(False)
    with pytest.raises(DriftError, match=r"layer1.0.bn1.running_mean: 4 of 4"), DriftGuard(model):
        _loss(model)
    model = resfx.freeze(_tiny().layer1, bn="train")
    with DriftGuard(model) as guard:
        model(torch.randn(2, 4, 8, 8))
    assert not any("running" in name for name in guard.names)


def test_drift_guard_context_does_not_check_after_an_error_and_needs_something_frozen() -> None:
    model = resfx.freeze(nn.Linear(2, 2))
    with pytest.raises(KeyError), DriftGuard(model):
        with torch.no_grad():
            model.bias.add_(1)
        raise KeyError("inside")
    with pytest.raises(ValueError, match="nothing in this Linear is frozen"):
        DriftGuard(nn.Linear(2, 2))


def test_metering_keeps_nothing_alive() -> None:
    # cross-entropy saves one of its outputs: returned as is, the saved output would tie
    # the graph to itself and keep the model alive (a ResNet34 per meter on the GPU)
    import gc
    import weakref

    model = resfx.nn.Linear(8, 3)
    x, y = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
    with SavedTensorMeter(exclude=model) as meter:
        loss = torch.nn.functional.cross_entropy(model(x), y)
    assert meter.bytes > 0  # no backward: a graph metered only must be freed as well
    alive = weakref.ref(model), weakref.ref(meter)
    del model, meter, loss
    gc.collect()
    assert [ref() for ref in alive] == [None, None]
