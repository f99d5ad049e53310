"""Evaluate ``x-kubernetes-validations`` CEL rules with cel-python (module ``celpy``).

The Strimzi 1.2.0 CRDs use only ``has()``, field access, ``==``/``!=``/``<`` and boolean
operators; celpy evaluates all of them. As in kube-apiserver, a rule that cannot be
evaluated (e.g. ``self.topologyKey`` on an object without that field: "no such key") is a
validation failure, reported with the evaluation error next to the rule's message.
Transition rules (those mentioning ``oldSelf``) only apply to updates; there is no old
object when validating a file, so they are skipped, as the API server does on create.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import celpy

_OLD_SELF = re.compile(r"\boldSelf\b")
_env = celpy.Environment()


@lru_cache(maxsize=256)
def _program(rule: str) -> celpy.Runner:
    return _env.program(_env.compile(rule))


def evaluate_rules(rules: list[dict], value: Any, path: str) -> list[str]:
    """Messages for every rule ``value`` breaks (empty when all pass)."""
    problems: list[str] = []
    activation = {"self": celpy.json_to_cel(value)}
    for rule in rules:
        text = rule["rule"]
        if _OLD_SELF.search(text):
            continue
        message = rule.get("message") or f"failed rule: {text}"
        where = rule.get("fieldPath") or ""
        try:
            result = _program(text).evaluate(activation)
        except celpy.CELEvalError as exc:
            problems.append(
                f"{path}{where}: Invalid value: {message} (rule {text!r} could not be evaluated: {exc.args[0]})"
            )
            continue
        except celpy.CELParseError as exc:  # a broken CRD, not a broken CR
            problems.append(f"{path}{where}: CRD rule {text!r} does not compile: {exc}")
            continue
        if isinstance(result, celpy.CELEvalError):
            problems.append(
                f"{path}{where}: Invalid value: {message} (rule {text!r} could not be evaluated: {result.args[0]})"
            )
        elif not bool(result):
            problems.append(f"{path}{where}: Invalid value: {message}")
    return problems
