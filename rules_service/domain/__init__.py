"""The domain: rulesets, rules, decisions, version lifecycle and diffs as plain Python."""
