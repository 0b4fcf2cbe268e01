"""The command line's flags that come from the run config: one flag per scalar field of RunConfig that carries a
"cli" help text (--steps, --batch-size ...), --set FIELD.KEY=VALUE for a key of a dict field, and the checked number
types every subcommand uses. A field added to the config with a help text gets its flag without cli.py changing."""
from __future__ import annotations

import argparse
import dataclasses
import json

from cifar_nb.config import RunConfig


def non_negative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{v} is negative: give a whole number from 0")
    return v


def positive_int(text: str, what: str = "this value") -> int:
    try:
        v = int(text)
    except ValueError:
        v = None
    if v is None or v <= 0:
        raise argparse.ArgumentTypeError(f"{what} must be a positive integer, got {text!r}")
    return v


def positive_int_named(what: str):
    """positive_int whose message names the flag's value (argparse's type= takes a one-argument callable)."""
    def parse(text: str) -> int:
        return positive_int(text, what)
    parse.__name__ = what
    return parse


# The run config's flags, made from RunConfig's fields that carry a "cli" help text: a scalar field is a flag of
# its own (--steps, --batch-size ...), a key inside a dict field is set with --set FIELD.KEY=VALUE. A field added
# to the config with a help text gets its flag here without this file changing.
CLI_FIELDS = [f for f in dataclasses.fields(RunConfig) if "cli" in f.metadata]
SCALAR_FIELDS = [f for f in CLI_FIELDS if f.type in ("int", "str")]
DICT_FIELDS = {f.name: f.metadata["cli"] for f in CLI_FIELDS if f.type == "dict"}


def config_setting(text: str) -> tuple[str, str, object]:
    """FIELD.KEY=VALUE -> (field, key, value); VALUE is read as JSON (numbers, true, null, lists), else as text."""
    name, sep, raw = text.partition("=")
    field_name, dot, key = name.partition(".")
    if not sep or not dot or not key or field_name not in DICT_FIELDS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give FIELD.KEY=VALUE with FIELD one of {', '.join(DICT_FIELDS)}, e.g. train.fid_samples=5000")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return field_name, key, value


def add_config_flags(q: argparse.ArgumentParser, role: str = "") -> None:
    """--steps, --batch-size, --eval-every, --dataset and --set, from RunConfig (see CLI_FIELDS)."""
    for f in SCALAR_FIELDS:
        q.add_argument("--" + f.name.replace("_", "-"), type=positive_int_named(f.name) if f.type == "int" else str,
                       help=f"{f.metadata['cli']}{role} (default: the experiment's)")
    fields = "; ".join(f"{k}: {v}" for k, v in DICT_FIELDS.items())
    q.add_argument("--set", action="append", default=[], type=config_setting, metavar="FIELD.KEY=VALUE",
                   help=f"change one key of a config dict{role}, VALUE as JSON (repeatable). {fields}")
    q.add_argument("--fid-samples", type=positive_int_named("fid_samples"),
                   help=f"generators: images for FD-cls/KID/FID{role} (short for --set train.fid_samples=N)")


def config_from_flags(exp, args) -> RunConfig:
    """The experiment's recipe with the flags of add_config_flags applied (the seed is set by the caller)."""
    cfg = exp.make_config(**{f.name: getattr(args, f.name) for f in SCALAR_FIELDS
                             if getattr(args, f.name) is not None})
    settings = list(args.set) + ([("train", "fid_samples", args.fid_samples)] if args.fid_samples else [])
    return cfg.with_changes({f"{field_name}.{key}": value for field_name, key, value in settings})
