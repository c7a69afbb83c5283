"""The run configuration's files: recipe YAML read safely, merged as defaults < recipe YAML < command-line flags,
type-checked, and written back (config.yaml).

    cfg = load("cpu-demo", {"max_steps": 20})   # a recipe name or a YAML file; flat field names or "section.field"
    save(cfg, "runs/x/config.yaml")             # load() reads it back to the same config

YAML mirrors the sections (``model:``, ``lora:``, ``task:``, ``training:``, ``generation:``, ``run:``) of
``sections.py``. Every check that can run without the model stack runs at construction, in the sections'
``__post_init__``, or in the type checks below, so bad input fails before anything heavy loads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from lowvram_r1.config.sections import (
    SECTION_TYPES,
    TINY_PROFILE,
    RunConfig,
    all_fields,
    flag_name,
    shown,
    spoken,
)

# A recipe is a few hundred bytes; these bound what a hostile or broken file can cost before it is refused.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_DEPTH = 32

_TYPE_CHECKS = {  # annotation -> (accepts, what to say)
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "float": (lambda v: isinstance(v, int | float) and not isinstance(v, bool), "a number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "bool | str": (lambda v: isinstance(v, bool | str), ""),  # a bool or a word: the field's choices say which
    "str": (lambda v: isinstance(v, str), "a string"),
    "str | None": (lambda v: v is None or isinstance(v, str), "a string"),
    "list[float] | None": (
        lambda v: (
            v is None
            or (isinstance(v, list | tuple) and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v))
        ),
        "a list of numbers",
    ),
    "dict[str, Any]": (lambda v: isinstance(v, dict), "a mapping"),
    "dict[str, float]": (
        lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v),
        "a mapping name: weight",
    ),
}


def _check_types(values: dict[str, dict[str, Any]]) -> None:
    """Wrong YAML types fail with the field's name, not deep inside a comparison later.

    A number written ``5e-6`` is a string to YAML 1.1 (it wants ``5.0e-6``); float fields accept it as a number.
    """
    for section, cls in SECTION_TYPES.items():
        for f in dataclasses.fields(cls):
            accepts, expected = _TYPE_CHECKS[str(f.type)]
            expected = expected or spoken(f.metadata["choices"])
            value = values[section][f.name]
            if str(f.type) == "float" and isinstance(value, str):
                try:
                    value = values[section][f.name] = float(value)
                except ValueError:
                    pass
            if not accepts(value):  # the message (a repr of the value) is built only for a value that fails
                raise ValueError(f"{section}.{f.name} must be {expected}, got {shown(value)}")


def _locate(key: str) -> tuple[str, str]:
    """Map ``"section.field"``, a field name or a flag name to (section, field)."""
    if "." in key:
        section, name = key.split(".", 1)
        if section in SECTION_TYPES and name in {f.name for f in dataclasses.fields(SECTION_TYPES[section])}:
            return section, name
    for section, f in all_fields():
        if key in (f.name, flag_name(section, f), flag_name(section, f).replace("-", "_")):
            return section, f.name
    raise KeyError(key)


def _valid_keys(section: str) -> str:
    return ", ".join(f.name for f in dataclasses.fields(SECTION_TYPES[section]))


def merge(base: Mapping[str, Mapping[str, Any]], recipe: Mapping[str, Any], source: str) -> dict[str, dict]:
    """Overlay a nested recipe mapping on ``base``; unknown sections or keys raise, listing the valid ones."""
    merged = {section: dict(values) for section, values in base.items()}
    for section, values in recipe.items():
        if section not in SECTION_TYPES:
            raise ValueError(f"{source}: unknown section '{section}'; valid sections: {', '.join(SECTION_TYPES)}")
        if not isinstance(values, Mapping):
            raise ValueError(f"{source}: section '{section}' must be a mapping of keys to values")
        for key, value in values.items():
            if key not in merged[section]:
                raise ValueError(f"{source}: unknown key '{section}.{key}'; valid keys: {_valid_keys(section)}")
            if (
                key in ("options", "rewards")
                and isinstance(value, Mapping)
                and isinstance(merged[section][key], Mapping)
            ):
                value = {**merged[section][key], **value}  # task options and rewards merge key by key, like sections
            merged[section][key] = value
    return merged


def from_dict(values: Mapping[str, Mapping[str, Any]]) -> RunConfig:
    """Build and validate a RunConfig from a nested mapping (as in config.yaml)."""
    merged = merge(RunConfig().to_dict(), values, "config")
    _check_types(merged)
    return RunConfig(**{s: SECTION_TYPES[s](**merged[s]) for s in SECTION_TYPES})


class _RecipeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without aliases and with a nesting limit: an alias (``*name``) repeats a node without
    copying it, so a few hundred bytes of nested aliases (a "billion laughs") expand to gigabytes as soon as
    anything walks the result. Recipes never need them; they are refused before the document is built."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.YAMLError(
                f"aliases (*name) are not allowed in a config, line {mark.line + 1}: write the value out in full"
            )
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.YAMLError(f"nested more than {MAX_YAML_DEPTH} levels deep: a config is sections of keys")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        """A key given twice in one mapping is an error naming both lines, not "the last one wins"."""
        seen: dict[Any, int] = {}
        for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else ():
            key = self.construct_object(key_node, deep=True)
            try:
                given = key in seen
            except TypeError:  # an unhashable key: SafeLoader's own error follows
                continue
            if given:
                raise yaml.YAMLError(
                    f"key {str(key)[:80]!r} is given twice, lines {seen[key] + 1} and {key_node.start_mark.line + 1}: "
                    "keep one"
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def parse_yaml(text: str, source: str) -> Any:
    """One YAML document of at most :data:`MAX_YAML_BYTES`, without aliases; ``ValueError`` names ``source``."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_YAML_BYTES:
        raise ValueError(f"config file {source} is over {MAX_YAML_BYTES // 1024} KiB: a recipe is a few lines")
    try:
        return yaml.load(text, Loader=_RecipeLoader)  # a SafeLoader subclass: no object tags
    except yaml.YAMLError as error:
        raise ValueError(f"config file {source} is not valid YAML: {error}") from error
    except ValueError as error:  # e.g. an integer of more digits than Python converts
        raise ValueError(f"config file {source} has a value YAML cannot read: {error}") from error


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a recipe file, or in the shipped recipe ``path`` names (``gsm8k/8gb``: ``lowvram-r1 recipes``)."""
    from lowvram_r1.recipes import resolve_config

    file = resolve_config(path)
    try:
        if not file.is_file():
            raise ValueError(
                f"config file {path} does not exist, and no shipped recipe has that name: "
                "`lowvram-r1 recipes` lists them (e.g. --config gsm8k/8gb)"
            )
        if file.stat().st_size > MAX_YAML_BYTES:
            raise ValueError(f"config file {path} is over {MAX_YAML_BYTES // 1024} KiB: a recipe is a few lines")
        with file.open("rb") as handle:
            raw = handle.read(MAX_YAML_BYTES + 1)  # a file that grows after the size check is still cut off
    except OSError as error:
        raise ValueError(f"config file {shown(str(path))} cannot be read: {error.strerror}") from error
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"config file {path} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    data = parse_yaml(text, str(path)) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping of sections (model:, training:, ...)")
    return data


def load(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """Defaults < YAML recipe at ``path`` < ``overrides`` (flat names, flag names or ``section.field``).

    When the model that results is the built-in ``tiny`` one, its profile (:data:`TINY_PROFILE`) replaces the plain
    defaults first: YAML and flags still win over it (the task's own ``tiny_options``: ``run_plan.resolve``).
    """
    recipe = read_yaml(path) if path else {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in (overrides or {}).items():
        try:
            section, name = _locate(key)
        except KeyError:
            valid = ", ".join(sorted(flag_name(s, f) for s, f in all_fields()))
            raise ValueError(f"unknown config key '{key}'; valid keys: {valid}") from None
        nested.setdefault(section, {})[name] = value
    base = RunConfig().to_dict()
    layers = [(recipe, str(path)), (nested, "flags")]
    if _final_value("model", "name", base, layers) == "tiny":  # the task's own tiny options: run_plan.resolve
        base = merge(base, TINY_PROFILE, "the tiny model's profile")
    values = base
    for layer, source in layers:
        values = merge(values, layer, source)
    return from_dict(values)


def _final_value(section: str, name: str, base: Mapping[str, Mapping[str, Any]], layers: list) -> Any:
    """The value a field ends up with once every layer is applied (the last layer that sets it wins)."""
    value = base[section][name]
    for layer, _ in layers:
        values = layer.get(section)
        if isinstance(values, Mapping) and name in values:
            value = values[name]
    return value


def dump(cfg: RunConfig) -> str:
    """The YAML text of ``cfg`` (what config.yaml holds; :func:`load` reads it back to the same config)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def save(cfg: RunConfig, path: str | Path) -> None:
    Path(path).write_text(dump(cfg))
