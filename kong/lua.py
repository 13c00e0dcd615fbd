"""The Lua in kong.yml that the HAProxy generator knows how to translate.

HAProxy can't run Kong's Lua, so the generator accepts only these snippets, each
with a hand-written HAProxy equivalent in haproxy.py. A changed snippet is
refused, never guessed at: change a text here, its copy in kong.yml and its
HAProxy rules together. Snippets are compared line by line, leading and
trailing blanks ignored (indentation is YAML's business), inner spacing kept
(it can be inside a string or a pattern).
"""

from typing import Any

# The global pre-function: the bearer token contract (kong.yml's comment and the
# README's "Security" say what it is). haproxy.py's _bearer_contract() is it in
# HAProxy. A request with one Authorization header that is "Bearer" (any case),
# spaces and a compact JWS goes on with the header rewritten "Bearer <token>";
# anything else is a 401 with the jwt plugin's body.
KNOWN_PRE_FUNCTION_LUA = r"""
local jwt_parser = require "kong.plugins.jwt.jwt_parser"
local value = kong.request.get_headers()["authorization"]
if value == nil then
  return
end
local function refuse(message, challenge)
  return kong.response.exit(401, { message = message },
    { ["WWW-Authenticate"] = challenge or 'Bearer error="invalid_token"' })
end
if type(value) == "table" then
  return refuse("Multiple tokens provided")
end
local token = value:match("^[Bb][Ee][Aa][Rr][Ee][Rr] +(.*)$")
if token == nil then
  return refuse("Unauthorized", "Bearer")
end
local header, claims = token:match("^([A-Za-z0-9_%-]+)%.([A-Za-z0-9_%-]+)%.[A-Za-z0-9_%-]+$")
if header == nil then
  return refuse("Bad token; invalid JSON")
end
header, claims = jwt_parser:base64_decode(header), jwt_parser:base64_decode(claims)
for _, part in ipairs({ header or "", claims or "" }) do
  if not part:find("^[ \t\r\n]*{.*}[ \t\r\n]*$") or part:find("[%z\1-\8\11\12\14-\31\\]") then
    return refuse("Bad token; invalid JSON")
  end
  for _, name in ipairs({ "alg", "iss", "sub", "exp", "nbf" }) do
    local _, count = part:gsub('"' .. name .. '"[ \t\r\n]*:', "")
    if count > 1 then
      return refuse("Bad token; invalid JSON")
    end
  end
end
for _, name in ipairs({ "exp", "nbf" }) do
  local key = '"' .. name .. '"[ \t\r\n]*:'
  local digits = claims:match(key .. "[ \t\r\n]*([0-9]+)[ \t\r\n]*[,}]")
  if claims:find(key) and (digits == nil or #digits > 15) then
    return refuse("Bad token; invalid claims")
  end
end
kong.service.request.set_header("Authorization", "Bearer " .. token)
"""
# The members of a token's header and claims that the contract keeps unambiguous
# (none twice): what the gateways read, whichever parses the JSON.
BEARER_CONTRACT_MEMBERS = ("alg", "iss", "sub", "exp", "nbf")
# The claims the contract holds to whole numbers, not negative, of at most this many digits
# (claims_to_verify reads them; HAProxy reads integers, Kong any JSON number).
BEARER_CONTRACT_INTEGERS = ("exp", "nbf")
BEARER_CONTRACT_DIGITS = 15

# The global post-function: drops any X-User-Id the client sent and, once the
# jwt plugin has verified a token, passes the token's `sub` claim on as X-User-Id;
# on a request no jwt plugin authenticated it also drops the identity headers
# Kong's jwt plugin would have set, so that a client can't pose as a consumer.
# haproxy.py's _user_id_from_sub() is that in HAProxy.
KNOWN_POST_FUNCTION_LUA = """
local jwt_parser = require "kong.plugins.jwt.jwt_parser"
kong.service.request.clear_header("X-User-Id")
local token = kong.ctx.shared.authenticated_jwt_token
if token then
  local jwt = jwt_parser:new(token)
  if jwt and jwt.claims.sub ~= nil then
    kong.service.request.set_header("X-User-Id", tostring(jwt.claims.sub))
  end
else
  kong.service.request.clear_header("X-Consumer-ID")
  kong.service.request.clear_header("X-Consumer-Custom-ID")
  kong.service.request.clear_header("X-Consumer-Username")
  kong.service.request.clear_header("X-Credential-Identifier")
  kong.service.request.clear_header("X-Anonymous-Consumer")
end
"""


def same_lua(code: Any, known: str) -> bool:
    return _lines(code) == _lines(known)


def _lines(code: Any) -> list[str]:
    return [line.strip() for line in str(code).splitlines() if line.strip()]
