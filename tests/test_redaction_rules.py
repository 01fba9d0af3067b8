"""The redaction policy's rules: which keys and text shapes are secret, and which are kept."""

from __future__ import annotations

import dataclasses
import email.message
from typing import Any

import httpx
import pytest
import requests.structures
import starlette.datastructures
import werkzeug.datastructures

from obskit.logs import REDACTED
from obskit.logs.exemplars import exemplar_labels
from obskit.logs.redaction import MAX_ITEMS, Redactor, counts
from obskit.logs.secret_shapes import key_is_secret

SECRET_KEYS = [
    "password",
    "db.password",
    "DB_PASSWORD",
    "dbpassword",
    "passwd",
    "pwd",
    "pass",
    "user_pass",
    "passphrase",
    "secret",
    "client_secret",
    "aws_secret_access_key",
    "aws_access_key_id",
    "aws_session_token",
    "api_key",
    "apiKey",
    "APIKey",
    "X-Api-Key",
    "x-goog-api-key",
    "Ocp-Apim-Subscription-Key",
    "private_key",
    "ssh_key",
    "signing_key",
    "token",
    "access_token",
    "refreshToken",
    "id_token",
    "csrftoken",
    "X-CSRF-Token",
    "x-amz-security-token",
    "authorization",
    "Authorization",
    "Proxy-Authorization",
    "http.request.header.authorization",
    "auth",
    "basic_auth",
    "cookie",
    "Cookie",
    "Set-Cookie",
    "cookies",
    "session_id",
    "sessionid",
    "credentials",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "signature",
    "X-Amz-Signature",
    "sig",
    "jwt",
    "otp",
    "AZURE_STORAGE_CONNECTION_STRING",
    "password_reset_token",
]

# Keys that look close but hold no secret: redacting them would destroy useful data.
PLAIN_KEYS = [
    "token_count",
    "max_tokens",
    "tokens",
    "tokenizer",
    "token_type",
    "token_expires_at",
    "password_length",
    "password_policy",
    "cookie_domain",
    "secret_name",
    "api_key_name",
    "cache_key",
    "key",
    "idempotency_key",
    "author",
    "authority",
    "oauth_provider",
    "auth_provider",
    "auth_method",
    "pass_rate",
    "passthrough",
    "secretary",
    "www-authenticate",
    "client_id",
    "trace_id",
    "span_id",
    "route",
    "path",
    "tenant_id",
    "correlation_id",
    "monkey",
    "keyboard",
    "session",
]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_keys(key: str) -> None:
    """A key naming a secret, in any spelling (case, separators, camelCase), is secret."""
    assert key_is_secret(key)


@pytest.mark.parametrize("key", PLAIN_KEYS)
def test_plain_keys(key: str) -> None:
    """A key that only resembles a secret name keeps its value."""
    assert not key_is_secret(key)


def test_extra_keys_match_anywhere_ignoring_case_and_separators() -> None:
    """redact_keys entries match inside any key, whatever its case and separators."""
    redactor = Redactor(["card_number"])
    for key in ("card_number", "cardNumber", "BILLING-CARD-NUMBER"):
        assert redactor.is_secret_key(key)
    assert not redactor.is_secret_key("card_type")


TEXT = [
    ("password=hunter2", f"password={REDACTED}"),
    ("login failed password=hunter2 user=bob", f"login failed password={REDACTED} user=bob"),
    ("password = hunter2 ok", f"password = {REDACTED} ok"),
    ("Password: hunter2", f"Password: {REDACTED}"),
    ("{'password': 'two words', 'user': 'bob'}", f"{{'password': '{REDACTED}', 'user': 'bob'}}"),
    ('{"api_key": "k1", "n": 1}', f'{{"api_key": "{REDACTED}", "n": 1}}'),
    ('{"password":"p\\"q","u":1}', f'{{"password":"{REDACTED}","u":1}}'),
    ("User(name='a', password='sekret')", f"User(name='a', password='{REDACTED}')"),
    ("ALTER USER bob WITH PASSWORD 'hunter2'", f"ALTER USER bob WITH PASSWORD '{REDACTED}'"),
    ("page=2&access_token=abc123&x=1", f"page=2&access_token={REDACTED}&x=1"),
    ("/items;access_token=abc123", f"/items;access_token={REDACTED}"),
    ("postgres://app:s3cr3t@db:5432/orders", f"postgres://app:{REDACTED}@db:5432/orders"),
    ("redis://:pw@cache:6379/0", f"redis://:{REDACTED}@cache:6379/0"),
    ("https://u:p@ss@host/x", f"https://u:{REDACTED}@host/x"),
    (
        'HTTP Request: GET http://u:pw@h/p?access_token=abc123 "HTTP/1.1 200 OK"',
        f'HTTP Request: GET http://u:{REDACTED}@h/p?access_token={REDACTED} "HTTP/1.1 200 OK"',
    ),
    ("Server=x;User Id=u;Password=p@ss;", f"Server=x;User Id=u;Password={REDACTED};"),
    ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG", f"AWS_SECRET_ACCESS_KEY={REDACTED}"),
    ("Authorization: Bearer abc.def.ghi", f"Authorization: Bearer {REDACTED}"),
    ("Cookie: sid=abc; theme=dark\nnext", f"Cookie: {REDACTED}\nnext"),
    ("authorization=Bearer abcdefgh", f"authorization=Bearer {REDACTED}"),
    ("calling with Bearer eyJhbGciOi.abc.def now", f"calling with Bearer {REDACTED} now"),
    ("Basic dXNlcjpwYXNz", f"Basic {REDACTED}"),
    ("TOKEN s3cr3tv4lue", f"TOKEN {REDACTED}"),
    ("key AKIAIOSFODNN7EXAMPLE in use", f"key {REDACTED} in use"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig-nature", f"jwt {REDACTED}"),
    ("push ghp_" + "a1" * 18 + " ok", f"push {REDACTED} ok"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----", REDACTED),
]

# Text that must come out unchanged.
PLAIN_TEXT = [
    "order.placed",
    "token_count=3",
    "GET /passwords/reset",
    "the token expired",
    "Basic information about the order",
    "12:30:45 done",
    "error: connection refused by upstream host db-7",
    "https://api.example.com:8443/v1/items?page=2",
    "user bob@example.com logged in",
    "123e4567-e89b-12d3-a456-426614174000",
    "the password is hunter2",  # no recognisable shape: a documented limit
]


@pytest.mark.parametrize(("text", "expected"), TEXT)
def test_secret_shapes_in_text(text: str, expected: str) -> None:
    """Each recognised shape of secret in free text is replaced, the rest of the text kept."""
    assert expected == Redactor().clean_text(text)


@pytest.mark.parametrize("text", PLAIN_TEXT)
def test_plain_text_is_returned_as_it_is(text: str) -> None:
    """Text with no recognisable secret is the very same object afterwards."""
    assert text is Redactor().clean_text(text)


def test_cleaning_twice_changes_nothing_more() -> None:
    """Cleaned text is a fixed point: a second pass (another signal) leaves it as it is."""
    redactor = Redactor()
    for text, _ in TEXT:
        once = redactor.clean_text(text)
        assert once == redactor.clean_text(once)


@dataclasses.dataclass
class _Login:
    user: str
    password: str


class _Opaque:
    def __repr__(self) -> str:
        return "Opaque(token='t0p-s3cret-v4lue')"


def _shapes() -> list[tuple[str, Any]]:
    message = email.message.Message()
    message["Authorization"] = "Bearer m3ssage-t0ken"
    return [
        ("dict", {"Authorization": "Bearer d1ct-t0ken"}),
        ("starlette", starlette.datastructures.Headers({"authorization": "Bearer st4r-t0ken"})),
        ("httpx", httpx.Headers({"Authorization": "Bearer httpx-t0ken"})),
        ("requests", requests.structures.CaseInsensitiveDict({"Cookie": "sid=r3quests"})),
        ("werkzeug", werkzeug.datastructures.Headers([("Cookie", "sid=w3rkzeug")])),
        ("email", message),
        ("asgi raw", [(b"authorization", b"Bearer r4w-t0ken"), (b"accept", b"*/*")]),
        ("asgi lists", [[b"cookie", b"sid=l1st"], [b"accept", b"*/*"]]),
        ("str pairs", [("Cookie", "sid=p4irs"), ("Accept", "*/*")]),
        ("bytes", b"password=byt3s-secret"),
        ("dataclass", _Login("bob", "d4taclass")),
        ("object", _Opaque()),
        ("set", {"password=s3t-secret"}),
        ("nested", {"a": [{"b": ({"client_secret": "n3sted"},)}]}),
    ]


@pytest.mark.parametrize(("name", "value"), _shapes())
def test_values_of_any_shape(name: str, value: Any) -> None:
    """Mappings of any type, header lists in str and bytes, and objects come out redacted."""
    cleaned = Redactor().clean_value({"field": value})
    text = repr(cleaned)
    for secret in (
        "d1ct",
        "st4r",
        "httpx-t0ken",
        "r3quests",
        "w3rkzeug",
        "m3ssage",
        "r4w-t0ken",
        "l1st",
        "p4irs",
        "byt3s",
        "d4taclass",
        "t0p-s3cret",
        "s3t-secret",
        "n3sted",
    ):
        assert secret not in text, name
    assert REDACTED in text


def test_mapping_like_values_become_plain_dicts_with_their_other_entries() -> None:
    """A Headers object renders as a JSON object (not its repr), non-secret entries kept."""
    headers = starlette.datastructures.Headers({"authorization": "Bearer x1y2z3", "accept": "*/*"})
    assert {"authorization": REDACTED, "accept": "*/*"} == Redactor().clean_value(headers)


def test_booleans_and_none_under_secret_keys_are_kept() -> None:
    """Flags and absent values hold no secret: has_password=True stays visible."""
    cleaned = Redactor().clean_mapping({"has_password": True, "password": None, "pin_pwd": 1234})
    assert {"has_password": True, "password": None, "pin_pwd": REDACTED} == cleaned


def test_unchanged_mappings_are_not_copied() -> None:
    """A mapping with nothing to clean is returned itself (the hot path allocates nothing)."""
    fields = {"order_id": 7, "amount": 9.99, "note": "short", "uuid": "0f" * 16}
    assert fields is Redactor().clean_mapping(fields)


def test_redact_false_still_bounds() -> None:
    """With secrets off nothing is redacted, but long values are still cut."""
    redactor = Redactor(secrets=False, max_length=256)
    assert "password=hunter2" == redactor.clean_text("password=hunter2")
    assert 256 >= len(redactor.clean_text("x" * 10_000))


class TestBounds:
    def test_long_text_keeps_head_and_tail_around_a_marker(self) -> None:
        """Over max_length, text keeps its start and end, marked with what was cut."""
        text = "HEAD" + "x" * 10_000 + "TAIL"
        cut = Redactor(max_length=1000).clean_text(text)
        assert 1000 >= len(cut)
        assert cut.startswith("HEAD")
        assert cut.endswith("TAIL")
        assert "...[truncated " in cut

    def test_a_secret_in_a_huge_value_is_still_redacted(self) -> None:
        """Secrets at either end of a value of megabytes are redacted before it is cut."""
        text = "password=head-s3cret " + "x" * 2_000_000 + " token=tail-s3cret"
        cut = Redactor(max_length=1000).clean_text(text)
        assert 1000 >= len(cut)
        assert "head-s3cret" not in cut
        assert "tail-s3cret" not in cut

    def test_containers_keep_their_first_items(self) -> None:
        """A list or mapping over the item cap keeps MAX_ITEMS entries and says what was cut."""
        redactor = Redactor()
        cleaned = redactor.clean_value(list(range(MAX_ITEMS + 50)))
        assert MAX_ITEMS + 1 == len(cleaned)
        assert "...[truncated 50 items]..." == cleaned[-1]
        mapping = redactor.clean_value({f"k{i}": i for i in range(MAX_ITEMS + 5)})
        assert MAX_ITEMS + 1 == len(mapping)

    def test_nesting_is_bounded(self) -> None:
        """A value nested deeper than the walk goes is replaced, never passed on unread."""
        value: Any = {"password": "d33p"}
        for _ in range(40):
            value = [value]
        assert "d33p" not in repr(Redactor().clean_value(value))

    def test_truncations_are_counted_per_signal(self) -> None:
        """Each cut value counts once in its signal."""
        before = counts().get(("truncated", "span"), 0)
        Redactor().view("span").clean_text("y" * 100_000)
        assert 1 + before == counts()[("truncated", "span")]


class TestExemplarLabels:
    def test_a_trace_id_passes_unchanged(self) -> None:
        """The trace id label obskit attaches is returned as the same object."""
        labels = {"trace_id": "0af7651916cd43dd8448eb211c80319c"}
        assert labels is exemplar_labels(labels)

    def test_labels_are_cut_to_prometheus_128_characters(self) -> None:
        """Names and values together never exceed 128 characters; the cut is counted."""
        before = counts().get(("truncated", "exemplar"), 0)
        labels = exemplar_labels({"trace_id": "a" * 32, "note": "b" * 200})
        assert 128 >= sum(len(k) + len(v) for k, v in labels.items())
        assert "a" * 32 == labels["trace_id"]
        assert 1 + before == counts()[("truncated", "exemplar")]

    def test_secret_labels_are_redacted(self) -> None:
        """A label under a secret name carries the marker, not its value."""
        assert {"trace_id": "ab", "token": REDACTED} == exemplar_labels(
            {"trace_id": "ab", "token": "s3cr3t"}
        )
