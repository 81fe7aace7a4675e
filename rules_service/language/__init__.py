"""The condition language of ``when:``: parser, type checker and reference evaluator."""
