"""Users, password hashing (scrypt) and API bearer tokens (stored as SHA-256 hashes)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import clock
from engine.audit import Actor, record
from engine.errors import Conflict, InvalidData
from engine.models import ApiToken, User, UserRole
from engine.roles import ROLES

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
MIN_PASSWORD_LENGTH = 10


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    expected = base64.b64decode(digest)
    actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r),
                            p=int(p), dklen=len(expected))
    return hmac.compare_digest(actual, expected)


def actor_for(user: User, address: str | None = None) -> Actor:
    return Actor(user.username, user.role_names, address)


def get_user(session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username == username)).first()


def create_user(session: Session, username: str, password: str, roles: list[str],
                email: str | None = None, actor: Actor | None = None) -> User:
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise InvalidData(f"unknown role(s): {', '.join(unknown)}; known roles: "
                          f"{', '.join(ROLES)}", {"role": [f"unknown: {r}" for r in unknown]})
    if not roles:
        raise InvalidData("a user needs at least one role", {"role": ["required"]})
    if not username or not username.replace("_", "").replace(".", "").replace("-", "").isalnum():
        raise InvalidData("a username is letters, digits, '.', '-' and '_' only",
                          {"username": ["invalid"]})
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidData(f"the password must have at least {MIN_PASSWORD_LENGTH} characters",
                          {"password": ["too short"]})
    if get_user(session, username) is not None:
        raise Conflict(f"the user {username!r} exists already")
    user = User(username=username, password_hash=hash_password(password), email=email,
                active=True, created_at=clock.now(),
                roles=[UserRole(role=r) for r in sorted(set(roles))])
    session.add(user)
    session.flush()
    record(session, actor, "user_created", details={"username": username, "roles": sorted(roles)})
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    user = get_user(session, username)
    if user is None or not user.active:
        verify_password(password, _DUMMY_HASH)  # same cost whether or not the user exists
        return None
    return user if verify_password(password, user.password_hash) else None


def change_password(session: Session, username: str, current: str, new: str,
                    actor: Actor | None = None) -> None:
    """Replace a user's password after checking the current one; audited."""
    user = authenticate(session, username, current)
    if user is None:
        raise InvalidData("the current password is not right",
                          {"current_password": ["this is not your current password"]})
    if len(new) < MIN_PASSWORD_LENGTH:
        raise InvalidData("the new password is too short", {"new_password": [
            f"use at least {MIN_PASSWORD_LENGTH} characters"]})
    if new == current:
        raise InvalidData("the new password is the same as the current one",
                          {"new_password": ["choose a password you have not used here"]})
    user.password_hash = hash_password(new)
    record(session, actor, "password_changed", details={"username": username})


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, username: str, actor: Actor | None = None) -> str:
    """A new bearer token for ``username``; only its hash is stored."""
    user = get_user(session, username)
    if user is None:
        raise InvalidData(f"there is no user {username!r}", {"username": ["unknown"]})
    token = "cmp_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=_token_hash(token), created_at=clock.now()))
    record(session, actor, "token_created", details={"username": username})
    return token


def user_for_token(session: Session, token: str) -> User | None:
    row = session.scalars(
        select(ApiToken).where(ApiToken.token_hash == _token_hash(token),
                               ApiToken.revoked_at.is_(None))
    ).first()
    if row is None:
        return None
    user = session.get(User, row.user_id)
    return user if user is not None and user.active else None


_DUMMY_HASH = hash_password("not a real password")
