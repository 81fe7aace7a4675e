"""Evaluation: one input or a batch against a ruleset's active (or a pinned) version."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from api.auth import current_principal
from api.errors import ApiError
from api.openapi import documented
from api.request_log import note_decisions
from api.responses import json_response
from api.schemas import (
    DecisionBatchSchema,
    DecisionSchema,
    EvaluateBatchRequest,
    EvaluateRequest,
    ExplainQuery,
)
from api.services import container
from rules_service.services import evaluation

bp = Blueprint("evaluation", __name__, url_prefix="/v1/rulesets/<name>")

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 200


def _idempotency_key() -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise ApiError(422, "validation_failed", "the Idempotency-Key header is unusable",
                       [{"place": f"header {IDEMPOTENCY_HEADER}",
                         "message": f"must be 1-{MAX_IDEMPOTENCY_KEY} printable characters"}])
    return key


@bp.post("/evaluate")
@documented(body=EvaluateRequest, query=ExplainQuery, responses={200: DecisionSchema},
            errors=(404, 409),
            headers={IDEMPOTENCY_HEADER: "repeat a request safely: the same caller and key "
                                         "return the first decision; a different input with "
                                         "the same key is 409"})
def evaluate(name: str, body: dict[str, Any], query: dict[str, Any]) -> Response:
    """Decide one input; the decision is recorded before the response is sent.

    404 unknown ruleset; 409 no active version (or a reused Idempotency-Key with a
    different request); 422 the input breaks the ruleset's input schema, every bad
    field named. An escalate outcome opens an escalation due by the runbook's
    response-time target. `dry_run` evaluates without recording; `version` pins a
    version (recorded decisions: a version that has been active; dry runs: any).
    `?explain=true` adds `explanation`: every rule, its parts and the values they read.
    """
    c = container()
    result = evaluation.evaluate(
        c.live, c.decision_store, c.evaluator, name, body["input"], version=body["version"],
        dry_run=body["dry_run"], caller=current_principal().name,
        idempotency_key=_idempotency_key(), explain=query["explain"])
    note_decisions([getattr(result, "decision_id", None)])
    replayed = "true" if getattr(result, "replayed", False) else "false"
    return json_response(result.to_dict(), headers={"Idempotent-Replayed": replayed})


@bp.post("/evaluate-batch")
@documented(body=EvaluateBatchRequest.for_settings, query=ExplainQuery,
            responses={200: DecisionBatchSchema}, errors=(404, 409))
def evaluate_batch(name: str, body: dict[str, Any], query: dict[str, Any]) -> Response:
    """Decide many inputs at once; all are validated first, all recorded together.

    At most RULES_SERVICE_BATCH_LIMIT inputs (default 1000; `maxItems` here says the
    limit of this server).

    One bad input fails the whole batch with 422, naming every problem as
    `inputs[i].field`; nothing is recorded then. `?explain=true` adds each decision's
    `explanation`.
    """
    c = container()
    results = evaluation.evaluate_batch(
        c.live, c.decision_store, c.evaluator, name, body["inputs"], version=body["version"],
        dry_run=body["dry_run"], caller=current_principal().name,
        limit=c.settings.batch_limit, explain=query["explain"])
    note_decisions(getattr(r, "decision_id", None) for r in results)
    return json_response({"decisions": [r.to_dict() for r in results]})
