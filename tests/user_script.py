"""A researcher's script over resfx's public API, as the README, the quick start and the guides use it.

Every call those pages show is here, with the annotations a user would write, except the
guides' deliberate mistakes (`model.layer1.requires_grad = False`), which mypy rejects. The packaging test
(`tests/test_packaging.py`) checks this file with `mypy --strict` against the installed wheel and
runs it there: tiny models, random weights, generated images, offline, in a temporary folder.
Run it by hand with `python tests/user_script.py`.
"""

import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from safetensors.torch import save_file
from torch import Tensor
from torch.utils.data import TensorDataset

import resfx
from resfx import autograd, data
from resfx.data import load_split
from resfx.features import FeatureCache, FeatureStore, TensorFeatures, extract
from resfx.plot import plot_comparison, plot_history
from resfx.probe import ProbeSettings, probe_features, probe_stages
from resfx.train import TrainHistory, TrainingArgs, TrainResult, train

IMAGE_SIZE = 32
"""Small images keep the script to seconds on a CPU."""


def small_resnet(num_classes: int = 10) -> resfx.ResNet:
    torch.manual_seed(0)
    return resfx.ResNet(resfx.ResNetConfig(width=8, layers=(1, 1, 1, 1), num_classes=num_classes))


def batch(size: int, num_classes: int = 10) -> tuple[Tensor, Tensor]:
    return torch.randn(size, 3, IMAGE_SIZE, IMAGE_SIZE), torch.randint(0, num_classes, (size,))


def quick_start() -> None:
    """README.md and docs/quickstart.md."""
    weights: str | None = None  # "IMAGENET1K_V1" for real use (a download)
    model: resfx.ResNet = resfx.get_resnet_for_feature_extraction(num_classes=10, weights=weights)
    optimizer = torch.optim.Adam(resfx.parameter_groups(model, lr=1e-3))
    images, labels = batch(8)
    loss = F.cross_entropy(model(images), labels)
    print(resfx.check_gradient_flow(model, loss))
    loss.backward()
    optimizer.step()
    print(resfx.check_gradient_flow(model))

    model = resfx.ResNet(resfx.ResNetConfig(width=8, layers=(1, 1, 1, 1), num_classes=10))
    resfx.freeze_to(model, "layer3")
    summary: resfx.ParameterSummary = resfx.parameter_summary(model)
    print(f"{summary.trainable} of {summary.total} parameters train")
    print([name for name, _ in resfx.trainable_parameters(model)][:3])
    optimizer = torch.optim.Adam(resfx.parameter_groups(model, lr=1e-3))
    resfx.unfreeze(model.layer3, optimizer=optimizer, lr_scale=0.1)
    rates: list[float] = [group["lr"] for group in optimizer.param_groups]
    print(rates)

    tv = torchvision.models.resnet18(weights=None)
    resfx.freeze(tv)
    tv.fc = torch.nn.Linear(tv.fc.in_features, 10)
    print(resfx.bn_policy(tv.bn1), [name for name, _ in resfx.trainable_parameters(tv)])


def staged_fine_tuning() -> None:
    """docs/guides/linear-probe-to-fine-tuning.md."""
    model = small_resnet()
    tuner = resfx.Finetuner(
        model,
        stages=[("head", 0), ("layer4", 1), ("layer3", 2)],
        epochs=3,
        steps_per_epoch=2,
        lr=1e-2,
        lr_decay=0.5,
        weight_decay=0.05,
        optimizer="adamw",
        schedule="cosine",
        warmup_epochs=0.5,
    )
    print([(g["stage"], g["weight_decay"], len(g["params"])) for g in tuner.optimizer.param_groups])
    for step in range(6):
        images, labels = batch(4)
        loss = F.cross_entropy(model.train()(images), labels)
        tuner.optimizer.zero_grad()
        loss.backward()
        tuner.optimizer.step()
        started: list[str] = tuner.step()
        rates = ", ".join(f"{lr:.5f}" for lr in tuner.learning_rates()[::2])
        print(f"step {step + 1}: started {started}, head/layer4/layer3 rates {rates}")

    model = resfx.freeze(resfx.ResNet(resfx.ResNetConfig(width=8, layers=(1, 1, 1, 1))))
    resfx.unfreeze(model.fc)
    opt = torch.optim.AdamW(resfx.parameter_groups(model, lr=1e-2, weight_decay=0.05))
    saved = opt.state_dict()
    resfx.unfreeze(model.layer4, optimizer=opt, lr_scale=0.1, model=model)
    print([(round(g["lr"], 6), g["weight_decay"]) for g in opt.param_groups])
    resfx.load_optimizer_state(opt, saved)
    print(len(opt.param_groups))


def migrating(workdir: Path) -> None:
    """docs/guides/migrating.md: torchvision and timm checkpoints, torchvision models."""
    for name, spec in resfx.weights.PRETRAINED.items():
        if spec.arch == "resnet34":
            print(f"{name}: {spec.url} -> $TORCH_HOME/hub/checkpoints/{spec.file_name}")

    tv = torchvision.models.resnet34(weights=None).eval()
    torch.save(tv.state_dict(), workdir / "resnet34-torchvision.pth")
    save_file(tv.state_dict(), workdir / "model.safetensors")
    from_pth = resfx.resnet34(weights=str(workdir / "resnet34-torchvision.pth")).eval()
    from_safetensors = resfx.resnet34(weights=str(workdir / "model.safetensors")).eval()
    images = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        expected: Tensor = tv(images)
        for model in (from_pth, from_safetensors):
            print(torch.allclose(model(images), expected, atol=1e-5))

    cifar_model = torchvision.models.resnet18(num_classes=10)
    try:
        resfx.weights.check_state_dict(resfx.resnet18(), cifar_model.state_dict())
    except resfx.weights.CheckpointMismatchError as error:
        print(error)
    tv.load_state_dict(from_pth.state_dict(), strict=True)

    tv = torchvision.models.resnet18(weights=None)
    resfx.freeze(tv)
    tv.fc = torch.nn.Linear(tv.fc.in_features, 10)
    optimizer = torch.optim.Adam(resfx.parameter_groups(tv, lr=1e-3))
    tv.train()
    loss = F.cross_entropy(tv(torch.randn(4, 3, IMAGE_SIZE, IMAGE_SIZE)), torch.arange(4))
    print(resfx.check_gradient_flow(tv, loss), "| bn1 training:", tv.bn1.training)
    resfx.freeze_to(tv, "layer3")
    resfx.unfreeze(tv.layer4, optimizer=optimizer, lr_scale=0.1)
    summary = resfx.parameter_summary(tv)
    print(f"{summary.trainable:,} trainable, {len(optimizer.param_groups)} parameter groups")

    backbone = torchvision.models.resnet18(weights=None).eval()
    folded: torch.nn.Module = resfx.fold_batchnorm(backbone)
    with torch.no_grad():
        print(torch.allclose(folded(images), backbone(images), rtol=1e-4, atol=1e-4))


def model_zoo() -> None:
    """docs/guides/model-zoo.md and docs/parity.md."""
    with torch.device("meta"):
        empty = resfx.resnet18()
    empty.load_state_dict(resfx.resnet18().state_dict(), strict=True, assign=True)
    print(next(empty.parameters()).device)
    model = resfx.create_model("resnext50_32x4d", num_classes=10)
    print(model.config.groups, model.config.width_per_group, model.fc)
    transform = resfx.weights.PRETRAINED["resnet50.IMAGENET1K_V2"].transforms()
    image = torch.randint(0, 256, (3, 40, 30), dtype=torch.uint8)
    print(tuple(transform(image).shape))
    for arch in resfx.list_models():
        with torch.device("meta"):
            model = resfx.create_model(arch)
        count = sum(p.numel() for p in model.parameters())
        specs = [s for s in resfx.weights.PRETRAINED.values() if s.arch == arch]
        names = ", ".join(f"{s.name} ({s.transform.resize_size})" for s in specs)
        print(f"| {arch} | {count / 1e6:.1f} M | {model.config.feature_dim} | {names} |")


def proving_freezing() -> None:
    """docs/guides/proving-freezing.md and the graph half of docs/guides/tutorial-cifar10.md."""
    images, labels = batch(4)

    def loss_of(model: torch.nn.Module) -> Tensor:
        return F.cross_entropy(model(images), labels)

    model = resfx.freeze_to(small_resnet(), "layer3")
    print(autograd.reachable_parameters(loss_of(model), model))
    loss = loss_of(model)
    resfx.freeze(model.layer4)
    print(len(autograd.reachable_parameters(loss, model)), "parameters will still get a gradient")
    try:
        resfx.check_gradient_flow(model, loss)
    except resfx.GradientFlowError as error:
        print(error.problems)

    model = small_resnet()
    loss_of(model).backward()
    model.layer1.requires_grad_(False)
    try:
        resfx.check_gradient_flow(model)
    except resfx.GradientFlowError as error:
        print(list(error.problems), len(error.problems["frozen_with_grad"]), "parameters")
    optimizer: torch.optim.Optimizer
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    report: resfx.OptimizerReport = resfx.check_optimizer(optimizer, model)
    print(report.ok, len(report.frozen_held), len(report.frozen_with_grad))
    block = model.layer1[0]  # a stage's blocks index as plain modules
    assert isinstance(block, resfx.models.BasicBlock)
    before = block.conv1.weight.clone()
    optimizer.step()
    print("layer1 moved:", not torch.equal(before, block.conv1.weight))

    model = small_resnet()
    model.unused_head = torch.nn.Linear(64, 10)
    try:
        resfx.check_gradient_flow(model, loss_of(model))
    except resfx.GradientFlowError as error:
        print(error.problems)
    del model.unused_head

    model = resfx.freeze_to(small_resnet(), "layer3")
    optimizer = torch.optim.AdamW(resfx.parameter_groups(model, lr=1e-3, weight_decay=0.01))
    resfx.check_optimizer(optimizer, model, strict=True)
    with autograd.DriftGuard(model) as guard:
        for _ in range(2):
            model.train()
            loss = loss_of(model)
            resfx.check_gradient_flow(model, loss)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            print(resfx.check_gradient_flow(model))
            optimizer.step()
    print(len(guard.names), "frozen parameters and buffers bitwise unchanged")

    frozen_backbone = small_resnet()
    frozen_backbone.requires_grad_(False)
    frozen_backbone.fc.requires_grad_(True)
    running_mean = frozen_backbone.bn1.running_mean
    assert running_mean is not None  # `None` only for a BatchNorm without running statistics
    before = running_mean.clone()
    frozen_backbone.train()(images)
    print("running mean unchanged:", torch.equal(before, running_mean))
    with autograd.SavedTensorMeter(exclude=frozen_backbone) as meter:
        loss = loss_of(frozen_backbone)
    graph = autograd.trace_graph(loss, frozen_backbone)
    print(f"{len(graph.nodes)} graph nodes, {len(graph.parameters)} parameters, {meter.bytes:,} B")
    print(autograd.graph_to_dot(graph)[:40], autograd.count_graph_nodes(loss))
    try:
        with autograd.DriftGuard(frozen_backbone):
            frozen_backbone.train()(images)
    except autograd.DriftError as error:
        print(len(error.changed), "frozen tensors changed, among them:", error.changed[:3])
    for policy in ("eval", "batch", "train"):
        model = resfx.freeze_to(small_resnet(), "layer4", bn=policy).train()
        print(policy, model.bn1.training, tuple(model.forward_pooled(images).shape))


def timm_interface() -> None:
    """docs/guides/migrating.md, timm's model interface."""
    images = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE)
    features = resfx.create_model("resnet18", features_only=True, out_indices=(0, 2, 4)).eval()
    maps: list[Tensor] = features(images)
    print([tuple(m.shape) for m in maps])
    print(features.feature_info.channels(), features.feature_info.reduction())
    print(features.feature_info.module_name())
    model = small_resnet().eval()
    unpooled: Tensor = model.forward_features(images)
    logits: Tensor = model.forward_head(unpooled)
    pooled: Tensor = model.forward_head(unpooled, pre_logits=True)
    print(tuple(unpooled.shape), tuple(logits.shape), tuple(pooled.shape), model.num_features)
    last, intermediates = model.forward_intermediates(images, indices=[1, 4])
    print(tuple(last.shape), [tuple(m.shape) for m in intermediates])
    print([info["module"] for info in model.feature_info], model.get_classifier())
    model.reset_classifier(3)
    print(tuple(model(images).shape))


def training(workdir: Path) -> None:
    """docs/guides/tutorial-cifar10.md and the training half of docs/guides/your-own-images.md."""
    model = resfx.get_resnet_for_feature_extraction(10)
    summary = resfx.parameter_summary(model)
    print(f"{summary.trainable:,} trainable, {summary.frozen:,} frozen parameters")

    args = TrainingArgs(
        data="synthetic",
        weights=None,
        arch="resnet18",
        trainset_size=20,
        testset_size=10,
        epochs=1,
        batch_size=8,
        image_size=IMAGE_SIZE,
        subset="stratified",
        device="cpu",
        output_dir=str(workdir / "runs" / "head"),
    )
    loss_list: list[float]
    accuracy_list: list[float]
    loss_list, accuracy_list, trained = train(args)
    print(len(loss_list), len(accuracy_list), resfx.trainable_parameters(trained)[0][0])
    cached: TrainResult = train(
        dataclasses.replace(args, mode="cached", output_dir=str(workdir / "runs" / "cached"))
    )
    print(f"{len(cached.loss_list)} steps; features took {cached.history.feature_seconds:.2f} s")
    head = TrainHistory.load_json(workdir / "runs" / "head" / "history.json")
    plot_history(head, workdir / "head.png")
    figure = plot_comparison([head, cached], workdir / "modes.png")
    print([axis.get_title() for axis in figure.axes])

    backbone = resfx.freeze(small_resnet())
    split = load_split("synthetic", "train", 16, subset="stratified")
    cache = FeatureCache(workdir / "feature-cache")
    features: Tensor = cache.features(backbone, split, image_size=IMAGE_SIZE)
    print(tuple(features.shape), f"misses={cache.misses}, hits={cache.hits}")
    last = backbone.layer4[0]
    assert isinstance(last, resfx.models.BasicBlock)
    running_var = last.bn2.running_var
    assert running_var is not None
    with torch.no_grad():
        running_var.mul_(2)  # one buffer of the backbone changes: a new key
    cache.features(backbone, split, image_size=IMAGE_SIZE)
    print(f"misses={cache.misses}, hits={cache.hits}")

    generator = torch.Generator().manual_seed(0)
    images = torch.rand(16, 3, 28, 28, generator=generator)
    labels = torch.arange(16) % 4
    mine = TensorDataset(images, labels)
    train_split = data.from_dataset(mine, "train", name="my-tensors", size=12)
    test_split = data.from_dataset(mine, "test", name="my-tensors", subset="stratified", size=4)
    mine_args = dataclasses.replace(args, mode="cached", n_classes=4, output_dir=None)
    result = train(mine_args, data=(train_split, test_split))
    print(result.history.dataset, len(result.history.accuracy_list))


def image_folders(workdir: Path) -> None:
    """docs/guides/your-own-images.md and docs/guides/extract-at-scale.md."""
    root = workdir / "photos"
    generator = torch.Generator().manual_seed(0)
    for split, count in (("train", 4), ("test", 2)):
        for name in ("cats", "dogs"):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for k in range(count):
                pixels = torch.randint(0, 256, (30, 40, 3), generator=generator, dtype=torch.uint8)
                Image.fromarray(pixels.numpy()).save(root / split / name / f"{k}.jpg")

    resident = data.load_folder_split(root, "train", store_size=IMAGE_SIZE)
    # a folder over the memory budget streams: only a resident split holds `images`
    assert isinstance(resident, data.ImageSplit)
    print(resident.classes, tuple(resident.images.shape), resident.labels.tolist())
    streamed = data.load_folder_split(root, "train", store_size=IMAGE_SIZE, memory_budget_mib=0)
    order = torch.tensor([3, 0, 7])
    print(type(streamed).__name__, torch.equal(streamed.gather(order), resident.gather(order)))

    torch.manual_seed(0)
    model = resfx.ResNet(resfx.ResNetConfig(width=4)).eval()
    store = extract(
        root,
        workdir / "store",
        arch=model,
        stages=["layer2", "pooled"],
        image_size=IMAGE_SIZE,
        batch_size=4,
        shard_size=4,
        device="cpu",
    )
    print(store.splits, store.stages, store.widths, store.classes)
    print(store.paths("train")[:2], store.labels("train").tolist())
    manifest = json.loads((workdir / "store" / "manifest.json").read_text())
    shards = [
        np.load(workdir / "store" / s["file"], mmap_mode="r")
        for s in manifest["splits"]["train"]["stages"]["pooled"]
    ]
    source = FeatureStore.open(workdir / "store").source("train", "pooled")
    rows: Tensor = source.rows(torch.tensor([5, 0]))
    print(len(source), source.width, torch.equal(rows[1], torch.from_numpy(np.array(shards[0][0]))))


def probes() -> None:
    """docs/guides/which-stage.md."""
    model = resfx.freeze(resfx.create_model("resnet18"))
    train_split = load_split("synthetic", "train", 20, subset="stratified")
    test_split = load_split("synthetic", "test", 10, subset="stratified")
    rows = probe_stages(
        model, train_split, test_split, image_size=IMAGE_SIZE, stages=["layer4"], arch="resnet18"
    )
    print([(row.stage, row.dim) for row in rows], len(rows[0].linear[0].val_accuracy))

    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(90) % 3
    features = torch.randn(90, 20, generator=generator)
    features[:, :3] += 2 * F.one_hot(labels, 3)
    train_features = TensorFeatures(features[:60], labels[:60])
    test_features = TensorFeatures(features[60:], labels[60:])
    result = probe_features(train_features, test_features, ProbeSettings())
    print(
        f"linear {result.linear.test_accuracy:.2f} at strength {result.linear.strength:g} "
        f"(C = {result.linear.c:g}), kNN {result.knn.test_accuracy:.2f}"
    )


def main() -> int:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        quick_start()
        staged_fine_tuning()
        migrating(workdir)
        model_zoo()
        proving_freezing()
        timm_interface()
        training(workdir)
        image_folders(workdir)
        probes()
    return 0


if __name__ == "__main__":
    sys.exit(main())
