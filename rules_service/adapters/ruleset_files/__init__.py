"""Loads ruleset files (YAML or JSON) into validated Rulesets, listing every problem at once.

By job: ``reading`` turns text into data and records where each place is; ``format`` holds
the marshmallow schemas of the file format (what may be written where); ``checks`` checks
the meaning (conditions, roles, defaults, tables, tests); ``locate`` maps each problem's
place to a line and column, so a business owner sees where it is; ``build`` makes the
canonical definition and the Ruleset; ``load`` runs them in that order.
"""

from rules_service.adapters.ruleset_files.build import canonical_definition
from rules_service.adapters.ruleset_files.load import (
    MAX_FILE_CHARS,
    load_ruleset_definition,
    load_ruleset_file,
    load_ruleset_text,
)

__all__ = ["MAX_FILE_CHARS", "canonical_definition", "load_ruleset_definition",
           "load_ruleset_file", "load_ruleset_text"]
