"""The bearer token contract in HAProxy 2.6: the rules for kong.yml's global
pre-function (lua.KNOWN_PRE_FUNCTION_LUA). Keep the two in step, check by check
and in the same order, so that both gateways refuse the same requests with the
same 401.

Like the Lua, the rules read the token's parts as text: without escapes, control
characters or repeated members (the contract refuses those), a member's name and
value can be found in the JSON text exactly, whichever parser reads it next.
"""

from kong.lua import BEARER_CONTRACT_DIGITS, BEARER_CONTRACT_INTEGERS, BEARER_CONTRACT_MEMBERS
from kong.syntax import is_, literal, not_, unauthorized

WS = r"[ \t\r\n]"  # JSON's white space
SCHEME = r"(?i)^bearer +"
COMPACT_JWS = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"
OBJECT = rf"^{WS}*\{{[\s\S]*\}}{WS}*$"
# Control characters other than JSON's white space, and the backslash. (A NUL
# ends what HAProxy's regex sees, so it is looked for in the hex form.)
UNSAFE = r"[\x01-\x08\x0b\x0c\x0e-\x1f\\]"
NUL = r"^(..)*00"
PARTS = (("header", 1), ("claims", 2))

INVALID_JSON = "Bad token; invalid JSON"
INVALID_CLAIMS = "Bad token; invalid claims"


def bearer_contract() -> list[str]:
    """On every route, after routing and before any jwt plugin, as Kong runs it."""
    one = is_("req.fhdr_cnt(authorization) -m int eq 1")
    token = is_("var(txn.bearer) -m found")
    lines = [
        "# global pre-function: the bearer token contract (README, Security), on every route",
        unauthorized("Multiple tokens provided", is_("req.fhdr_cnt(authorization) -m int gt 1")),
        unauthorized(
            "Unauthorized", one, not_(f"req.fhdr(authorization) -m reg {literal(SCHEME)}"), challenge="Bearer"
        ),
        f"http-request set-var(txn.bearer) req.fhdr(authorization),regsub({literal('^[^ ]+ +')},) if {one}",
        unauthorized(INVALID_JSON, token, not_(f"var(txn.bearer) -m reg {literal(COMPACT_JWS)}")),
    ]
    for part, field in PARTS:
        text = f"txn.bearer_{part}"
        lines += [
            f"http-request set-var({text}) var(txn.bearer),field({field},.),ub64dec if {token}",
            unauthorized(INVALID_JSON, token, not_(f"var({text}) -m reg {literal(OBJECT)}")),
            unauthorized(INVALID_JSON, token, is_(f"var({text}) -m reg {literal(UNSAFE)}")),
            unauthorized(INVALID_JSON, token, is_(f"var({text}),hex -m reg {literal(NUL)}")),
            *(
                unauthorized(INVALID_JSON, token, is_(f"var({text}) -m reg {literal(_twice(name))}"))
                for name in BEARER_CONTRACT_MEMBERS
            ),
        ]
    for name in BEARER_CONTRACT_INTEGERS:
        present = is_(f"var(txn.bearer_claims) -m reg {literal(_member(name))}")
        whole = rf"{_member(name)}{WS}*[0-9]{{1,{BEARER_CONTRACT_DIGITS}}}{WS}*[,}}]"
        lines.append(
            unauthorized(INVALID_CLAIMS, token, present, not_(f"var(txn.bearer_claims) -m reg {literal(whole)}"))
        )
    return lines


def _member(name: str) -> str:
    return f'"{name}"{WS}*:'


def _twice(name: str) -> str:
    return rf"{_member(name)}[\s\S]*{_member(name)}"
