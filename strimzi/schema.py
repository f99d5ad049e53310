"""Validate a value against a CRD's structural OpenAPI v3 schema, as kube-apiserver does with
``fieldValidation=Strict``: unknown fields are errors (except under
``x-kubernetes-preserve-unknown-fields``), ``x-kubernetes-int-or-string`` accepts both,
``oneOf``/``anyOf``/``allOf``/``not`` are value checks only (in a structural schema the
branches never declare fields), and every ``x-kubernetes-validations`` CEL rule is evaluated
on the node it sits on (see :mod:`strimzi.cel`).

Problems are collected, not raised, so one run lists everything wrong with a CR. Paths are
written like the API server's (``spec.kafka.listeners[0].port``).
"""

from __future__ import annotations

import re
from functools import lru_cache

from strimzi.cel import evaluate_rules

_TYPE_NAMES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}


def _type_of(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _type_ok(expected: str, value: object) -> bool:
    if expected == "object":
        return isinstance(value, dict)
    if expected == "array":
        return isinstance(value, list)
    if expected == "string":
        return isinstance(value, str)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return True


@lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def validate(value: object, schema: dict, path: str, problems: list[str]) -> None:
    """Structure (types, unknown fields, required) then value checks then CEL rules."""
    if value is None:
        if not schema.get("nullable"):
            problems.append(f"{path}: Invalid value: null: must be {schema.get('type', 'a value')}")
        return
    if not _check_type(value, schema, path, problems):
        return
    _check_values(value, schema, path, problems)
    if isinstance(value, dict):
        _check_object(value, schema, path, problems)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                validate(item, items, f"{path}[{i}]", problems)
    rules = schema.get("x-kubernetes-validations")
    if rules:
        problems.extend(evaluate_rules(rules, value, path))


def _check_type(value: object, schema: dict, path: str, problems: list[str]) -> bool:
    if schema.get("x-kubernetes-int-or-string"):
        if _type_ok("integer", value) or isinstance(value, str):
            return True
        problems.append(f"{path}: Invalid value: {_type_of(value)}: must be an integer or a string")
        return False
    expected = schema.get("type")
    if expected and not _type_ok(expected, value):
        problems.append(
            f'{path}: Invalid value: "{_type_of(value)}": '
            f"{path.rsplit('.', 1)[-1]} in body must be of type {expected}: "
            f'"{_type_of(value)}"'
        )
        return False
    return True


def _check_object(value: dict, schema: dict, path: str, problems: list[str]) -> None:
    props: dict = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
    for key in schema.get("required") or ():
        if key not in value:
            problems.append(f"{_join(path, key)}: Required value")
    for key, child in value.items():
        child_path = _join(path, key)
        if key in props:
            validate(child, props[key], child_path, problems)
        elif isinstance(additional, dict):
            validate(child, additional, child_path, problems)
        elif additional is True or preserve:
            continue
        elif props or additional is False or schema.get("type") == "object":
            # An object schema without properties and without preserve-unknown-fields
            # prunes everything; strict validation reports every such field.
            problems.append(f'{child_path}: unknown field "{child_path}"')


def _check_values(value: object, schema: dict, path: str, problems: list[str]) -> None:
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        allowed = ", ".join(f'"{e}"' for e in enum)
        problems.append(f'{path}: Unsupported value: "{value}": supported values: {allowed}')
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path}: Invalid value: {value}: must be greater than or equal to {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{path}: Invalid value: {value}: must be less than or equal to {schema['maximum']}")
    if isinstance(value, str):
        pattern = schema.get("pattern")
        if pattern and not _regex(pattern).search(value):
            problems.append(f'{path}: Invalid value: "{value}": must match "{pattern}"')
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{path}: Too long: may not be longer than {schema['maxLength']}")
        if "minLength" in schema and len(value) < schema["minLength"]:
            problems.append(f"{path}: Invalid value: must be at least {schema['minLength']} characters")
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{path}: Too many: {len(value)}: must have at most {schema['maxItems']} items")
        if "minItems" in schema and len(value) < schema["minItems"]:
            problems.append(f"{path}: Invalid value: must have at least {schema['minItems']} items")
    for sub in schema.get("allOf") or ():
        _check_values_only(value, sub, path, problems)
    if "anyOf" in schema and not any(_passes(value, sub) for sub in schema["anyOf"]):
        problems.append(f"{path}: Invalid value: does not match any of the allowed forms (anyOf)")
    if "oneOf" in schema:
        matches = sum(_passes(value, sub) for sub in schema["oneOf"])
        if matches != 1:
            problems.append(
                f"{path}: Invalid value: must match exactly one of the allowed "
                f"forms (oneOf), matches {matches}: "
                f"{_describe_branches(schema['oneOf'])}"
            )
    if "not" in schema and _passes(value, schema["not"]):
        problems.append(f"{path}: Invalid value: must not match the excluded form (not)")


def _check_values_only(value: object, schema: dict, path: str, problems: list[str]) -> None:
    """A value-validation branch: types and values, but not field declarations."""
    expected = schema.get("type")
    if expected and not _type_ok(expected, value):
        problems.append(f"{path}: Invalid value: must be of type {expected}")
        return
    _check_values(value, schema, path, problems)
    if isinstance(value, dict):
        for key in schema.get("required") or ():
            if key not in value:
                problems.append(f"{_join(path, key)}: Required value")
        for key, sub in (schema.get("properties") or {}).items():
            if key in value:
                _check_values_only(value[key], sub, _join(path, key), problems)


def _passes(value: object, schema: dict) -> bool:
    found: list[str] = []
    _check_values_only(value, schema, "", found)
    return not found


def _describe_branches(branches: list[dict]) -> str:
    forms = []
    for b in branches:
        req = b.get("required")
        forms.append("{" + ", ".join(req) + "}" if req else "{...}")
    return " | ".join(forms)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
