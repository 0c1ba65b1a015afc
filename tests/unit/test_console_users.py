"""Console users: Argon2id hashes, sessions that end, the login throttle, ``lgsp users``."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import sqlalchemy as sa

from bus import errors
from bus.cli import main
from bus.console import users
from bus.store import Store
from bus.store.tables import console_sessions, console_users, events
from tests.fixtures_services import postgres  # noqa: F401 - fixture

PASSWORD = "một-mật-khẩu-dài"




def test_passwords_are_stored_as_argon2id_and_checked(store: Store) -> None:
    users.add_user(store, "lan", PASSWORD, "operator", actor="test")
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(console_users.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    session = users.login(store, "lan", PASSWORD)
    assert session.user == users.User("lan", "operator", None)
    for name, password in (("lan", PASSWORD + "x"), ("nobody", PASSWORD)):
        with pytest.raises(errors.Unauthenticated):
            users.login(store, name, password)


def test_a_session_is_found_by_its_token_only_until_it_expires(store: Store) -> None:
    users.add_user(store, "lan", PASSWORD, "auditor", actor="test")
    session = users.login(store, "lan", PASSWORD)
    assert users.session(store, session.token) == session
    assert users.session(store, session.token + "x") is None
    with store.engine.connect() as conn:
        kept = conn.execute(sa.select(console_sessions.c.token_sha256)).scalar_one()
    assert session.token not in kept
    with store.begin() as conn:
        conn.execute(console_sessions.update().values(expires_at=0))
    assert users.session(store, session.token) is None


def test_passwd_and_remove_end_the_users_sessions(store: Store) -> None:
    users.add_user(store, "lan", PASSWORD, "operator", actor="test")
    session = users.login(store, "lan", PASSWORD)
    users.set_password(store, "lan", PASSWORD + "-mới", actor="test")
    assert users.session(store, session.token) is None
    with pytest.raises(errors.Unauthenticated):
        users.login(store, "lan", PASSWORD)
    session = users.login(store, "lan", PASSWORD + "-mới")
    users.remove_user(store, "lan", actor="test")
    assert users.session(store, session.token) is None


def test_logout_ends_the_session(store: Store) -> None:
    users.add_user(store, "lan", PASSWORD, "operator", actor="test")
    session = users.login(store, "lan", PASSWORD)
    users.logout(store, session.token)
    assert users.session(store, session.token) is None


@pytest.mark.parametrize(("name", "role", "system", "password"), [
    ("lan", "admin", None, PASSWORD), ("lan", "officer", None, PASSWORD),
    ("lan", "operator", "eoffice", PASSWORD), ("lan", "operator", None, "short"),
    (" lan", "operator", None, PASSWORD), ("", "operator", None, PASSWORD),
])
def test_bad_users_are_refused(store: Store, name: str, role: str, system: str | None,
                               password: str) -> None:
    with pytest.raises(errors.InvalidRequest):
        users.add_user(store, name, password, role, system=system, actor="test")


def test_the_login_throttle_counts_failures_per_name_and_per_address() -> None:
    throttle = users.LoginThrottle()
    for _ in range(users.LOGIN_FAILURES):
        throttle.check("lan", "10.0.0.1")
        throttle.failed("lan", "10.0.0.1")
    with pytest.raises(errors.TooManyRequests):
        throttle.check("lan", "10.0.0.9")
    with pytest.raises(errors.TooManyRequests):
        throttle.check("binh", "10.0.0.1")
    throttle.check("binh", "10.0.0.9")


def test_a_stranger_cannot_lock_an_operator_out_of_a_workstation_it_logged_in_from() -> None:
    throttle = users.LoginThrottle()
    throttle.check("lan", "10.0.0.5")
    throttle.succeeded("lan", "10.0.0.5")
    for i in range(3 * users.LOGIN_FAILURES):
        throttle.failed("lan", f"198.51.100.{i}")
    throttle.check("lan", "10.0.0.5")
    with pytest.raises(errors.TooManyRequests):
        throttle.check("lan", "10.0.0.6")


def test_a_known_workstation_is_still_held_to_its_own_failures() -> None:
    throttle = users.LoginThrottle()
    throttle.succeeded("lan", "10.0.0.5")
    for _ in range(users.LOGIN_FAILURES):
        throttle.failed("lan", "10.0.0.5")
    with pytest.raises(errors.TooManyRequests):
        throttle.check("lan", "10.0.0.5")


def test_lgsp_users_add_list_passwd_remove(sqlite_store: Store, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data-dir", str(tmp_path)]
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["users", "add", "thu", "--role", "officer", "--system", "hcm_egov",
                 "--password-stdin", *data]) == 0
    assert users.login(sqlite_store, "thu", PASSWORD).user.system == "hcm_egov"
    assert main(["users", "list", *data]) == 0
    assert "thu" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("ngắn\n"))
    assert main(["users", "passwd", "thu", "--password-stdin", *data]) == 1
    assert capsys.readouterr().err.startswith("lgsp: InvalidRequest: password")
    assert main(["users", "remove", "thu", *data]) == 0
    assert main(["users", "remove", "thu", *data]) == 1
    assert capsys.readouterr().err.startswith("lgsp: NotFound: ")
    with sqlite_store.engine.connect() as conn:
        trail = conn.execute(sa.select(events.c.action).where(
            events.c.action.like("user_%")).order_by(events.c.id)).scalars().all()
    assert trail == ["user_added", "user_removed"]
