"""What a secret looks like: the rules of obskit's one redaction policy.

Two kinds of rule, both pure functions of their input (the :class:`~obskit.logs.redaction.
Redactor` caches and applies them to every signal):

- **Keys.** :func:`key_is_secret` splits a key into words (``aws_access_key_id``, ``X-Api-Key``,
  ``refreshToken``, ``http.request.header.authorization``) and looks for a secret word: one of
  :data:`STRONG_WORDS` ending a word (``db_password``, ``clientsecret``, ``Set-Cookie``), a pair
  such as ``api key`` / ``access key`` / ``session id``, or a last word ending in ``token``
  (``access_token``, ``csrftoken``). Deliberately *not* secret: ``token_count``, ``max_tokens``,
  ``tokenizer``, ``cache_key``, ``author``, and any key whose last word describes the secret
  instead of holding it (``password_length``, ``cookie_domain``, ``secret_name``).
- **Text.** :class:`TextRules` finds secrets with a recognisable shape in free text: ``key=value``,
  ``key: value``, ``"key": "value"`` and ``key 'value'`` under a secret key (query strings,
  ``;matrix=`` parameters, DSNs, JSON, reprs, headers written out, SQL ``PASSWORD '...'``); the
  password in ``scheme://user:password@host``; ``Bearer``/``Basic``/``token`` credentials; and
  well-known token formats (JWTs, AWS access key ids, GitHub, Slack, Stripe, Google and OpenAI
  keys, PEM private keys). A secret with no such shape (``the password is hunter2``) is not found.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

__all__ = [
    "REDACTED",
    "STRONG_WORDS",
    "TextRules",
    "key_is_secret",
    "normalise",
    "redact_segments",
    "secret_segments",
]

REDACTED: Final = "[REDACTED]"

#: Words that make a key secret when a word of the key ends with one (or is its plural).
STRONG_WORDS: Final = (
    "password",
    "passwd",
    "passphrase",
    "passcode",
    "secret",
    "authorization",
    "cookie",
    "credential",
    "apikey",
    "accesskey",
    "privatekey",
    "secretkey",
    "sessionid",
    "sessionkey",
    "signature",
    "connectionstring",
    "bearer",
    "jwt",
)
# Secret as a whole word anywhere in the key, or only as its last word ("pass_rate" is not).
_WHOLE_ANYWHERE: Final = frozenset({"pwd", "otp", "csrf", "xsrf"})
_WHOLE_LAST: Final = frozenset({"pass", "auth", "sig"})
# "<prefix> key" (or "<prefix>key") names a key that opens something; a bare "key" does not.
_KEY_PREFIXES: Final = frozenset(
    {
        "api",
        "access",
        "private",
        "priv",
        "secret",
        "signing",
        "encryption",
        "master",
        "account",
        "client",
        "shared",
        "hmac",
        "subscription",
        "license",
        "ssh",
        "auth",
        "session",
        "consumer",
        "storage",
        "webhook",
    }
)
# A last word that describes the secret rather than holding it.
_QUALIFIERS: Final = frozenset(
    {
        "count",
        "counts",
        "length",
        "len",
        "size",
        "type",
        "kind",
        "name",
        "names",
        "expires",
        "expiry",
        "expiration",
        "ttl",
        "at",
        "time",
        "date",
        "url",
        "uri",
        "endpoint",
        "path",
        "file",
        "filename",
        "policy",
        "rule",
        "rules",
        "required",
        "enabled",
        "disabled",
        "min",
        "max",
        "version",
        "algorithm",
        "alg",
        "domain",
        "age",
        "samesite",
        "secure",
        "httponly",
        "strength",
        "format",
        "method",
        "scheme",
        "field",
        "label",
        "mode",
        "provider",
    }
)
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def normalise(key: str) -> str:
    """``key`` in lower case without separators (how extra ``redact_keys`` are compared)."""
    return _NOT_ALNUM.sub("", key.lower())


def _strong(word: str) -> bool:
    return any(word.endswith(strong) or word == strong + "s" for strong in STRONG_WORDS)


def key_is_secret(key: str, extra: tuple[str, ...] = ()) -> bool:
    """Whether values under ``key`` are secret (``extra``: normalised words matched anywhere)."""
    if extra:
        normal = normalise(key)
        if any(word in normal for word in extra):
            return True
    words = [word.lower() for word in _WORD.findall(key) if not word.isdigit()]
    if not words:
        return False
    last = words[-1]
    if len(words) > 1 and last in _QUALIFIERS:
        return False
    if last in _WHOLE_LAST or last.endswith("token"):
        return True
    for index, word in enumerate(words):
        if word in _WHOLE_ANYWHERE or _strong(word):
            return True
        if word.endswith("key") and word[:-3] in _KEY_PREFIXES:
            return True
        if index + 1 < len(words):
            following = words[index + 1]
            if _strong(word + following) or (following == "key" and word in _KEY_PREFIXES):
                return True
    return False


# A separator and the key before it, in the reversed text: "=yek", ": yek", ':"yek"' (JSON).
_KEY_BEHIND = re.compile(r"""[:=][ \t]*["']?([\w.\-]{1,128})""")


def _has_stem(lowered: str) -> bool:
    """Whether lower-cased text holds a stem that every built-in secret key in text contains
    (written out: a loop over a tuple costs twice as much, and this runs for most text with a
    separator)."""
    return (
        "pass" in lowered
        or "pwd" in lowered
        or "secret" in lowered
        or "auth" in lowered
        or "cookie" in lowered
        or "credential" in lowered
        or "key" in lowered
        or "session" in lowered
        or "sig" in lowered
        or "token" in lowered
        or "jwt" in lowered
        or "bearer" in lowered
        or "srf" in lowered
        or "otp" in lowered
    )


# SQL and prose: PASSWORD 'v', token "v".
_SQL_QUOTED = re.compile(r"""(?i)\b(password|passwd|pwd|secret|token)([ \t]+)(?=['"])""")
_QUERY_START = re.compile(r"[\w.\-]+=")
_PLAIN_VALUE = re.compile(r"""[^\s&;,'"<>()\[\]{}]+""")
_SCHEME_VALUE = re.compile(r"(?i)(?:bearer|basic|digest|negotiate|ntlm|token)[ \t]+")
_LINE_END = re.compile(r"[\r\n]")
# scheme://user:password@host (the password may hold ':' and, unencoded, '@').
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@:]*:)([^\s/?#]*)@")
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic|token)([ \t]+)([A-Za-z0-9._~+/=\-]{6,})")
_TOKEN_SHAPES = re.compile(
    r"\beyJ[\w-]{6,}\.eyJ[\w-]{6,}\.[\w-]*"  # JWT: base64url JSON header and payload
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"  # AWS access key id
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}|\bgithub_pat_\w{20,}"  # GitHub
    r"|\bxox[abposr]-[\w-]{10,}"  # Slack
    r"|\b[sr]k_live_[0-9A-Za-z]{16,}"  # Stripe
    r"|\bAIza[\w-]{35}"  # Google API key
    r"|\bsk-(?:proj-|ant-)?[\w-]{20,}"  # OpenAI, Anthropic
    r"|-----BEGIN[A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END[A-Z ]*PRIVATE KEY-----|\Z)"
)
#: Shortest text a token shape can match (an AWS access key id).
MIN_TOKEN_LENGTH: Final = 20


class TextRules:
    """The free-text rules (compiled once, at import) applied with a policy's key test.

    ``key_test`` is the (cached) key decision of the policy applying the rules, so a key in free
    text is judged exactly as the same key in a mapping, extra ``redact_keys`` included.
    """

    def __init__(self, key_test: Callable[[str], bool], extra: tuple[str, ...] = ()) -> None:
        self._key_test = key_test
        # A secret key in free text holds one of the stems (an extra key: its first letters).
        self._extra_stems = tuple(dict.fromkeys(word[:4] for word in extra if word))

    def clean(self, text: str) -> tuple[str, int]:
        """``text`` with every recognised secret replaced, and how many were replaced."""
        found = 0
        if "@" in text and "://" in text:
            new, n = _URL_PASSWORD.subn(_url_password, text)
            if new != text:  # (a match may be left as it was)
                text, found = new, found + n
        spaced = " " in text or "\t" in text
        quoted = spaced and ("'" in text or '"' in text)
        lowered = ""
        if quoted or "=" in text or (":" in text and text.count(":") != text.count("://")):
            lowered = text.lower()
            extra = self._extra_stems
            if _has_stem(lowered) or (extra and any(stem in lowered for stem in extra)):
                text, n = self._key_values(text, quoted)
                if n:
                    found += n
                    lowered = text.lower()
        if spaced:
            if not lowered:
                lowered = text.lower()
            if "earer" in lowered or "asic" in lowered or "oken" in lowered:
                new, n = _AUTH_SCHEME.subn(_auth_scheme, text)
                if new != text:
                    text, found = new, found + n
        if len(text) >= MIN_TOKEN_LENGTH and (
            "eyJ" in text
            or "AKIA" in text
            or "ASIA" in text
            or "AIza" in text
            or "xox" in text
            or "sk-" in text
            or "PRIVATE" in text
            or ("_" in text and ("gh" in text or "_live_" in text))
        ):
            text, n = _TOKEN_SHAPES.subn(REDACTED, text)
            found += n
        return text, found

    def _key_values(self, text: str, quoted: bool) -> tuple[str, int]:
        """Values after secret keys replaced (``key=v``, ``key: v``, ``"key": "v"``, ...).

        The reversed text is searched for each separator and the key before it (one regular
        expression, in C); each key costs one cached decision.
        """
        values: list[tuple[int, int]] = []
        size = len(text)
        test = self._key_test
        for match in _KEY_BEHIND.finditer(text[::-1]):
            key_start, key_end = size - match.end(1), size - match.start(1)
            key = text[key_start:key_end]
            if not test(key):
                continue
            begin = size - match.start()
            while begin < size and text[begin] in " \t":
                begin += 1
            extent = _value_extent(text, begin, key, text[key_end:begin])
            if extent[1] > extent[0] and text[extent[0] : extent[1]] != REDACTED:
                values.append(extent)
        if quoted:
            for match in _SQL_QUOTED.finditer(text):
                extent = _value_extent(text, match.end(), match.group(1), match.group(2))
                if extent[1] > extent[0] and text[extent[0] : extent[1]] != REDACTED:
                    values.append(extent)
        return _replace(text, values)


def _replace(text: str, values: list[tuple[int, int]]) -> tuple[str, int]:
    """``text`` with each (begin, end) span replaced by the marker (overlaps merged)."""
    if not values:
        return text, 0
    values.sort()
    pieces: list[str] = []
    done = 0
    found = 0
    for begin, end in values:
        if begin < done:
            continue
        pieces.append(text[done:begin])
        pieces.append(REDACTED)
        done = end
        found += 1
    pieces.append(text[done:])
    return "".join(pieces), found


def _value_extent(text: str, start: int, key: str, separator: str) -> tuple[int, int]:
    """Where the value after ``key`` and ``separator`` begins and ends in ``text``."""
    if start >= len(text):
        return start, start
    quote = text[start]
    if quote in "\"'":
        index = start + 1
        while index < len(text):
            char = text[index]
            if char == "\\":
                index += 2
                continue
            if char == quote:
                return start + 1, index
            index += 1
        return start + 1, len(text)  # unterminated: everything after the quote
    if not separator.strip():
        return start, start  # "KEY " needs a quoted value
    lowered = key.lower()
    if "authorization" in lowered or lowered.endswith("auth"):
        scheme = _SCHEME_VALUE.match(text, start)
        if scheme is not None:
            start = scheme.end()
    if ":" in separator and ("cookie" in lowered or "authorization" in lowered):
        # A header written out: its value runs to the end of the line (cookies hold ';').
        line_end = _LINE_END.search(text, start)
        return start, line_end.start() if line_end is not None else len(text)
    value = _PLAIN_VALUE.match(text, start)
    if value is None:
        return start, start
    end = value.end()
    query = text.find("?", start, end)
    if query >= 0 and _QUERY_START.match(text, query + 1, end):
        end = query  # a matrix parameter ends where the URL's query begins
    return start, end


def _url_password(match: re.Match[str]) -> str:
    if not match.group(2) or match.group(2) == REDACTED:
        return match.group(0)
    return f"{match.group(1)}{REDACTED}@"


def _auth_scheme(match: re.Match[str]) -> str:
    credential = match.group(3)
    if (
        match.group(1).lower() != "bearer"
        and len(credential) < 24
        and credential.isalpha()
        and (credential.islower() or credential.isupper() or credential.istitle())
    ):
        return match.group(0)  # prose ("the token expired", "Basic information"): no credential
    return f"{match.group(1)}{match.group(2)}{REDACTED}"


# A route parameter filling one segment: Starlette ``{name}`` / ``{name:int}``, Flask and Django
# ``<name>`` / ``<converter:name>``.
_ROUTE_PARAM = re.compile(r"\{([A-Za-z_]\w*)(?::(\w+))?\}|<(?:(\w+):)?([A-Za-z_]\w*)>")


def secret_segments(route: str, key_test: Callable[[str], bool]) -> tuple[int, ...]:
    """Where ``route`` has a parameter under a secret name (``/reset/{token}``): the indexes of
    those segments counted from the end (a mount prefix may come before them). Empty when there
    is none, or when a parameter spans segments (``{p:path}``: the path's segments do not line
    up with the route's)."""
    segments = route.split("?", 1)[0].split("/")
    found: list[int] = []
    for index, segment in enumerate(segments):
        match = _ROUTE_PARAM.fullmatch(segment)
        if match is None:
            continue
        converter = match.group(2) or match.group(3)
        if converter == "path":
            return ()
        if key_test(match.group(1) or match.group(4)):
            found.append(index - len(segments))
    return tuple(found)


def redact_segments(path: str, ends: tuple[int, ...]) -> tuple[str, int]:
    """``path`` (a query may follow) with the segments at ``ends`` (from the end) replaced, and
    how many were."""
    target, mark, query = path.partition("?")
    parts = target.split("/")
    if len(parts) < -min(ends):
        return path, 0
    found = 0
    for end in ends:
        if parts[end] and parts[end] != REDACTED:
            parts[end] = REDACTED
            found += 1
    if not found:
        return path, 0
    return f"{'/'.join(parts)}{mark}{query}", found
