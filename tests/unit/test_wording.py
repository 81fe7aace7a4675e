"""The article before a name, as it is said."""

from __future__ import annotations

import pytest

from rules_service.language.wording import with_article


@pytest.mark.parametrize(("word", "said"), [
    ("expense-approval", "an expense-approval"), ("employee-onboarding",
                                                  "an employee-onboarding"),
    ("discount-approval", "a discount-approval"), ("lead-intake", "a lead-intake"),
    ("invoice", "an invoice"), ("order-check", "an order-check"),
    ("user-access", "a user-access"), ("unit-prices", "a unit-prices"),
    ("eu-vat", "a eu-vat"), ("one-off", "a one-off"), ("hourly-rates", "an hourly-rates"),
    ("upgrade-path", "an upgrade-path"), ("Apple", "an Apple"),
])
def test_a_or_an_follows_the_sound_of_the_word(word: str, said: str) -> None:
    assert with_article(word) == said
