"""resfx models under torch.fx, torchvision's feature extractor and torch.compile; the input
checks that stay in eager mode; the meta-device build of pretrained models."""

import copy

import pytest
import torch
import torchvision
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

import resfx
from conftest import randomise_resnet_state
from resfx import nn
from resfx.models import ResNet, ResNetConfig

TINY = ResNetConfig(width=4, layers=(1, 1, 1, 1), num_classes=3)
# The suite's runtime shape checks (jaxtyping + typeguard) refuse fx's proxies and would
# break dynamo's graph: the tracing tests run without them, as users do.
tracing = pytest.mark.usefixtures("no_shape_checks")
LEAVES = [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Linear]


@pytest.fixture(scope="module")
def twins() -> tuple[torch.nn.Module, torch.nn.Module]:
    """torchvision's ResNet18 and resfx's with the same (randomised) weights, in eval mode."""
    torch.manual_seed(0)
    theirs = torchvision.models.resnet18(num_classes=5)
    ours = resfx.resnet18(num_classes=5)
    ours.load_state_dict(randomise_resnet_state(theirs, seed=1), strict=True)
    return ours.eval(), theirs.eval()


@tracing
@pytest.mark.parametrize("training", [False, True])
def test_symbolic_trace_gives_the_eager_outputs(training: bool) -> None:
    model = ResNet(TINY).train(training)
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(traced(x), model(x))
    assert {n.target for n in traced.graph.nodes if n.op == "call_function"} >= {
        torch.nn.functional.conv2d,
        torch.nn.functional.batch_norm,
        torch.nn.functional.max_pool2d,
    }


@tracing
def test_feature_extractor_gives_torchvisions_tensors(twins) -> None:
    ours, theirs = twins
    nodes = ["maxpool", "layer1", "layer2", "layer3", "layer4", "fc"]
    x = torch.randn(2, 3, 64, 64)
    ours_out = create_feature_extractor(ours, return_nodes=nodes)(x)
    theirs_out = create_feature_extractor(theirs, return_nodes=nodes)(x)
    assert list(ours_out) == nodes
    for name in nodes:
        torch.testing.assert_close(ours_out[name], theirs_out[name], msg=name)


@tracing
def test_with_resfx_leaf_modules_the_graph_has_torchvisions_node_names(twins) -> None:
    ours, theirs = twins
    kwargs = {"leaf_modules": LEAVES}
    train_names, eval_names = get_graph_node_names(ours, tracer_kwargs=kwargs)
    assert (train_names, eval_names) == get_graph_node_names(theirs)
    assert train_names[-3:] == ["avgpool", "flatten", "fc"]
    # torchvision's ReLU(inplace=True) overwrites the output of the node before it (bn1)
    theirs = copy.deepcopy(theirs)
    for module in theirs.modules():
        if isinstance(module, torch.nn.ReLU):
            module.inplace = False
    x = torch.randn(2, 3, 32, 32)
    ours_out = create_feature_extractor(ours, train_names[1:], tracer_kwargs=kwargs)(x)
    theirs_out = create_feature_extractor(theirs, train_names[1:])(x)
    assert ours_out["avgpool"].shape == (2, 512, 1, 1) and ours_out["flatten"].shape == (2, 512)
    for name in train_names[1:]:
        torch.testing.assert_close(ours_out[name], theirs_out[name], msg=name)


@tracing
def test_compile_fullgraph_of_a_frozen_resnet_has_no_graph_break() -> None:
    torch._dynamo.reset()
    model = resfx.freeze(ResNet(TINY))
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(compiled(x), model(x))
    # eager mode keeps its explanations
    with pytest.raises(ValueError, match="add a batch axis"):
        model(x[0])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_images_of_another_float_dtype_are_explained(dtype: torch.dtype) -> None:
    model = ResNet(TINY)
    with pytest.raises(
        TypeError,
        match=rf"parameters are torch.float32 but the images are {dtype} \(shape \(2, 3, 32, 32\)\);"
        rf" convert them with images.to\(torch.float32\)",
    ) as error:
        model(torch.randn(2, 3, 32, 32, dtype=dtype))
    assert ("torch.autocast" in str(error.value)) == (dtype != torch.float64)


def test_autocast_takes_the_images_it_would_give() -> None:
    model = ResNet(TINY).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(x.bfloat16()).dtype == torch.bfloat16
        assert model(x).dtype == torch.bfloat16
        assert model.to(torch.bfloat16)(x).dtype == torch.bfloat16
        with pytest.raises(TypeError, match="images are torch.float16"):
            model(x.half())


def test_pretrained_build_on_the_meta_device_equals_a_copying_load(tmp_path) -> None:
    theirs = torchvision.models.resnet18()
    state = randomise_resnet_state(theirs, seed=3)
    path = tmp_path / "resnet18.pth"
    torch.save({k: v.half() if k == "fc.weight" else v for k, v in state.items()}, path)
    model = resfx.resnet18(weights=path)
    loaded = model.state_dict()
    for name, tensor in state.items():
        assert loaded[name].device.type == "cpu" and loaded[name].dtype == tensor.dtype, name
        expected = tensor.half().float() if name == "fc.weight" else tensor
        assert torch.equal(loaded[name], expected), name
    assert all(p.requires_grad and isinstance(p, torch.nn.Parameter) for p in model.parameters())
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(ValueError, match="neither a known name"):
        resfx.resnet18(weights=tmp_path / "missing.pth")
