"""Schemas of the responses (errors included): answers are dumped through them, so the
OpenAPI document is what clients get."""

from __future__ import annotations

from marshmallow import Schema, fields

from api.schemas.shadow import InShadowSchema

# --- errors -----------------------------------------------------------------------------


class ErrorDetailSchema(Schema):
    """One problem: where it is and what is wrong."""

    place = fields.String(metadata={"description": "e.g. input.amount or rules[2].when"})
    message = fields.String(required=True)
    line = fields.Integer()
    column = fields.Integer()


class ErrorBodySchema(Schema):
    """The error itself."""

    code = fields.String(required=True, metadata={"description": "stable snake_case code"})
    message = fields.String(required=True)
    details = fields.List(fields.Nested(ErrorDetailSchema), required=True)


class ErrorSchema(Schema):
    """Every error response: ``{"error": {"code", "message", "details"}}``."""

    error = fields.Nested(ErrorBodySchema, required=True)


# --- responses ------------------------------------------------------------------------------


class HolderSchema(Schema):
    """A role's primary and backup."""

    primary = fields.String()
    backup = fields.String(allow_none=True)


class SignoffSchema(Schema):
    """One role's sign-off of a version."""

    role = fields.String()
    principal = fields.String()
    decision = fields.String()
    comment = fields.String()
    at = fields.String(metadata={"format": "date-time"})


class VersionSummarySchema(Schema):
    """A version without its content (listings)."""

    ruleset = fields.String()
    version = fields.Integer()
    status = fields.String(metadata={"description": "pending, approved, active, superseded, "
                                                    "rejected, withdrawn or stale"})
    author = fields.String()
    note = fields.String()
    base_version = fields.Integer(allow_none=True)
    content_hash = fields.String()
    effective_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    created_at = fields.String(metadata={"format": "date-time"})
    approved_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    activated_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    closed_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    required_signoffs = fields.List(fields.String())
    missing_signoffs = fields.List(fields.String())
    signoff_holders = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
    signoffs = fields.List(fields.Nested(SignoffSchema))


class SignoffResultSchema(Schema):
    """The answer to a sign-off: the sign-off given and where the version stands now."""

    ruleset = fields.String()
    version = fields.Integer()
    status = fields.String(metadata={"description": "pending, approved, active, rejected "
                                                    "or stale"})
    signoff = fields.Nested(SignoffSchema)
    required_signoffs = fields.List(fields.String())
    missing_signoffs = fields.List(fields.String())
    effective_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    activated_at = fields.String(allow_none=True, metadata={"format": "date-time"})


class VersionSchema(VersionSummarySchema):
    """A version with its content."""

    content = fields.String()
    definition = fields.Dict()


class ProposalWarningSchema(Schema):
    """Another open version on the same base as the one just proposed."""

    code = fields.String(metadata={"description": "`open_version_on_base`"})
    version = fields.Integer()
    author = fields.String()
    status = fields.String(metadata={"description": "pending or approved"})
    base_version = fields.Integer(allow_none=True)
    message = fields.String()


class ProposedVersionSchema(VersionSchema):
    """The answer to a proposal: the version, and a warning for each other open version on
    its base (whichever goes live first makes the others stale)."""

    warnings = fields.List(fields.Nested(ProposalWarningSchema))


class VersionListSchema(Schema):
    """GET /v1/rulesets/{name}/versions."""

    versions = fields.List(fields.Nested(VersionSummarySchema))


class ScheduledVersionSchema(Schema):
    """An approved version waiting for its effective time."""

    version = fields.Integer()
    effective_at = fields.String(allow_none=True, metadata={"format": "date-time"})


class PauseSchema(Schema):
    """A pause in force: who paused the ruleset, since when, and why."""

    by = fields.String()
    at = fields.String(metadata={"format": "date-time"})
    reason = fields.String()


class RulesetSummarySchema(Schema):
    """A ruleset in a listing."""

    name = fields.String()
    title = fields.String()
    active_version = fields.Integer(allow_none=True)
    pending_versions = fields.List(fields.Integer())
    scheduled_versions = fields.List(fields.Nested(ScheduledVersionSchema))
    latest_version = fields.Integer(allow_none=True)
    created_at = fields.String(metadata={"format": "date-time"})
    paused = fields.Nested(PauseSchema, allow_none=True, metadata={
        "description": "null unless paused: then every decision escalates to the approver"})
    review_due_at = fields.String(allow_none=True, metadata={
        "format": "date-time", "description": "last activation + review_every; null when "
                                              "the ruleset sets no review rhythm"})


class RulesetListSchema(Schema):
    """GET /v1/rulesets."""

    rulesets = fields.List(fields.Nested(RulesetSummarySchema))


class RulesetDetailSchema(RulesetSummarySchema):
    """GET /v1/rulesets/{name}."""

    description = fields.String()
    owners = fields.Dict(keys=fields.String(), values=fields.Nested(HolderSchema))
    signoff = fields.List(fields.String())
    versions = fields.List(fields.Nested(VersionSummarySchema))


class ImpactExampleSchema(Schema):
    """A recorded input that the `from` and the `to` version decide differently."""

    decision_id = fields.String()
    input = fields.Dict()
    before = fields.String(metadata={"description": "the `from` version's outcome"})
    after = fields.String(metadata={"description": "the `to` version's outcome"})
    recorded = fields.String(allow_none=True,
                             metadata={"description": "the outcome recorded at the time"})


class RejectedExampleSchema(Schema):
    """A recorded input that the `to` version's input schema refuses."""

    decision_id = fields.String()
    input = fields.Dict()
    before = fields.String()
    reason = fields.String()


class ImpactSchema(Schema):
    """Recorded inputs decided again by both the `from` and the `to` version."""

    replayed = fields.Integer()
    changed = fields.Integer()
    unchanged = fields.Integer()
    input_rejected = fields.Integer()
    fallbacks = fields.Integer()
    transitions = fields.Dict(keys=fields.String(), values=fields.Integer(),
                              metadata={"description": "e.g. {\"approve->escalate\": 3}"})
    examples = fields.List(fields.Nested(ImpactExampleSchema))
    rejected_examples = fields.List(fields.Nested(RejectedExampleSchema))
    drift = fields.Integer(metadata={
        "description": "inputs whose recorded outcome differs from the `from` version's "
                       "(made by an older or pinned version, or a fallback); not the "
                       "change's doing"})
    drift_transitions = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={
        "description": "drift by `recorded->from` outcome"})
    base_rejected = fields.Integer(metadata={
        "description": "inputs the `from` version's input schema refuses"})


class UndoneVersionSchema(Schema):
    """A version in the active line whose changes the `to` version takes back."""

    version = fields.Integer()
    author = fields.String()
    note = fields.String()
    changes = fields.List(fields.Dict(), metadata={"description": "that version's own "
                                                                 "changes, which `to` reverses"})
    summary = fields.List(fields.String())


class DiffSchema(Schema):
    """GET /v1/rulesets/{name}/diff."""

    ruleset = fields.String()
    from_version = fields.Integer(attribute="from", data_key="from", allow_none=True,
                                  metadata={"description": "null: diffed against nothing"})
    to_version = fields.Integer(attribute="to", data_key="to")
    changes = fields.List(fields.Dict(), metadata={
        "description": "each with `kind` (rule_added, threshold_changed, ...), its details, "
                       "and a one-sentence `summary`"})
    summary = fields.List(fields.String())
    undoes = fields.List(fields.Nested(UndoneVersionSchema), metadata={
        "description": "what `to` takes back of versions newer than the one its author "
                       "started from (a stale working copy, a revert), newest first"})
    version = fields.Nested(VersionSummarySchema, allow_none=True, metadata={
        "description": "the `to` version: author, note, base version, effective time, "
                       "required sign-offs and those given so far"})
    warnings = fields.List(fields.String(), metadata={
        "description": "findings on the new version's decision tables (rows that never "
                       "fire, shadowed rows, overlaps, gaps), each a sentence; never blocking; "
                       "present only when there are any"})
    impact = fields.Nested(ImpactSchema, allow_none=True)


class RollbackSchema(Schema):
    """POST /v1/rulesets/{name}/rollback."""

    ruleset = fields.String()
    active_version = fields.Integer()
    previous_version = fields.Integer(allow_none=True)


class MissingSignoffSchema(Schema):
    """A sign-off role still to sign, and who holds it."""

    role = fields.String()
    holders = fields.List(fields.String())


class OpenVersionSchema(Schema):
    """A version waiting for sign-off (pending) or for its time (approved)."""

    version = fields.Integer()
    status = fields.String()
    author = fields.String()
    note = fields.String()
    effective_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    missing_signoffs = fields.List(fields.Nested(MissingSignoffSchema))
    shadow = fields.Nested(InShadowSchema, allow_none=True, metadata={
        "description": "its shadow on live decisions, when it runs in one"})


class ActiveSinceSchema(Schema):
    """The active version and when it became active."""

    version = fields.Integer()
    since = fields.String(allow_none=True, metadata={"format": "date-time"})


class LiveEscalationsSchema(Schema):
    """Escalations of the ruleset open now, and those past the response-time target."""

    open = fields.Integer()
    overdue = fields.Integer()
    response_time_target = fields.String(allow_none=True)


class LiveFallbacksSchema(Schema):
    """Decisions made by the ruleset's fallback in the last hours."""

    window_hours = fields.Float()
    decisions = fields.Integer()
    count = fields.Integer()
    rate = fields.Float(allow_none=True)


class RollbackCallSchema(Schema):
    """The exact call that rolls the ruleset back to the version the active one replaced."""

    method = fields.String()
    path = fields.String()
    body = fields.Dict(allow_none=True, metadata={"description": "null: nothing to roll "
                                                                 "back to"})
    allowed = fields.List(fields.String(), metadata={
        "description": "who may (operations and business owners; also admins)"})


class RunbookLiveSchema(Schema):
    """The state of the ruleset right now."""

    paused = fields.Nested(PauseSchema, allow_none=True, metadata={
        "description": "the pause in force (every decision goes to the approver), or null"})
    review_due_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    active = fields.Nested(ActiveSinceSchema)
    open_versions = fields.List(fields.Nested(OpenVersionSchema))
    escalations = fields.Nested(LiveEscalationsSchema)
    fallbacks = fields.Nested(LiveFallbacksSchema)
    rollback = fields.Nested(RollbackCallSchema)


class RunbookSchema(Schema):
    """GET /v1/rulesets/{name}/runbook."""

    ruleset = fields.String()
    title = fields.String()
    version = fields.Integer()
    owners = fields.Dict(keys=fields.String(), values=fields.Nested(HolderSchema))
    runbook = fields.Dict()
    response_time_target = fields.String(allow_none=True)
    live = fields.Nested(RunbookLiveSchema)


class AuditEventSchema(Schema):
    """One recorded transition."""

    id = fields.Integer()
    ruleset = fields.String()
    version = fields.Integer(allow_none=True)
    action = fields.String()
    actor = fields.String()
    comment = fields.String()
    details = fields.Dict()
    at = fields.String(metadata={"format": "date-time"})


class AuditSchema(Schema):
    """GET /v1/rulesets/{name}/audit."""

    events = fields.List(fields.Nested(AuditEventSchema))


class FiredRuleSchema(Schema):
    """A rule whose condition held."""

    id = fields.String()
    outcome = fields.String()
    reason = fields.String()


class ConditionPartSchema(Schema):
    """One top-level `and` part of a rule's condition (a table row: one cell)."""

    text = fields.String(metadata={"description": "the part as written"})
    holds = fields.Boolean()
    values = fields.Dict(metadata={"description": "every input field (after defaults; "
                                                  "absent as null) and threshold it reads"})
    missed_by = fields.Float(metadata={"description": "a failed comparison of two numbers: "
                                                      "how far apart they are"})


class RuleExplanationSchema(Schema):
    """One rule of the deciding version (a table row as a rule)."""

    id = fields.String()
    fired = fields.Boolean(metadata={"description": "exactly when all its parts hold"})
    outcome = fields.String()
    conditions = fields.List(fields.Nested(ConditionPartSchema))


class ExplanationSchema(Schema):
    """Why a decision came out as it did, worked out from its input and version."""

    summary = fields.String(metadata={"description": "the outcome and the deciding rules "
                                                     "with their values; when no rule "
                                                     "fired, each rule's first failed part"})
    rules = fields.List(fields.Nested(RuleExplanationSchema),
                        metadata={"description": "every rule of the version, in order"})


class DecidingRuleSchema(Schema):
    """A rule that decided, with its reason."""

    id = fields.String()
    reason = fields.String(allow_none=True)


class EscalationDecisionSchema(Schema):
    """The escalated decision, so nobody has to look it up."""

    input = fields.Dict()
    outcome = fields.String()
    deciding_rules = fields.List(fields.Nested(DecidingRuleSchema))
    fallback = fields.Boolean()
    fallback_reason = fields.String(allow_none=True)
    paused = fields.Boolean(metadata={"description": "taken while the ruleset was paused"})
    paused_outcome = fields.String(allow_none=True)
    paused_reason = fields.String(allow_none=True, metadata={"description": "the pause's"})
    evaluated_at = fields.String(metadata={"format": "date-time"})


class EscalationStepSchema(Schema):
    """One step an overdue escalation took along its runbook's path."""

    step = fields.Integer(metadata={"description": "1 for the first step after due_at"})
    principal = fields.String(allow_none=True, metadata={
        "description": "who was told at this step (null: the path had no one left)"})
    at = fields.String(metadata={"format": "date-time"})


class EscalationSchema(Schema):
    """An escalation: a decision waiting for a person."""

    id = fields.String()
    decision_id = fields.String()
    ruleset = fields.String()
    version = fields.Integer()
    to_role = fields.String()
    status = fields.String()
    due_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    overdue = fields.Boolean()
    created_at = fields.String(metadata={"format": "date-time"})
    resolved_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    resolved_by = fields.String(allow_none=True)
    resolution = fields.String(allow_none=True)
    comment = fields.String()
    decision = fields.Nested(EscalationDecisionSchema, metadata={
        "description": "the decision's input and its deciding rules with their reasons"})
    steps = fields.List(fields.Nested(EscalationStepSchema), metadata={
        "description": "the steps taken along the runbook's escalation path after the due "
                       "time passed, oldest first (empty until then)"})


class DecisionSchema(Schema):
    """A decision (POST evaluate); GET /v1/decisions/{id} adds the recorded context."""

    decision_id = fields.String(allow_none=True,
                                metadata={"description": "null for a dry run"})
    ruleset = fields.String()
    version = fields.Integer()
    outcome = fields.String()
    fired_rules = fields.List(fields.Nested(FiredRuleSchema))
    deciding_rules = fields.List(fields.String())
    escalation = fields.Nested(EscalationSchema, allow_none=True,
                               metadata={"description": "id, to_role and due_at; the full "
                                                        "record adds status and resolution"})
    fallback = fields.Boolean()
    fallback_reason = fields.String(allow_none=True)
    evaluated_at = fields.String(metadata={"format": "date-time"})
    duration_ms = fields.Float()
    dry_run = fields.Boolean(metadata={"description": "present (true) only for dry runs"})
    paused = fields.Boolean(metadata={
        "description": "the ruleset was paused: people decide, outcome is escalate"})
    paused_outcome = fields.String(allow_none=True, metadata={
        "description": "while paused: what the rules decided, kept for comparison"})
    paused_reason = fields.String(allow_none=True)
    pause = fields.Dict(metadata={"description": "dry runs of a paused ruleset: by, at, "
                                                "reason and what a recorded decision gets"})
    input = fields.Dict()
    caller = fields.String()
    idempotency_key = fields.String(allow_none=True)
    explanation = fields.Nested(ExplanationSchema, metadata={
        "description": "always in GET /v1/decisions/{id}; in evaluate and evaluate-batch "
                       "with `?explain=true`"})


class DecisionBatchSchema(Schema):
    """POST /v1/rulesets/{name}/evaluate-batch."""

    decisions = fields.List(fields.Nested(DecisionSchema))


class DecisionPageSchema(Schema):
    """GET /v1/decisions."""

    decisions = fields.List(fields.Nested(DecisionSchema))
    next_cursor = fields.String(allow_none=True)


class EscalationListSchema(Schema):
    """GET /v1/escalations."""

    escalations = fields.List(fields.Nested(EscalationSchema))


class RoleHeldSchema(Schema):
    """One role a principal holds in one ruleset."""

    ruleset = fields.String()
    role = fields.String()
    as_ = fields.String(data_key="as", attribute="as", metadata={"enum": ["primary", "backup"]})


class MeSchema(Schema):
    """GET /v1/me."""

    name = fields.String()
    admin = fields.Boolean()
    automation = fields.Boolean()
    roles = fields.List(fields.Nested(RoleHeldSchema))


class SignoffWaitingSchema(Schema):
    """A pending version the caller may sign off."""

    ruleset = fields.String()
    version = fields.Integer()
    author = fields.String()
    note = fields.String()
    proposed_at = fields.String(metadata={"format": "date-time"})
    roles = fields.List(fields.String(), metadata={
        "description": "the still-missing roles the caller may sign as"})


class EscalationWaitingSchema(Schema):
    """An open escalation the caller may resolve."""

    id = fields.String()
    ruleset = fields.String()
    version = fields.Integer()
    decision_id = fields.String()
    to_role = fields.String()
    due_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    overdue = fields.Boolean()


class ProposalWaitingSchema(Schema):
    """One of the caller's own pending or approved versions."""

    ruleset = fields.String()
    version = fields.Integer()
    status = fields.String(metadata={"enum": ["pending", "approved"]})
    note = fields.String()
    proposed_at = fields.String(metadata={"format": "date-time"})
    effective_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    missing_signoffs = fields.List(fields.String())


class InboxSchema(Schema):
    """GET /v1/me/inbox."""

    signoffs = fields.List(fields.Nested(SignoffWaitingSchema))
    escalations = fields.List(fields.Nested(EscalationWaitingSchema))
    proposals = fields.List(fields.Nested(ProposalWaitingSchema))
    paused = fields.List(fields.Dict(), metadata={
        "description": "rulesets the caller owns (operations or business owner) that are "
                       "paused: ruleset, by, at, reason, message"})
    reviews = fields.List(fields.Dict(), metadata={
        "description": "active versions whose review (review_every) fell due, for their "
                       "business owner: ruleset, version, activated_at, due_at"})


class HealthSchema(Schema):
    """GET /healthz."""

    status = fields.String()
    database = fields.String()


class ReadinessSchema(Schema):
    """GET /readyz."""

    status = fields.String(metadata={"description": "ready, or not ready"})
    database = fields.String(metadata={"description": "ok, or unreachable"})
    schema = fields.String(allow_none=True,
                           metadata={"description": "the database's migration revision"})
    expected_schema = fields.String(allow_none=True,
                                    metadata={"description": "the newest migration of this "
                                                             "code"})
    reason = fields.String(allow_none=True, metadata={"description": "why not ready"})


class SealSchema(Schema):
    """GET /v1/seals/latest."""

    seal = fields.Integer(metadata={"description": "the seal's number, from 1"})
    hash = fields.String(metadata={"description": "hex SHA-256 over the seal's number, the "
                                                  "previous seal's hash, its Merkle root, "
                                                  "item count, cutoff and time"})
    sealed_at = fields.String(metadata={"format": "date-time"})
    items = fields.Integer(metadata={"description": "decisions and audit events it covers"})
