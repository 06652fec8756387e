"""Recipe parser: ``python -m thermal_hf.train RECIPE.yaml [--key value ...]``.

Precedence: dataclass default < YAML recipe < command line. Everything type-related is `HfArgumentParser`'s:
the YAML values become the argparse defaults (`set_defaults`; argparse converts string defaults with the
field's type, so ``learning_rate: 5e-3`` -- a string for YAML 1.1 -- still becomes a float), then the command
line is parsed on top with `parse_args_into_dataclasses`. Written by hand here only:

- the YAML merge (`env:` block, key check),
- unknown keys (YAML or command line) -> `RecipeError` naming the key and the closest valid keys (difflib),
  and no argparse abbreviations (``--learning_rat`` is an error, not ``--learning_rate``),
- ``--key null`` (or ``none``) for an optional key: None, as ``key: null`` in YAML (`_accept_null`),
- the ``env:`` block: ``env: {OMP_NUM_THREADS: 4}`` sets environment variables before torch, accelerate or
  CUDA read them. A variable already set in the shell wins (the shell is the command line's level).

This module imports nothing heavy at import time, so `load_recipe` + `apply_env` run before torch is loaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import enum
import json
import os
import re
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import RecipeError

ENV_KEY = "env"


@dataclass
class ParsedRecipe:
    """The three argument dataclasses plus what was asked for (for the `recipe.yaml` copy next to the model)."""

    model_args: Any
    data_args: Any
    training_args: Any
    recipe_path: Path | None = None
    #: the keys set by the YAML and the command line, with their final values (plain YAML types)
    recipe: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    argv: list = field(default_factory=list)

    def as_tuple(self):
        return self.model_args, self.data_args, self.training_args


def _unique_key_loader():
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        """`yaml.safe_load`, except that a key given twice is an error: PyYAML keeps the last one without a word."""

        def construct_mapping(self, node, deep=False):
            seen = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`, expanded by the parent method
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    hash(key)
                except TypeError:  # an unhashable key: the parent method reports it as YAML
                    continue
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} is set twice (lines {seen[key] + 1} and {key_node.start_mark.line + 1}); "
                        "keep one", key_node.start_mark)
                seen[key] = key_node.start_mark.line
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def load_recipe(path: str | os.PathLike) -> tuple[dict, dict]:
    """Read a flat YAML recipe -> ``(keys, env)``. No key checking here (needs the dataclasses)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe {path}: file not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_unique_key_loader())
    except yaml.YAMLError as err:
        raise RecipeError(f"recipe {path}: not valid YAML: {err}") from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"recipe {path}: expected a mapping of keys to values at the top level, got {type(data).__name__}")
    env = data.pop(ENV_KEY, None) or {}
    if not isinstance(env, dict):
        raise RecipeError(f"recipe {path}: key 'env' must be a mapping NAME: value, got {type(env).__name__}")
    # A mapping under any other key is checked against the key's type by `parse_recipe` (lr_scheduler_kwargs takes one).
    return data, {str(k): "" if v is None else str(v) for k, v in env.items()}


def apply_env(env: dict[str, str], override: bool = False) -> dict[str, str]:
    """Set the recipe's environment variables; a variable already set wins unless ``override``. Returns what was set."""
    applied = {}
    for name, value in env.items():
        if override or name not in os.environ:
            os.environ[name] = value
            applied[name] = value
    return applied


#: Names users give as keys that are values of another key.
_VALUE_NOT_KEY = {"early_stopping": "callbacks", "weight_averaging": "callbacks", "tensorboard": "report_to"}


def suggest(key: str, valid) -> str:
    """`` Did you mean: a, b?`` for the closest valid keys (or an empty string)."""
    if key in _VALUE_NOT_KEY and _VALUE_NOT_KEY[key] in valid:
        return f" {key} is a value of the key {_VALUE_NOT_KEY[key]}: --{_VALUE_NOT_KEY[key]} {key}"
    close = difflib.get_close_matches(key, list(valid), n=3, cutoff=0.6)
    return f" Did you mean: {', '.join(close)}?" if close else ""


def _make_parser(types, prog: str | None):
    from transformers import HfArgumentParser

    class _RecipeArgumentParser(HfArgumentParser):
        # argparse exits on errors; a library raises, and the CLI main prints `error: ...` and exits 2.
        def error(self, message):
            # Only the command line reaches argparse unchecked: the YAML's values were checked before.
            raise RecipeError(f"command line: {message}")

    parser = _RecipeArgumentParser(
        types,
        prog=prog,
        allow_abbrev=False,  # `--learning_rat` must be an unknown key, not silently `--learning_rate`
        description="Train from a flat YAML recipe; any key can be overridden as --key value.",
    )
    _accept_null(parser, types)
    for action in parser._actions:
        # HfArgumentParser gives `--no_<key>` the key's own help ("Evaluate after training."): say what it does.
        if action.option_strings and action.option_strings[0].startswith("--no_") and action.const is False:
            # `%(default).0s` prints nothing and keeps argparse from adding "(default: False)": the key's is true.
            action.help = f"Set {action.dest} to false (default: true). {action.help or ''}%(default).0s"
    return parser


_NULL_WORDS = ("null", "none", "~")
#: Keys for which "none" is a value (no integration), not None.
_NONE_IS_A_VALUE = ("report_to",)


def _accept_null(parser, types) -> None:
    """Let ``--key null`` (or ``none``) set an optional key to None, as ``key: null`` does in YAML.

    `HfArgumentParser` gives an ``int | None`` field the plain ``int`` converter, so a recipe's value could not
    be switched off from the command line (``--frame_rate null``, ``--random_resized_crop_scale null``).
    """
    optional = set()
    for t in types:
        # From the annotations: HfArgumentParser rewrites each field's `type` (``float | None`` -> ``float``).
        hints = typing.get_type_hints(t)
        optional |= {f.name for f in dataclasses.fields(t)
                     if f.init and type(None) in typing.get_args(hints.get(f.name))}
    for action in parser._actions:
        if action.dest not in optional or action.dest in _NONE_IS_A_VALUE or not callable(action.type):
            continue
        if action.nargs is None:
            if getattr(action.type, "__name__", "") == "string_to_bool":  # `--stem_pool` alone is true, as for
                action.nargs, action.const = "?", True                   # the bool keys without a None default
            action.type = _null_or(action.type)
        elif action.nargs in ("+", "*") and type(action) is argparse._StoreAction:
            action.type = _null_or(action.type)
            action.__class__ = _NullableListAction


class _NullableListAction(argparse._StoreAction):
    """A list key given the single value ``null``: None, not ``[None]``."""

    def __call__(self, parser, namespace, values, option_string=None):
        if isinstance(values, list) and any(v is None for v in values):
            if len(values) != 1:
                parser.error(f"argument {option_string}: null switches the key off; give it alone")
            values = None
        setattr(namespace, self.dest, values)


def _null_or(convert):
    def converter(value):
        if isinstance(value, str) and value.strip().lower() in _NULL_WORDS:
            return None
        return convert(value)

    converter.__name__ = getattr(convert, "__name__", "value")  # argparse names it in "invalid float value"
    return converter


def valid_keys(types) -> list[str]:
    return [f.name for t in types for f in dataclasses.fields(t) if f.init]


def _plain(value):
    """A dataclass value -> something yaml.safe_dump writes (enums -> value, tuples -> lists)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def parse_recipe(
    argv: list[str] | None = None, *, types=None, prog: str | None = None, env_override: bool = False
) -> ParsedRecipe:
    """``[RECIPE.yaml] [--key value ...]`` -> `ParsedRecipe`.

    The recipe path, when given, is the first argument. ``--help`` prints every key with its help.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    recipe_path = None
    keys, env = {}, {}
    if argv and not argv[0].startswith("-"):
        recipe_path = Path(argv.pop(0))
        keys, env = load_recipe(recipe_path)
        # Before the dataclasses (and so torch / accelerate) are imported.
        apply_env(env, override=env_override)

    if types is None:
        from .configs import dataclass_types

        types = dataclass_types()
    valid = valid_keys(types)
    where = f"recipe {recipe_path}" if recipe_path else "recipe"
    for key in keys:
        if key not in valid:
            if isinstance(keys[key], dict):
                raise RecipeError(f"{where}: key {key!r} holds a nested mapping; recipes are flat (key: value), only "
                                  "'env' and keys that take a mapping (lr_scheduler_kwargs) hold one")
            raise RecipeError(f"{where}: unknown key {key!r}.{suggest(key, valid)}")

    # The command line overrides the recipe: a key it sets replaces the recipe's key that excludes it.
    given = set(_cli_values(argv))
    for one, other in _EXCLUSIVE_KEYS + tuple((b, a) for a, b in _EXCLUSIVE_KEYS):
        if one in given and other in keys and other not in given:
            keys = {k: v for k, v in keys.items() if k != other}

    parser = _make_parser(types, prog)
    parser.set_defaults(**_checked_values(parser, types, keys, where))
    try:
        *outputs, remaining = parser.parse_args_into_dataclasses(
            args=argv, return_remaining_strings=True, look_for_args_file=False
        )
    except ValueError as err:  # RecipeError included: the dataclasses' checks, which know the key, not its source
        raise _located(err, keys, argv, where, valid) from None
    if remaining:
        flags = [t for t in remaining if t.startswith("-")]
        if flags:
            name = flags[0].lstrip("-").split("=", 1)[0].replace("-", "_")
            raise RecipeError(f"command line: unknown key {flags[0]!r}.{suggest(name, valid)}")
        raise RecipeError(f"command line: unexpected value(s) {remaining}{_why_unexpected(argv, remaining[0])}")
    outputs = outputs[: len(types)]

    asked = dict(keys)
    by_name = {f.name: obj for obj in outputs for f in dataclasses.fields(obj) if f.init}
    for key in _cli_values(argv):
        if key not in by_name and key.startswith("no_"):  # HfArgumentParser's --no_<flag> for True defaults
            key = key[3:]
        if key in by_name:
            asked[key] = getattr(by_name[key], key)
    asked = {k: _plain(getattr(by_name[k], k)) if k in by_name else v for k, v in asked.items()}
    if "mixed_precision" in asked:  # the choice, not what it resolved to on this machine (`auto` -> no on a CPU)
        asked["mixed_precision"] = getattr(by_name["mixed_precision"], "requested_mixed_precision",
                                           asked["mixed_precision"])
    return ParsedRecipe(*outputs, recipe_path=recipe_path, recipe=asked, env=env, argv=list(argv))


_NAMED_KEY = re.compile(r"^recipe keys? '(\w+)")


def _located(err: ValueError, keys: dict, argv: list[str], where: str, valid) -> RecipeError:
    """A value error from the dataclasses' checks -> a `RecipeError` that says where the key was set.

    The dataclasses' ``__post_init__`` see only values: ``recipe key 'num_frames': ...`` gains ``command line:``
    or ``recipe FILE:``; transformers' own errors (``cosinus is not a valid SchedulerType``) gain the key too.
    """
    message = str(err)
    if isinstance(err, RecipeError) and message.startswith(("command line:", f"{where}:")):
        return err  # argparse's own error, located already
    given = _cli_values(argv)
    values = {**{k: str(v) for k, v in keys.items()}, **given}  # the command line's value wins
    named = _NAMED_KEY.match(message)
    if named:
        key = named.group(1)
    else:  # transformers' message: name the key whose value it quotes, or the key it names
        quoted = [k for k, v in values.items() if k in valid and v and message.startswith(f"{v} is not")]
        mentioned = [k for k in values if k in valid and re.search(rf"\b{re.escape(k)}\b", message)]
        key = (quoted or mentioned or [None])[0]
        if key is not None:
            message = f"recipe key {key!r}: {message}"
        elif not isinstance(err, RecipeError):
            return RecipeError(f"{where}: {message}")
    if key in given:
        return RecipeError(f"command line: {message.removeprefix('recipe ')}")
    if key in keys:
        return RecipeError(f"{where}: {message.removeprefix('recipe ')}")
    return err if isinstance(err, RecipeError) else RecipeError(message)


def _cli_values(argv: list[str]) -> dict[str, str]:
    """``--key value`` / ``--key=value`` -> ``{key: "value"}`` (the first value; "" for a bare flag)."""
    values = {}
    for i, token in enumerate(argv):
        if token.startswith("--") and len(token) > 2:
            name, _, value = token[2:].partition("=")
            if not value and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                value = argv[i + 1]
            values[name.replace("-", "_")] = value
    return values


def _why_unexpected(argv: list[str], value: str) -> str:
    if value.endswith((".yaml", ".yml")):
        return " (the recipe path must come first)"
    before = [t for t in argv[: argv.index(value)] if t.startswith("--")] if value in argv else []
    return f" after {before[-1].split('=', 1)[0]}, which takes one value" if before else ""


# ---- YAML values: checked against each key's type before they become argparse defaults ---------------------
# argparse converts only *string* defaults and never checks them against `choices`, so without this a YAML
# `num_frames: [16, 32]`, `per_device_train_batch_size: 1.5` or `horizontal_flip_prob: yes` (YAML's boolean)
# would reach the dataclasses, or torch, unchecked and fail far from the recipe, or not at all.
_KINDS = {"int": "an integer", "float": "a number", "string_to_bool": "true or false", "str": "a string"}


#: Keys of which a recipe sets one (their dataclasses refuse both); `--a` on the command line drops the YAML's `b`.
_EXCLUSIVE_KEYS = (("warmup_steps", "warmup_epochs"),)


def _takes_mapping(hint) -> bool:
    """``dict`` or ``dict | str | None`` (TrainingArguments' ``lr_scheduler_kwargs``, ``optim_args`` ...)."""
    return any(h is dict or typing.get_origin(h) is dict for h in (hint, *typing.get_args(hint)))


def _checked_values(parser, types, keys: dict, where: str) -> dict:
    actions = {a.dest: a for a in parser._actions}
    hints = {}
    for t in types:
        hints.update(typing.get_type_hints(t))
    checked = {}
    for key, value in keys.items():
        if isinstance(value, dict):
            if not _takes_mapping(hints.get(key)):
                raise RecipeError(f"{where}: key {key!r} holds a nested mapping; recipes are flat (key: value), only "
                                  "'env' and keys that take a mapping (lr_scheduler_kwargs) hold one")
            # What the command line gives these keys (TrainingArguments parses the JSON).
            value = json.dumps(value)
        elif value is None and key in actions and not _takes_null(hints.get(key)):
            default = actions[key].default
            raise RecipeError(f"{where}: key {key!r}: expected {_kind(actions[key])}, got null; this key cannot be "
                              f"switched off (remove the line for its default, {_plain(default)!r})")
        elif key in actions and value is not None and actions[key].type is not None:
            value = _checked(actions[key], hints.get(key), value, f"{where}: key {key!r}")
        checked[key] = value
    return checked


def _takes_null(hint) -> bool:
    return hint is None or hint is Any or type(None) in typing.get_args(hint)


def _checked(action, hint, value, label: str):
    many = action.nargs in ("+", "*") or isinstance(action.nargs, int)
    if isinstance(value, (list, tuple)):
        if many:
            return [_checked_one(action, v, label) for v in value]
        if any(typing.get_origin(a) is list for a in typing.get_args(hint)):  # e.g. report_to: [tensorboard]
            return list(value)
        raise RecipeError(f"{label}: expected one value ({_kind(action)}), got the list {value!r}")
    value = _checked_one(action, value, label)
    return [value] if many else value  # `eval_recordings: SL14_R4` means a list of one


def _kind(action) -> str:
    name = getattr(action.type, "__name__", "")
    if action.choices:
        return "one of " + ", ".join(str(getattr(c, "value", c)) for c in action.choices)
    return _KINDS.get(name, f"a {name} value" if name and name != "<lambda>" else "a value")


def _checked_one(action, value, label: str):
    name = getattr(action.type, "__name__", "")
    if isinstance(value, (list, tuple, dict)):
        raise RecipeError(f"{label}: expected {_kind(action)} in the list, got {value!r}")
    if isinstance(value, bool) and name not in ("int", "float") and not action.choices:
        return value  # a string key that also takes a boolean (`resume_from_checkpoint: true`) gets it as it is
    if isinstance(value, bool) and name != "string_to_bool":
        # `eval_strategy: no` is the boolean False to YAML 1.1, not the word: the fix is to quote it.
        raise RecipeError(f"{label}: expected {_kind(action)}, got {value!r} (YAML reads an unquoted yes/no/on/off/"
                          "true/false as a boolean; quote a word: \"no\")")
    if name == "int" and isinstance(value, float):
        if not value.is_integer():
            raise RecipeError(f"{label}: expected {_kind(action)}, got {value!r}")
        value = int(value)
    try:
        out = action.type(value if isinstance(value, (str, bool)) else str(value))
    except (TypeError, ValueError, argparse.ArgumentTypeError):
        raise RecipeError(f"{label}: expected {_kind(action)}, got {value!r}") from None
    if action.choices and out not in action.choices:
        raise RecipeError(f"{label}: expected {_kind(action)}, got {value!r}")
    return out


REDACTED = "<redacted>"


_SECRET_WORDS = ("token", "key", "secret", "password", "auth", "credential")


def _is_secret(key: str) -> bool:
    # hub_token, WANDB_API_KEY, ...: the recipe copy is pushed to the Hub and quoted in the model card.
    return any(word in key.lstrip("-").lower() for word in _SECRET_WORDS)


def _redact_argv(argv: list) -> list[str]:
    out, hide_next = [], False
    for token in map(str, argv):
        if hide_next:
            out.append(REDACTED)
            hide_next = False
        elif token.startswith("--") and _is_secret(token.split("=", 1)[0]):
            out.append(f"{token.split('=', 1)[0]}={REDACTED}" if "=" in token else token)
            hide_next = "=" not in token
        else:
            out.append(token)
    return out


def dump_recipe(parsed: ParsedRecipe, path: str | os.PathLike) -> Path:
    """Write what was run as a recipe (YAML keys + command-line overrides, final values) for the model card.

    Secrets (``hub_token``) are replaced by ``<redacted>``: this file is pushed with the model and quoted in its card.
    """
    import yaml

    path = Path(path)
    header = "# Recipe this model was trained with (YAML + command-line overrides, as resolved).\n"
    if parsed.recipe_path is not None:
        header += f"# source: {parsed.recipe_path}\n"
    if parsed.argv:
        header += f"# overrides: {' '.join(_redact_argv(parsed.argv))}\n"
    body = {k: (REDACTED if _is_secret(k) and v else v) for k, v in parsed.recipe.items()}
    if parsed.env:
        body[ENV_KEY] = {k: (REDACTED if _is_secret(k) else v) for k, v in parsed.env.items()}
    path.write_text(header + yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    return path


__all__ = ["ParsedRecipe", "load_recipe", "apply_env", "parse_recipe", "dump_recipe", "suggest", "valid_keys"]
