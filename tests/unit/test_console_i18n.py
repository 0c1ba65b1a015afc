"""Every word the console's templates ask for is in the catalogue, in both languages."""

from __future__ import annotations

import re

from bus.console import i18n
from bus.console.web import HERE
from bus.store.tables import STATES


def test_every_literal_key_in_the_templates_is_translated() -> None:
    used: set[str] = set()
    for template in (HERE / "templates").glob("*.html"):
        used |= set(re.findall(r'\bt\(\s*"([a-z_]+)"\s*\)', template.read_text("utf-8")))
        used |= set(re.findall(r"\bt\(\s*'([a-z_]+)'\s*\)", template.read_text("utf-8")))
    assert len(used) > 60
    missing = sorted(k for k in used if not i18n.known(k))
    assert missing == []


def test_states_and_actions_have_both_languages() -> None:
    for state in STATES:
        vi, en = i18n.translate("st_" + state, "vi"), i18n.translate("st_" + state, "en")
        assert vi != "st_" + state and en != "st_" + state
    for action in ("resend", "park", "cancel"):
        assert i18n.translate("do_" + action, "vi") != i18n.translate("do_" + action, "en")
    assert i18n.translate("app", "xx") == i18n.translate("app", "en")
    assert i18n.language("fr") == "vi" and i18n.language("en") == "en"
    assert i18n.translate("st_parked", "vi") == "tạm giữ"
