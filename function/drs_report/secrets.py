"""Secret values that cannot leak by accident, and the credentials they make up."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from drs_report import environment


class Secret:
    """A string that never shows itself in repr, str, f-strings, logs or tracebacks.

    Call `reveal()` at the single place the value must go on the wire.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling (multiprocessing, caches) would otherwise be a way round the mask.
        raise TypeError("Secret values are not picklable")


@dataclass(frozen=True)
class Credentials:
    """An AK/SK pair, with the security token that temporary (agency) credentials carry."""

    ak: Secret
    sk: Secret
    security_token: Secret | None = None

    @classmethod
    def of(cls, ak: str, sk: str, security_token: str | None = None) -> Credentials:
        return cls(Secret(ak), Secret(sk), Secret(security_token) if security_token else None)

    def secrets(self) -> list[str]:
        """The raw values, for redaction filters only."""
        values = [self.ak.reveal(), self.sk.reveal()]
        if self.security_token is not None:
            values.append(self.security_token.reveal())
        return [v for v in values if v]


def credentials_from_environment(environ: Mapping[str, str]) -> Credentials | None:
    """The SDK's own variables: HUAWEICLOUD_SDK_AK / _SK / _SECURITY_TOKEN."""
    ak = environ.get(environment.AK, "").strip()
    sk = environ.get(environment.SK, "").strip()
    if not ak or not sk:
        return None
    token = environ.get(environment.SECURITY_TOKEN, "").strip() or None
    return Credentials.of(ak, sk, token)

def agency_credentials(context: Any) -> Credentials | None:
    """Temporary credentials of the function's agency, if it has one."""
    try:
        ak = context.getSecurityAccessKey()
        sk = context.getSecuritySecretKey()
        token = context.getSecurityToken()
    except AttributeError:
        return None
    if not ak or not sk:
        return None
    return Credentials.of(str(ak), str(sk), str(token) if token else None)


class Redactor:
    """Replaces known secret values in free text (log lines, error messages, reports)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._needles: tuple[bytes, ...] = ()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        # Very short values would mask ordinary words; real keys and tokens are long.
        new = {s for s in secrets if s and len(s) >= 6} - self._secrets
        if not new:
            return  # every run registers the same values again: nothing to recompile
        self._secrets.update(new)
        ordered = sorted(self._secrets, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in ordered))
        self._needles = tuple(s.encode("utf-8") for s in ordered)

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub("***", text)

    def may_hide_in(self, content: bytes) -> bool:
        """Whether decoding `content` could yield a registered secret.

        A plain substring search (C speed) decides for bodies without escapes; a backslash
        (JSON's \\/ or \\u0041 can spell a secret differently) or a NUL byte (UTF-16/32
        text) means only the decoded strings can tell, so the answer is yes.
        """
        if not self._needles:
            return False
        if b"\\" in content or b"\x00" in content:
            return True
        return any(needle in content for needle in self._needles)
