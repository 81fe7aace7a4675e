"""What changed between two versions of a ruleset, as typed changes and plain sentences.

The diff is what an approver reads before signing off. ``changes`` holds the kinds of
change and their sentences; ``compute`` finds what differs (with DeepDiff) and groups it
into those changes.
"""

from rules_service.domain.diff.changes import (
    Change,
    DefaultChanged,
    FallbackChanged,
    InputAdded,
    InputChanged,
    InputRemoved,
    MetadataChanged,
    OwnersChanged,
    RowAdded,
    RowChanged,
    RowRemoved,
    RuleAdded,
    RuleChanged,
    RuleRemoved,
    RulesetDiff,
    RunbookChanged,
    SignoffChanged,
    TableChanged,
    TestsChanged,
    ThresholdAdded,
    ThresholdChanged,
    ThresholdRemoved,
)
from rules_service.domain.diff.compute import diff_definitions

__all__ = ["Change", "DefaultChanged", "FallbackChanged", "InputAdded", "InputChanged",
           "InputRemoved", "MetadataChanged", "OwnersChanged", "RowAdded", "RowChanged",
           "RowRemoved", "RuleAdded", "RuleChanged", "RuleRemoved", "RulesetDiff",
           "RunbookChanged", "SignoffChanged", "TableChanged", "TestsChanged", "ThresholdAdded",
           "ThresholdChanged", "ThresholdRemoved", "diff_definitions"]
