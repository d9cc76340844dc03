"""The same guarantees on a GPU (skipped without CUDA; run on the device machine)."""

from collections.abc import Iterator

import pytest
import torch
import torchvision

import resfx
from conftest import randomise_resnet_state
from resfx import fold_batchnorm
from resfx.autograd import DriftGuard

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def _exact_fp32() -> Iterator[None]:
    """Parity is checked in true fp32: TF32 (on by default for cuDNN convolutions) rounds
    inputs to 10 mantissa bits, so the reference ops (fp32 matmuls) and folded weights
    differ from the fused path by ~1e-3 relative under it (measured on an H200)."""
    previous = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = previous


@pytest.fixture(scope="module")
def twins() -> tuple[torch.nn.Module, resfx.ResNet]:
    reference = torchvision.models.resnet34()
    state = randomise_resnet_state(reference, seed=7)
    ours = resfx.resnet34()
    ours.load_state_dict(state)
    return reference.to(CUDA), ours.to(CUDA)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_eval_logits_match_torchvision_on_gpu(twins, precision: str) -> None:
    reference, ours = (m.eval() for m in twins)
    x = torch.randn(8, 3, 224, 224, device=CUDA)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    with torch.inference_mode(), torch.autocast("cuda", dtype=dtype, enabled=precision == "bf16"):
        expected, actual = reference(x).float(), ours(x).float()
        with resfx.nn.reference_ops():
            reference_path = ours(x).float()
    tolerance = 1e-4 if precision == "fp32" else 0.05 * expected.abs().max().item()
    assert (actual - expected).abs().max().item() <= tolerance
    assert (reference_path - expected).abs().max().item() <= max(tolerance, 1e-3)


def test_train_step_gradients_match_torchvision_on_gpu(twins) -> None:
    reference, ours = (m.train() for m in twins)
    x = torch.randn(8, 3, 64, 64, device=CUDA)
    target = torch.randint(0, 1000, (8,), device=CUDA)
    for model in (reference, ours):
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), target).backward()
    theirs = dict(reference.named_parameters())
    for name, parameter in ours.named_parameters():
        torch.testing.assert_close(
            parameter.grad, theirs[name].grad, atol=1e-3, rtol=1e-3, msg=name
        )


def test_frozen_backbone_does_not_drift_on_gpu() -> None:
    model = resfx.resnet34(num_classes=10).to(CUDA)
    resfx.freeze_to(model, "layer4")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    head_before = model.fc.weight.detach().clone()
    with DriftGuard(model):
        model.train()
        for _ in range(3):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(torch.randn(4, 3, 64, 64, device=CUDA)).logsumexp(1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    assert not torch.equal(model.fc.weight, head_before)


def test_folded_backbone_matches_on_gpu(twins) -> None:
    _, ours = twins
    ours.eval()
    folded = fold_batchnorm(ours)
    x = torch.randn(4, 3, 224, 224, device=CUDA)
    with torch.inference_mode():
        torch.testing.assert_close(folded(x), ours(x), atol=1e-3, rtol=1e-3)


def _head_steps(step, generator: torch.Generator, sizes: list[int]) -> list[torch.Tensor]:
    losses = []
    for count in sizes:
        features = torch.randn(count, 64, generator=generator).to(CUDA)
        labels = torch.randint(0, 10, (count,), generator=generator).to(CUDA)
        losses.append(step(features, labels))
    return losses


@pytest.mark.usefixtures("no_shape_checks")
def test_a_graphed_head_step_replays_the_eager_steps_bitwise() -> None:
    from resfx._frozen_step import HeadStep

    torch.manual_seed(0)
    heads = [torch.nn.Linear(64, 10).to(CUDA) for _ in range(2)]
    heads[1].load_state_dict(heads[0].state_dict())
    optimizers = [torch.optim.Adam(h.parameters(), lr=1e-2, fused=True) for h in heads]
    graphed = HeadStep(heads[0], optimizers[0], graph=True)
    assert graphed.graphed
    eager = HeadStep(heads[1], optimizers[1], graph=False)
    optimizers[1].param_groups[0]["capturable"] = True  # the same optimizer code as the graph's
    sizes = [32] * 6 + [7] + [32] * 3 + [7]  # warm-up, capture, replays, a short batch, replays
    ours = _head_steps(graphed, torch.Generator().manual_seed(1), sizes)
    theirs = _head_steps(eager, torch.Generator().manual_seed(1), sizes)
    assert graphed._graph is not None
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(heads[0].parameters(), heads[1].parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.usefixtures("no_shape_checks")  # dynamo cannot trace the checkers' wrappers
@pytest.mark.parametrize("mode", ["max-autotune-no-cudagraphs", "reduce-overhead"])
def test_a_compiled_run_on_the_gpu_trains_as_the_eager_run(mode: str) -> None:
    from resfx.train import TrainingArgs, train

    settings = dict(
        data="synthetic",
        arch="resnet18",
        weights=None,
        trainset_size=200,
        testset_size=100,
        epochs=2,
        batch_size=64,
        image_size=64,
        device="cuda",
    )
    eager = train(TrainingArgs(**settings)).history
    compiled = train(TrainingArgs(**settings, compile=mode)).history
    torch.testing.assert_close(compiled.loss_list, eager.loss_list, rtol=1e-3, atol=1e-4)
    assert abs(compiled.accuracy_list[-1] - eager.accuracy_list[-1]) <= 0.02


def test_nvjpeg_batch_decode_agrees_with_pil_and_falls_back_for_cmyk() -> None:
    import io

    from PIL import Image

    from resfx.data import decode_image_file, decode_jpeg_batch

    generator = torch.Generator().manual_seed(0)
    coarse = torch.randint(0, 256, (6, 8, 3), generator=generator, dtype=torch.uint8)
    photo = Image.fromarray(coarse.numpy()).resize((80, 60), Image.Resampling.BICUBIC)
    blobs = []
    for image in (photo, photo.convert("CMYK"), photo.convert("L")):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        blobs.append(buffer.getvalue())
    images, errors = decode_jpeg_batch(blobs, 32, CUDA)
    assert errors == {} and all(image.device.type == "cuda" for image in images)
    for image, blob in zip(images, blobs, strict=True):
        expected = decode_image_file(blob, 32, draft=False)
        assert (image.cpu().int() - expected.int()).abs().max() <= 3
