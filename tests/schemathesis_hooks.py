"""Schemathesis hooks for tests/schemathesis.rs (loaded through SCHEMATHESIS_HOOKS).

POST /v1 takes an array of tasks and judges each on its own, as Runware does: the answer is 200
when any task succeeded, with every failed task in `errors`. Schemathesis's
`negative_data_rejection` check treats the array as one value and expects a 4xx whenever any
task in it violates its schema, so an array that mixes valid and invalid tasks would be reported
even though the server refused exactly the invalid ones. That one failure is dropped here, and
only when the answer shows it is right: a 200 whose `errors` hold at least as many objects as
the array holds tasks that violate the document's RunwareTask schema. Every other failure,
and this check on every other operation, stands.
"""

import json

import schemathesis
from jsonschema import Draft202012Validator
from schemathesis.core.failures import AcceptedNegativeData

_validators = {}


def _task_validator(raw_schema):
    """A validator of one task against the document's RunwareTask (its refs resolved in it)."""
    key = id(raw_schema)
    if key not in _validators:
        _validators[key] = Draft202012Validator(
            {"$ref": "#/components/schemas/RunwareTask", "components": raw_schema["components"]}
        )
    return _validators[key]


@schemathesis.hook
def filter_failure(ctx, failure, case, response):
    operation = case.operation
    if not (
        isinstance(failure, AcceptedNegativeData)
        and operation.method.upper() == "POST"
        and operation.path == "/v1"
        and response.status_code == 200
        and isinstance(case.body, list)
    ):
        return True
    validator = _task_validator(operation.schema.raw_schema)
    invalid = [task for task in case.body if not validator.is_valid(task)]
    try:
        errors = json.loads(response.content).get("errors") or []
    except (ValueError, AttributeError):
        return True
    # Keep the failure unless every invalid task can be among the refused ones.
    return not (invalid and len(errors) >= len(invalid))
