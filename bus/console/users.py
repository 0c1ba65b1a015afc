"""The console's local users and their sessions.

Passwords are kept as Argon2id hashes (argon2-cffi, the reference implementation's
bindings); a session is a random token in an HttpOnly cookie whose SHA-256 alone is
stored, with its own CSRF token and an expiry. A login mints a new session every time, so
a token planted before the login (session fixation) never becomes an authenticated one.

Roles: ``operator`` (the whole province, may act), ``officer`` (an agency's officer: sees
only what the connected system named in ``system`` sent or its organisations received,
the same scope the REST API gives that system; may not act) and ``auditor`` (the whole
province, read-only).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Final, Literal

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bus import errors
from bus.store import Store
from bus.store.tables import console_sessions, console_users

Role = Literal["operator", "officer", "auditor"]
ROLES: Final[tuple[Role, ...]] = ("operator", "officer", "auditor")
SESSION_S: Final = 8 * 3600.0
"""A working day: a console left open overnight asks for the password again."""
MIN_PASSWORD: Final = 10
LOGIN_FAILURES: Final = 5
LOGIN_WINDOW_S: Final = 300.0
KNOWN_S: Final = 30 * 86400.0

_hasher = PasswordHasher()
# Verified against when the user does not exist, so a wrong name costs as long as a wrong
# password and names cannot be told apart by timing.
_DUMMY = _hasher.hash(secrets.token_hex(16))


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    system: str | None

    @property
    def may_act(self) -> bool:
        return self.role == "operator"


@dataclass(frozen=True)
class Session:
    token: str
    user: User
    csrf: str
    expires_at: float


def _role(value: str) -> Role:
    for role in ROLES:
        if value == role:
            return role
    raise errors.InvalidRequest(f"role: {value!r} is not one of {', '.join(ROLES)}")


def _check(name: str, role: str, system: str | None) -> Role:
    if not name or len(name) > 64 or not name.isprintable() or name.strip() != name:
        raise errors.InvalidRequest("name: 1 to 64 printable characters, no spaces around")
    checked = _role(role)
    if checked == "officer" and not system:
        raise errors.InvalidRequest(
            "an agency officer needs --system: the connected system (directory.yaml "
            "systems) whose documents the officer may see")
    if checked != "officer" and system:
        raise errors.InvalidRequest("--system applies to agency officers only")
    return checked


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise errors.InvalidRequest(f"password: at least {MIN_PASSWORD} characters")


def add_user(store: Store, name: str, password: str, role: str, *, system: str | None = None,
             actor: str) -> User:
    checked = _check(name, role, system)
    _check_password(password)
    now = time.time()
    with store.begin() as conn:
        exists = conn.execute(sa.select(console_users.c.name).where(
            console_users.c.name == name)).first()
        if exists:
            raise errors.InvalidRequest(f"user {name!r} exists; use `lgsp users passwd`")
        conn.execute(console_users.insert().values(
            name=name, password_hash=_hasher.hash(password), role=checked, system=system,
            created_at=now, updated_at=now))
        Store.audit(conn, actor, "user_added", at=now,
                    detail={"user": name, "role": checked, "system": system})
    return User(name, checked, system)


def set_password(store: Store, name: str, password: str, *, actor: str) -> None:
    """New password; every open session of the user ends."""
    _check_password(password)
    now = time.time()
    with store.begin() as conn:
        changed = conn.execute(console_users.update().where(console_users.c.name == name)
                               .values(password_hash=_hasher.hash(password),
                                       updated_at=now)).rowcount
        if not changed:
            raise errors.NotFound(f"no console user {name!r}; `lgsp users list` shows them")
        conn.execute(console_sessions.delete().where(console_sessions.c.user_name == name))
        Store.audit(conn, actor, "user_password", at=now, detail={"user": name})


def remove_user(store: Store, name: str, *, actor: str) -> None:
    with store.begin() as conn:
        gone = conn.execute(console_users.delete().where(
            console_users.c.name == name)).rowcount
        if not gone:
            raise errors.NotFound(f"no console user {name!r}; `lgsp users list` shows them")
        conn.execute(console_sessions.delete().where(console_sessions.c.user_name == name))
        Store.audit(conn, actor, "user_removed", detail={"user": name})


def list_users(store: Store) -> list[User]:
    u = console_users.c
    with store.engine.connect() as conn:
        return [User(r.name, _role(r.role), r.system)
                for r in conn.execute(sa.select(u.name, u.role, u.system).order_by(u.name))]


class LoginThrottle:
    """Caps failed logins in a window, per client address, per (name, address) and per name.

    The per-name cap is what stops guessing spread over many addresses, but it also lets
    anyone lock the on-call operator out by failing five times at their name. So an address
    from which a name logged in successfully in the last KNOWN_S is exempt from that name's
    cap (it is still held to its own per-address and per-pair caps): the operator's own
    workstation keeps working while a stranger's guesses lock the name everywhere else.

    Kept in the process: each ``lgsp serve`` behind a balancer counts on its own, which
    still caps guessing at a handful of tries per minute per process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[str, list[float]] = {}
        self._known: dict[tuple[str, str], float] = {}

    def _recent(self, key: str, now: float) -> list[float]:
        kept = [t for t in self._failures.get(key, []) if now - t < LOGIN_WINDOW_S]
        if kept:
            self._failures[key] = kept
        else:
            self._failures.pop(key, None)
        return kept

    def _keys(self, name: str, address: str, now: float) -> list[str]:
        keys = ["ip:" + address, f"pair:{name}\x00{address}"]
        if now - self._known.get((name, address), -KNOWN_S) >= KNOWN_S:
            keys.append("user:" + name)
        return keys

    def check(self, name: str, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._failures) > 10_000:
                self._failures.clear()
            if any(len(self._recent(k, now)) >= LOGIN_FAILURES
                   for k in self._keys(name, address, now)):
                raise errors.TooManyRequests(
                    "too many failed logins; wait five minutes",
                    details={"retry_after": int(LOGIN_WINDOW_S)})

    def failed(self, name: str, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in ("ip:" + address, f"pair:{name}\x00{address}", "user:" + name):
                self._failures.setdefault(key, []).append(now)

    def succeeded(self, name: str, address: str) -> None:
        with self._lock:
            if len(self._known) > 10_000:
                self._known.clear()
            self._known[(name, address)] = time.monotonic()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def login(store: Store, name: str, password: str) -> Session:
    """A fresh session for a correct name and password, else Unauthenticated."""
    u = console_users.c
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(u.name, u.role, u.system, u.password_hash)
                           .where(u.name == name)).first()
    try:
        _hasher.verify(row.password_hash if row else _DUMMY, password)
        valid = row is not None
    except (VerificationError, InvalidHashError):
        valid = False
    if not valid or row is None:
        raise errors.Unauthenticated("wrong user name or password")
    if _hasher.check_needs_rehash(row.password_hash):
        with store.begin() as conn:
            conn.execute(console_users.update().where(u.name == name)
                         .values(password_hash=_hasher.hash(password)))
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = time.time()
    with store.begin() as conn:
        conn.execute(console_sessions.delete().where(console_sessions.c.expires_at < now))
        conn.execute(console_sessions.insert().values(
            token_sha256=_digest(token), user_name=row.name, csrf=csrf, created_at=now,
            expires_at=now + SESSION_S))
        Store.audit(conn, f"console:{row.name}", "login", at=now)
    return Session(token, User(row.name, _role(row.role), row.system), csrf, now + SESSION_S)


def session(store: Store, token: str | None) -> Session | None:
    """The live session of a cookie's token; None if unknown, expired or the user is gone."""
    if not token or len(token) > 200:
        return None
    s, u = console_sessions.c, console_users.c
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(s.csrf, s.expires_at, u.name, u.role, u.system)
                           .join(console_users, u.name == s.user_name)
                           .where(s.token_sha256 == _digest(token))).first()
    if row is None or row.expires_at < time.time():
        return None
    return Session(token, User(row.name, _role(row.role), row.system), row.csrf,
                   row.expires_at)


def logout(store: Store, token: str) -> None:
    with store.begin() as conn:
        row = conn.execute(sa.select(console_sessions.c.user_name).where(
            console_sessions.c.token_sha256 == _digest(token))).first()
        conn.execute(console_sessions.delete().where(
            console_sessions.c.token_sha256 == _digest(token)))
        if row is not None:
            Store.audit(conn, f"console:{row.user_name}", "logout")
