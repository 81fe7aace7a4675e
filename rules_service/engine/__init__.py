"""The durable-rules engine: compile, cache and evaluate rulesets in isolated worker processes.

This package is the only code that imports ``durable`` (in worker processes only).
"""

from rules_service.engine.compiler import (
    CompiledRuleset,
    EncodeError,
    EngineCompileError,
    compile_ruleset,
)
from rules_service.engine.pool import EnginePool
from rules_service.engine.reference import ReferenceEvaluator

__all__ = [
    "CompiledRuleset",
    "EngineCompileError",
    "EncodeError",
    "EnginePool",
    "ReferenceEvaluator",
    "compile_ruleset",
]
