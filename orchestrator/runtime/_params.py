"""A run's parameters: bound to the flow's signature, checked against its annotations, kept
from choosing credentials (block references), and masked where secrets would show."""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from orchestrator.contracts import BLOCK_REF, FlowSpec
from orchestrator.engine import check_json
from orchestrator.errors import BadInputError, ParameterError

MAX_PARAMS_BYTES = 256 * 1024  # well under Firestore's 1 MiB document limit
# Parameters annotated with these types are secrets: their values never appear in errors, logs,
# dead letters or `runs show` (the run document keeps them: tasks need them).
SECRET_TYPES = frozenset({"SecretStr", "SecretBytes"})
MASK = "**********"


def secret_params(spec: FlowSpec) -> frozenset[str]:
    return frozenset(p.name for p in spec.params if p.annotation in SECRET_TYPES)


def masked(params: Mapping[str, Any], secret: frozenset[str]) -> dict[str, Any]:
    """`params` fit to show: secret values replaced by a mask."""
    return {k: MASK if k in secret else v for k, v in params.items()}


# Words that make a name a secret's ("db_password", "apiKey", "GITHUB_TOKEN", "client-secret").
_SECRET_WORDS = re.compile(
    r"(^|_)(password|passwd|passphrase|pwd|secret|token|apikey|api_key|credentials?"
    r"|private_key|access_key|auth)(_|$)"
)


def looks_secret(name: str) -> bool:
    """Whether a name reads as a secret's: a word of it (snake, kebab or camel case) is one of
    password, passwd, passphrase, pwd, secret, token, apikey, credential(s), auth, or it has
    api_key, private_key or access_key in it."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
    return _SECRET_WORDS.search(re.sub(r"[^a-z0-9]+", "_", snake)) is not None


def shown_params(spec: FlowSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """A run's parameters as the dashboard and `runs show` display them. Masked: a parameter
    annotated SecretStr or SecretBytes; one whose name looks like a secret's (`looks_secret`);
    and, at any depth of a dict value, a key that does. A block parameter shows the block it
    names ({"$block": "kind/name"}): its secret fields live in the block store (Secret Manager
    in the cloud), never in a run, and are never read here."""
    secret = secret_params(spec) | {k for k in params if looks_secret(k)}
    return {k: MASK if k in secret else _masked_keys(v) for k, v in params.items()}


def _masked_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: MASK if k != BLOCK_REF and looks_secret(str(k)) else _masked_keys(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_masked_keys(v) for v in value]
    return value


def refuse_blocks(spec: FlowSpec, given: Mapping[str, Any]) -> None:
    """A message never chooses credentials. Parameters typed as blocks take the flow's own
    declaration (their default); and no value a message gives holds a block reference,
    which a task typed with that block would load. (Called where messages become run
    requests; a subflow's arguments and an in-process call come from the user's own code.)"""
    blocks = {p.name: p.block for p in spec.params if p.block}
    for name, value in given.items():
        if name in blocks:
            raise BadInputError(
                f"parameter {name!r} of flow {spec.name!r} is a {blocks[name]} block: it comes "
                "from the flow's declaration (its default), never from a message; to run with "
                "another block, deploy a flow that declares it"
            )
        if _holds_ref(value):
            raise BadInputError(
                f"parameter {name!r} of flow {spec.name!r} holds a block reference "
                f"({BLOCK_REF!r}): blocks come from the flow's declaration, never from a message"
            )


def _holds_ref(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if BLOCK_REF in item:
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def bind_params(spec_params: Any, given: dict[str, Any], *, flow: str) -> dict[str, Any]:
    known = {p.name: p for p in spec_params}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ParameterError(
            f"flow {flow!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"it takes: {', '.join(known) or 'no parameters'}"
        )
    size = len(json.dumps(given, default=str))
    if size > MAX_PARAMS_BYTES:
        raise ParameterError(
            f"flow {flow!r}: run params are {size} bytes of JSON, over {MAX_PARAMS_BYTES}; they "
            "are stored with the run, so pass large inputs as gs:// URIs instead"
        )
    params = {}
    for name, p in known.items():
        if name in given:
            params[name] = check_json(given[name], what=f"parameter {name!r} of flow {flow!r}")
        elif p.required:
            raise ParameterError(f"flow {flow!r} needs parameter {name!r} (none was given)")
        else:
            params[name] = p.default
    return params


def check_types(
    fn: Callable[..., Any] | None,
    params: dict[str, Any],
    *,
    flow: str,
    secret: frozenset[str] = frozenset(),
) -> None:
    """Validate params against the flow's annotations (lax, as pydantic does: "5" fits int)."""
    if fn is None:
        return  # the flow body is not importable here (defined in a function): names only
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        return  # annotations that do not resolve cannot be checked
    problems = []
    for name, value in params.items():
        if name in hints:
            try:
                TypeAdapter(hints[name]).validate_python(value)
            except ValidationError as e:
                shown = MASK if name in secret else f"{value!r:.60}"
                problems.append(f"{name!r}: {e.errors()[0]['msg']} (got {shown})")
    if problems:
        raise ParameterError(
            f"flow {flow!r}: parameters do not fit its signature: " + "; ".join(problems)
        )
