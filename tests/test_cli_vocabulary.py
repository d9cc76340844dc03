"""One vocabulary across `resfx`'s subcommands: every flag documented, closed sets as `choices`,
no abbreviations, one device default, and the old spellings kept as warning aliases."""

import argparse
from collections.abc import Iterator
from typing import get_args

import pytest

from resfx import cli
from resfx._commands import COMMANDS
from resfx._freeze import BNPolicy, OptimizerName
from resfx._frozen_step import CompileMode
from resfx._precision import Precision
from resfx._schedule import Schedule
from resfx.bench import COMPILED_MODES, STEP_MODES
from resfx.data import BadImagePolicy, SubsetKind
from resfx.models import STAGES, list_models
from resfx.probe import ProbeArgs
from resfx.train import Mode, TrainingArgs

CLOSED_SETS: dict[tuple[str, str], tuple[object, ...]] = {
    ("train", "--mode"): get_args(Mode),
    ("train", "--freeze-to"): (*STAGES[:-1], None),
    ("train", "--optimizer"): get_args(OptimizerName),
    ("train", "--schedule"): get_args(Schedule),
    ("train", "--bn"): get_args(BNPolicy),
    ("train", "--precision"): get_args(Precision),
    ("train", "--compile"): get_args(CompileMode),
    ("train", "--arch"): tuple(list_models()),
    ("train", "--subset"): get_args(SubsetKind),
    ("train", "--on-bad-image"): get_args(BadImagePolicy),
    ("bench", "--precision"): get_args(Precision),
    ("bench", "--mode"): STEP_MODES + COMPILED_MODES,
    ("bench", "--compile"): get_args(CompileMode),
    ("bench", "--job-data"): ("synthetic", "cifar10"),
    ("summary", "--arch"): tuple(list_models()),
    ("summary", "--freeze-to"): ("nothing", *STAGES),
    ("summary", "--bn"): get_args(BNPolicy),
    ("probe", "--subset"): get_args(SubsetKind),
    ("probe", "--on-bad-image"): get_args(BadImagePolicy),
    ("probe", "--precision"): get_args(Precision),
    ("extract", "--arch"): tuple(list_models()),
    ("extract", "--precision"): get_args(Precision),
    ("extract", "--on-bad-image"): get_args(BadImagePolicy),
}
"""Every flag whose value is one of a closed set, and that set: each must have it as `choices`."""

OPEN_TEXT = {
    "--data": "a dataset name or any image folder's path",
    "--data-root": "a folder",
    "--weights": "a weights name, an arch.tag name, or a checkpoint path",
    "--device": "cuda:N for any N",
    "--out": "a folder",
    "--output-dir": "a folder",
    "--feature-cache-dir": "a folder",
    "--features": "a feature store's folder",
    "--stages": "a comma-separated list, checked before any work",
    "--strengths": "comma-separated numbers",
    "--arch": "probe's: a comma-separated list, checked against the zoo by its action",
}
"""Text flags whose values are not a closed set (numbers are open by their type)."""


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _must_not_run(namespace: argparse.Namespace) -> int:
    raise AssertionError(f"the command ran with {namespace}; the parser should have refused it")


def _flags() -> Iterator[tuple[str, argparse.Action]]:
    """Every flag of `resfx` ("" for the top level) and of each subcommand."""
    for name, parser in {"": cli.build_parser(), **_subcommands()}.items():
        for action in parser._actions:
            if action.option_strings:
                yield name, action


def test_every_parser_refuses_abbreviations_and_every_flag_has_help() -> None:
    parsers = [cli.build_parser(), *_subcommands().values()]
    assert [p.allow_abbrev for p in parsers] == [False] * len(parsers)
    silent = [(n, a.option_strings[0]) for n, a in _flags() if not (a.help or "").strip()]
    assert not silent, f"flags without help text: {silent}"


def test_every_closed_set_flag_has_its_choices_and_every_other_text_flag_is_open() -> None:
    unlisted = []
    for name, action in _flags():
        flag = action.option_strings[0]
        if (name, flag) in CLOSED_SETS:
            assert tuple(action.choices or ()) == CLOSED_SETS[name, flag], (name, flag)
        elif action.nargs != 0 and not action.choices:
            kind = getattr(action.type, "__name__", None)
            if kind not in ("int", "float") and flag not in OPEN_TEXT:
                unlisted.append((name, flag))
    assert not unlisted, f"text flags without choices that OPEN_TEXT does not list: {unlisted}"
    probe_arch = [a for n, a in _flags() if (n, a.option_strings[0]) == ("probe", "--arch")]
    assert isinstance(probe_arch[0], cli._ArchitectureList)  # checks its names itself


def test_the_subcommands_are_registered_once_by_name_in_help_order() -> None:
    assert list(cli.SUBCOMMANDS) == list(COMMANDS) == list(_subcommands())


def test_a_command_line_adds_only_its_own_subcommands_flags(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(parser: argparse.ArgumentParser) -> None:
        raise AssertionError(f"{parser.prog}'s flags were added for another subcommand")

    for name in set(COMMANDS) - {"summary"}:
        monkeypatch.setitem(cli.SUBCOMMANDS, name, refuse)
    namespace = cli.build_parser(["summary"]).parse_args(["summary", "--arch", "resnet18"])
    assert namespace.arch == "resnet18"
    assert cli.main(["summary", "--arch", "resnet18", "--freeze-to", "layer4"]) == 0


@pytest.mark.parametrize(
    ("argv", "refused"),
    [
        (["train", "--epoch", "3"], "unrecognized arguments: --epoch 3"),
        (["probe", "--subset", "bogus"], "argument --subset: invalid choice: 'bogus'"),
        (["probe", "--on-bad-image", "ignore"], "argument --on-bad-image: invalid choice"),
        (["train", "--freeze-to", "head"], "argument --freeze-to: invalid choice: 'head'"),
        (["bench", "--mode", "sideways"], "argument --mode: invalid choice: 'sideways'"),
    ],
)
def test_a_misspelt_or_unknown_value_is_refused_before_any_work(
    argv: list[str], refused: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    register = cli.SUBCOMMANDS[argv[0]]

    def register_without_a_run(parser: argparse.ArgumentParser) -> None:
        register(parser)
        parser.set_defaults(handler=_must_not_run)

    monkeypatch.setitem(cli.SUBCOMMANDS, argv[0], register_without_a_run)
    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)
    assert stopped.value.code == 2
    assert refused in capsys.readouterr().err


def test_num_classes_is_the_flag_and_n_classes_a_deprecated_alias_that_warns_once(
    capsys: pytest.CaptureFixture,
) -> None:
    parser = cli.build_parser(["train", "summary"])
    assert parser.parse_args(["train", "--num-classes", "7"]).n_classes == 7
    assert parser.parse_args(["summary", "--num-classes", "7"]).num_classes == 7
    assert capsys.readouterr().err == ""
    assert parser.parse_args(["train", "--n-classes", "none"]).n_classes is None
    assert capsys.readouterr().err.splitlines() == [
        "resfx train: warning: --n-classes is deprecated and will be removed; use --num-classes"
    ]


def test_the_resume_command_uses_the_current_spelling_and_parses_back() -> None:
    args = TrainingArgs(n_classes=7, data="synthetic", output_dir="runs/r", epochs=2)
    words = cli.resume_command(args).split()
    assert "--num-classes" in words and "--n-classes" not in words
    namespace = cli.build_parser(["train"]).parse_args(words[1:])
    assert namespace.n_classes == 7 and namespace.resume


@pytest.mark.parametrize(
    ("flags", "archs"),
    [
        ([], "resnet18"),
        (["--arch", "resnet34"], "resnet34"),
        (["--arch", "resnet18", "--arch", "resnet34"], "resnet18,resnet34"),
        (["--arch", "resnet18, resnet34", "--arch", "resnet50"], "resnet18,resnet34,resnet50"),
    ],
)
def test_probe_arch_is_repeatable_and_comma_separated(flags: list[str], archs: str) -> None:
    namespace = cli.build_parser(["probe"]).parse_args(["probe", *flags])
    assert namespace.archs == archs
    assert ProbeArgs(archs=namespace.archs).arch_list == archs.split(",")


def test_probe_archs_still_works_warning_and_an_unknown_arch_names_the_known_ones(
    capsys: pytest.CaptureFixture,
) -> None:
    parser = cli.build_parser(["probe"])
    assert parser.parse_args(["probe", "--archs", "resnet18,resnet50"]).archs == "resnet18,resnet50"
    assert "--archs is deprecated" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["probe", "--arch", "resnet18,resnet19"])
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("resfx probe: error: argument --arch: unknown architecture 'resnet19'")
    assert last.endswith("known: " + ", ".join(list_models()))


def test_every_device_flag_and_setting_defaults_to_auto() -> None:
    devices = {name: a.default for name, a in _flags() if a.option_strings[0] == "--device"}
    assert devices == dict.fromkeys(("train", "bench", "probe", "extract"), "auto")
    assert TrainingArgs().device == ProbeArgs().device == "auto"
