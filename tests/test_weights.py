"""Weights in, strictly and offline: the real cache path, downloads, hash checks, mismatches."""

import dataclasses
from pathlib import Path

import pytest
import torch
import torchvision

import resfx
from conftest import randomise_resnet_state
from resfx import weights
from resfx.models import ResNet, ResNetConfig


def _imagenet_like_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A torchvision ResNet34 state dict saved as the 2017 file is: no BN counters."""
    state = randomise_resnet_state(torchvision.models.resnet34(), seed=5)
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def _point_at(monkeypatch: pytest.MonkeyPatch, **changes: object) -> weights.PretrainedWeights:
    spec = dataclasses.replace(weights.PRETRAINED["resnet34.IMAGENET1K_V1"], **changes)
    monkeypatch.setitem(weights.PRETRAINED, "resnet34.IMAGENET1K_V1", spec)
    return spec


def test_imagenet1k_v1_loads_from_torchvisions_cache_like_torchvision(
    torch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert weights.PRETRAINED["resnet34.IMAGENET1K_V1"].cache_path == (
        torch_home / "hub" / "checkpoints" / "resnet34-b627a593.pth"
    )
    # the published file is not here: a stand-in, under a name carrying its own hash
    staged = torch_home / "hub" / "checkpoints" / "staged.pth"
    _imagenet_like_checkpoint(staged)
    prefix = weights.sha256_of(staged)[:8]
    spec = _point_at(monkeypatch, file_name=f"resnet34-{prefix}.pth", hash_prefix=prefix)
    staged.rename(spec.cache_path)
    ours = resfx.resnet34(weights="IMAGENET1K_V1").eval()
    theirs = torchvision.models.resnet34()
    theirs.load_state_dict(torch.load(spec.cache_path), strict=False)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs.eval()(x), atol=1e-5, rtol=0)


def test_a_cached_file_that_is_not_the_published_one_is_refused(torch_home: Path) -> None:
    # issue 22.4: a random-init ResNet18 saved under the name of torchvision's file
    cached = weights.PRETRAINED["resnet18.IMAGENET1K_V1"].cache_path
    cached.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18().state_dict(), cached)
    with pytest.raises(weights.ChecksumError) as caught:
        resfx.resnet18(weights="IMAGENET1K_V1")
    message = str(caught.value)
    assert "\n" not in message and "not the f37072fd... its name promises" in message
    assert f"rm {cached}" in message and "downloads it again" in message


def test_a_cached_file_is_hashed_once_until_it_changes(
    torch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resfx._weights import _download

    path = torch_home / "hub" / "checkpoints" / "file.pth"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"weights")
    spec = _point_at(monkeypatch, file_name=path.name, hash_prefix=weights.sha256_of(path)[:8])
    hashed = []
    monkeypatch.setattr(_download, "sha256_of", lambda p: hashed.append(p) or weights.sha256_of(p))
    monkeypatch.setattr(_download, "_verified_here", set())
    for _ in range(2):
        assert weights.fetch_pretrained(spec.name) == path
    _download._verified_here.clear()  # a new process: the sidecar remembers
    assert weights.fetch_pretrained(spec.name) == path
    assert hashed == [path]
    path.write_bytes(b"WEIGHTS")  # same size, new mtime and content
    with pytest.raises(weights.ChecksumError, match="not the .* its name promises"):
        weights.fetch_pretrained(spec.name)
    assert len(hashed) == 2


def test_download_is_hash_checked_and_lands_in_the_cache(
    torch_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "server" / "resnet34.pth"
    state = _imagenet_like_checkpoint(source)
    prefix = weights.sha256_of(source)[:8]
    spec = _point_at(
        monkeypatch, url=source.as_uri(), file_name=f"resnet34-{prefix}.pth", hash_prefix=prefix
    )
    model = resfx.resnet34(weights="IMAGENET1K_V1", progress=False)
    assert spec.cache_path.is_file()
    # checked while downloading: remembered, not hashed again at the next use
    assert spec.cache_path.with_name(spec.file_name + ".resfx-verified").is_file()
    torch.testing.assert_close(model.fc.weight, state["fc.weight"])


def test_download_failing_the_hash_check_is_refused_and_not_kept(
    torch_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "server" / "resnet34.pth"
    _imagenet_like_checkpoint(source)
    spec = _point_at(monkeypatch, url=source.as_uri(), hash_prefix="00000000")
    with pytest.raises(weights.ChecksumError, match="fails the hash check"):
        resfx.resnet34(weights="IMAGENET1K_V1", progress=False)
    assert not spec.cache_path.exists()


def test_offline_without_cache_says_which_file_to_place_where(
    torch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # port 9 on loopback refuses the connection at once, as an offline machine would
    spec = _point_at(monkeypatch, url="http://127.0.0.1:9/resnet34-b627a593.pth")
    with pytest.raises(weights.WeightsUnavailableError) as caught:
        resfx.resnet34(weights="IMAGENET1K_V1", progress=False)
    message = str(caught.value)
    assert str(spec.cache_path) in message
    assert "weights=<path" in message and spec.url in message


def test_cached_file_can_be_verified_against_its_name(tmp_path: Path) -> None:
    path = tmp_path / "file.pth"
    path.write_bytes(b"not the published weights")
    with pytest.raises(weights.ChecksumError, match=r"expected b627a593\.\.\..*download it again"):
        weights.verify_file_hash(path, "b627a593")
    weights.verify_file_hash(path, weights.sha256_of(path)[:10])


def test_unknown_weights_name_is_explained() -> None:
    with pytest.raises(ValueError, match=r"'IMAGENET1K_V2' is neither a known name"):
        resfx.resnet34(weights="IMAGENET1K_V2")
    with pytest.raises(ValueError, match="unknown weights 'nope'"):
        weights.fetch_pretrained("nope")


def test_mismatched_checkpoint_names_every_key(tmp_path: Path) -> None:
    model = ResNet(ResNetConfig(width=4, layers=(1, 1, 1, 1), num_classes=3))
    state = dict(model.state_dict())
    del state["layer2.0.bn1.weight"]
    state["extra.weight"] = torch.zeros(1)
    state["fc.weight"] = torch.zeros(7, 32)
    path = tmp_path / "bad.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(weights.CheckpointMismatchError) as caught:
        weights.load_weights(model, path)
    message = str(caught.value)
    assert "missing keys ['layer2.0.bn1.weight'] (1 in all)" in message
    assert "unexpected keys ['extra.weight'] (1 in all)" in message
    assert "fc.weight: checkpoint (7, 32), model (3, 32)" in message
    assert "get_resnet_for_feature_extraction" in message


def test_a_file_of_another_architecture_is_named(no_shape_checks: None) -> None:
    # issue 22.15: a ResNet50 checkpoint into a ResNet18
    with torch.device("meta"):
        state = resfx.create_model("resnet50").state_dict()
        model = resfx.resnet18()
    with pytest.raises(weights.CheckpointMismatchError) as caught:
        weights.check_state_dict(model, state)
    message = str(caught.value)
    assert "Hint: the file is a resnet50 checkpoint" in message
    assert "create_model('resnet50', weights=path)" in message and "classifier" not in message
    with torch.device("meta"):
        ten_classes = resfx.create_model("resnet18", num_classes=10).state_dict()
    with pytest.raises(weights.CheckpointMismatchError, match="Hint: the classifier differs"):
        weights.check_state_dict(model, ten_classes)
    assert weights.matching_architecture({"fc.weight": torch.zeros(2, 2)}) is None


def test_dataparallel_prefix_gets_a_hint() -> None:
    model = torch.nn.Linear(2, 2)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    with pytest.raises(weights.CheckpointMismatchError, match="strip that prefix"):
        weights.check_state_dict(model, state)


def test_read_checkpoint_rejects_files_without_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "x.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(ValueError, match="holds a list, not a state dict of tensors"):
        weights.read_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        weights.read_checkpoint(tmp_path / "missing.pth")


def test_truncated_checkpoint_is_explained(tmp_path: Path) -> None:
    for name in ("resnet34-b627a593.pth", "model.safetensors"):
        path = tmp_path / name
        path.write_bytes(b"\x80\x02 truncated download")
        with pytest.raises(ValueError, match="could not be read as a checkpoint.*corrupt"):
            weights.read_checkpoint(path)


def test_a_training_checkpoint_is_unwrapped_saying_which_entry(tmp_path: Path) -> None:
    model = torch.nn.Linear(2, 2)
    path = tmp_path / "last.ckpt"
    state = {"epoch": 3, "state_dict": model.state_dict(), "optimizer": {"lr": 0.1}}
    torch.save({**state, "state_dict_ema": model.state_dict()}, path)
    with pytest.warns(UserWarning, match="using its 'state_dict' entry .other entries: epoch,"):
        weights.load_weights(torch.nn.Linear(2, 2), path)
    torch.save({"model_state_dict": model.state_dict(), "epoch": 1}, path)
    with pytest.warns(UserWarning, match="'model_state_dict'"):
        assert list(weights.read_checkpoint(path)) == ["weight", "bias"]


def test_a_pickled_model_is_called_valid_and_how_to_resave_it_is_said(tmp_path: Path) -> None:
    path = tmp_path / "whole.pth"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(ValueError) as caught:
        weights.read_checkpoint(path)
    message = str(caught.value)
    assert "is a valid torch file but holds a pickled torch.nn.modules.linear.Linear" in message
    assert "torch.save(model.state_dict(), path)" in message and "corrupt" not in message


def test_integer_tensors_are_refused_where_floats_are_expected(tmp_path: Path) -> None:
    model = torch.nn.Linear(2, 2)
    path = tmp_path / "int.pth"
    torch.save({k: (10 * v).to(torch.int64) for k, v in model.state_dict().items()}, path)
    target = torch.nn.Linear(2, 2)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(weights.CheckpointMismatchError) as caught:
        weights.load_weights(target, path)
    assert "wrong dtypes [weight: checkpoint torch.int64, model torch.float32" in str(caught.value)
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())


def test_mismatch_messages_are_short_with_the_hint_first() -> None:
    model = ResNet(ResNetConfig(width=4))
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    with pytest.raises(weights.CheckpointMismatchError) as caught:
        weights.check_state_dict(model, state)
    message = str(caught.value)
    assert message.index("Hint: every key starts with 'module.'") < message.index("missing keys")
    assert f"({len(model.state_dict())} in all)" in message and len(message) < 1000
    lightning = {f"model.{k}": v for k, v in model.state_dict().items()}
    with pytest.raises(weights.CheckpointMismatchError, match="starts with 'model.'"):
        weights.check_state_dict(model, lightning)


def test_a_state_dict_object_loads_and_other_objects_get_a_type_error(
    no_shape_checks: None,
) -> None:
    source = torch.nn.Linear(2, 2)
    target = weights.load_weights(torch.nn.Linear(2, 2), source.state_dict())
    assert torch.equal(target.weight, source.weight)
    with pytest.raises(TypeError, match="pass .* or a state dict, got Linear; .*load_state_dict"):
        weights.check_weights_source(source)


def test_empty_and_folder_weights_files_get_one_line_each(tmp_path: Path) -> None:
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.pth is empty .0 bytes"):
        weights.read_checkpoint(tmp_path / "empty.pth")
    (tmp_path / "folder.pth").mkdir()
    with pytest.raises(ValueError, match="folder.pth is a folder, not a weights file"):
        weights.read_checkpoint(tmp_path / "folder.pth")
