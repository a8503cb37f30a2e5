"""API keys: hashing, finding a request's key, expiry, roles and model globs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ollama_fleet.errors import FleetError
from ollama_fleet.gateway.keys import (
    ROLE_ROUTES,
    Authenticator,
    AuthError,
    RouteKind,
    authorize,
    hash_key,
    new_key,
    normalise_model,
)
from ollama_fleet.gateway.settings import KeySpec, Role

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ALICE_KEY = "ofk_alice-secret-value"
BOB_KEY = "ofk_bob-secret-value"


def _spec(name: str, key: str, **fields: object) -> KeySpec:
    return KeySpec(name=name, sha256=hash_key(key), **fields)  # type: ignore[arg-type]


@pytest.fixture
def auth() -> Authenticator:
    return Authenticator(
        [
            _spec("alice", ALICE_KEY),
            _spec("bob", BOB_KEY, expires=NOW),
        ]
    )


def test_hash_key_is_the_sha256_hex_digest() -> None:
    assert hash_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_new_keys_are_prefixed_long_and_different() -> None:
    keys = {new_key() for _ in range(50)}
    assert len(keys) == 50
    for key in keys:
        assert key.startswith("ofk_")
        assert len(key) == 4 + 43


def test_a_bearer_key_finds_its_spec(auth: Authenticator) -> None:
    assert auth.authenticate(f"Bearer {ALICE_KEY}", now=NOW).name == "alice"
    assert auth.authenticate(f"bearer   {ALICE_KEY} ", now=NOW).name == "alice"
    assert auth.authenticate(f"BEARER {ALICE_KEY}", now=NOW).name == "alice"


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer   ", f"Basic {ALICE_KEY}", ALICE_KEY]
)
def test_no_bearer_key_is_a_401_that_says_how_to_send_one(
    auth: Authenticator, header: str | None
) -> None:
    with pytest.raises(AuthError) as caught:
        auth.authenticate(header, now=NOW)
    assert caught.value.status == 401
    assert caught.value.message == "missing API key: send Authorization: Bearer <key>"
    assert ALICE_KEY not in str(caught.value)


def test_a_wrong_key_is_a_401_that_never_echoes_it(auth: Authenticator) -> None:
    with pytest.raises(AuthError) as caught:
        auth.authenticate("Bearer ofk_guessed-key", now=NOW)
    assert isinstance(caught.value, FleetError)
    assert caught.value.status == 401
    assert str(caught.value) == "invalid API key"
    with pytest.raises(AuthError, match="invalid API key"):
        auth.authenticate(f"Bearer {ALICE_KEY.upper()}", now=NOW)


def test_an_expired_key_is_refused_from_its_expiry_on(auth: Authenticator) -> None:
    before = NOW - timedelta(seconds=1)
    assert auth.authenticate(f"Bearer {BOB_KEY}", now=before).name == "bob"
    with pytest.raises(AuthError) as caught:
        auth.authenticate(f"Bearer {BOB_KEY}", now=NOW)
    assert (caught.value.status, caught.value.message) == (401, "API key expired")


def test_digests_with_a_prefix_or_upper_case_are_accepted() -> None:
    digest = hash_key(ALICE_KEY)
    auth = Authenticator(
        [
            KeySpec(name="prefixed", sha256=f"sha256:{digest}"),
            KeySpec(name="upper", sha256=hash_key(BOB_KEY).upper()),
        ]
    )
    assert auth.authenticate(f"Bearer {ALICE_KEY}", now=NOW).name == "prefixed"
    assert auth.authenticate(f"Bearer {BOB_KEY}", now=NOW).name == "upper"


def test_no_keys_configured_refuses_everyone() -> None:
    with pytest.raises(AuthError, match="invalid API key"):
        Authenticator([]).authenticate(f"Bearer {ALICE_KEY}", now=NOW)


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.READONLY, {RouteKind.LIST, RouteKind.SHOW}),
        (Role.USER, {RouteKind.LIST, RouteKind.SHOW, RouteKind.GENERATE}),
        (Role.ADMIN, set(RouteKind)),
    ],
)
def test_roles_allow_exactly_their_routes(role: Role, allowed: set[RouteKind]) -> None:
    key = _spec("k", "x", role=role)
    assert ROLE_ROUTES[role] == allowed
    for route in RouteKind:
        if route in allowed:
            authorize(key, route=route, model=None)
        else:
            with pytest.raises(AuthError) as caught:
                authorize(key, route=route, model=None)
            assert caught.value.status == 403
            assert role.value in caught.value.message


@pytest.mark.parametrize(
    ("globs", "model", "ok"),
    [
        (("*",), "anything:7b", True),
        (("llama3.2",), "llama3.2", True),
        (("llama3.2",), "llama3.2:latest", True),
        (("llama3.2:latest",), "llama3.2", True),
        (("llama3.2",), "LLaMA3.2", True),
        (("llama3.2",), "llama3.2:70b", False),
        (("llama3.2",), "llama3", False),
        (("qwen*",), "qwen2.5:7b", True),
        (("qwen*",), "llama3.2", False),
        (("*:7b",), "qwen2.5:7b", True),
        (("*:7b",), "qwen2.5", False),
        (("llama3.2", "qwen*"), "qwen3", True),
        ((), "llama3.2", False),
    ],
)
def test_model_globs(globs: tuple[str, ...], model: str, ok: bool) -> None:
    key = _spec("k", "x", models=globs)
    if ok:
        authorize(key, route=RouteKind.GENERATE, model=model)
    else:
        with pytest.raises(AuthError) as caught:
            authorize(key, route=RouteKind.GENERATE, model=model)
        assert caught.value.status == 403
        assert model in caught.value.message


def test_role_is_checked_before_the_model() -> None:
    key = _spec("reader", "x", role=Role.READONLY, models=("llama3.2",))
    with pytest.raises(AuthError, match="may not use generate routes"):
        authorize(key, route=RouteKind.GENERATE, model="llama3.2")


def test_normalise_model_adds_latest_only_without_a_tag() -> None:
    assert normalise_model("Llama3.2") == "llama3.2:latest"
    assert normalise_model("llama3.2:8b") == "llama3.2:8b"
    assert (
        normalise_model("registry.local:5000/team/model") == "registry.local:5000/team/model:latest"
    )
