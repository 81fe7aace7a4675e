"""Use cases: one function per thing a user or automation does (the service layer)."""
