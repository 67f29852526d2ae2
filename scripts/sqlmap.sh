#!/usr/bin/env bash
# SQL injection scan (SECURITY.md T-SQLI-01) with Debian's sqlmap against a local server.
#
# Starts the server on a fresh SQLite database (RATE_LIMITS=off — sqlmap sends thousands of
# requests — on a random loopback port), creates two users, a chat and a message, then runs sqlmap
# in batch mode (--level=3 --risk=2) against:
#   POST /auth/login          JSON body, injection marks in username and password
#   GET  /users?username=     query parameter
#   GET  /users/{id}          path parameter
#   GET  /messages/{chatId}?before=   path and query parameter
#   POST /messages            JSON body (chatId, encryptedContent, type, clientMessageId)
# the last four with a bearer token. Loopback only. Prints a summary; exits 1 if sqlmap reports
# any injectable parameter (or cannot run), 0 otherwise.
#
# Usage: scripts/sqlmap.sh            (installs sqlmap with apt-get when missing; needs root)
#   SQLMAP_OUT=dir        keep sqlmap's output there (default: a new temp dir, kept and printed)
#   SQLMAP_LEVEL / SQLMAP_RISK   override 3 / 2
#   SQLMAP_DATABASE_URL=postgres://…   scan a PostgreSQL-backed server instead (with --dbms=PostgreSQL)
set -uo pipefail
cd "$(dirname "$0")/.."

LEVEL="${SQLMAP_LEVEL:-3}"
RISK="${SQLMAP_RISK:-2}"
OUT="${SQLMAP_OUT:-$(mktemp -d /tmp/safechat-sqlmap.XXXXXX)}"
mkdir -p "$OUT"
WORK="$(mktemp -d /tmp/safechat-sqlmap-srv.XXXXXX)"

if ! command -v sqlmap >/dev/null 2>&1; then
  echo "sqlmap not found: installing the Debian package"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqlmap >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqlmap >/dev/null
  } || { echo "cannot install sqlmap" >&2; exit 1; }
fi

PORT="$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")"
BASE="http://127.0.0.1:$PORT"
if [ -n "${SQLMAP_DATABASE_URL:-}" ]; then
  DB_URL="$SQLMAP_DATABASE_URL"
  DBMS="PostgreSQL"
else
  DB_URL="sqlite:$WORK/safechat.db"
  DBMS="SQLite"
fi

SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== server on $BASE ($DBMS), output in $OUT"
HOST=127.0.0.1 PORT="$PORT" DATABASE_URL="$DB_URL" DATA_DIR="$WORK" RATE_LIMITS=off LOG_LEVEL=warn \
  NODE_ENV=development node --import tsx src/main.ts >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  curl -fsS "$BASE/health" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "$BASE/health" >/dev/null || { echo "server did not start:" >&2; cat "$OUT/server.log" >&2; exit 1; }

# ---- fixtures: two users, a chat, a message ----
json() { node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const v=JSON.parse(s);console.log($1)})"; }
PW='violet-Harbor-42-lantern'
SUFFIX="$(date +%s)"
ALICE="sqlmap_alice_$SUFFIX"
BOB="sqlmap_bob_$SUFFIX"
REG_A="$(curl -fsS -XPOST "$BASE/auth/register" -H 'content-type: application/json' -d "{\"username\":\"$ALICE\",\"password\":\"$PW\"}")" || exit 1
REG_B="$(curl -fsS -XPOST "$BASE/auth/register" -H 'content-type: application/json' -d "{\"username\":\"$BOB\",\"password\":\"$PW\"}")" || exit 1
TOKEN="$(echo "$REG_A" | json v.accessToken)"
BOB_ID="$(echo "$REG_B" | json v.user.id)"
CHAT_ID="$(curl -fsS -XPOST "$BASE/chats" -H 'content-type: application/json' -H "authorization: Bearer $TOKEN" -d "{\"participantIds\":[\"$BOB_ID\"]}" | json v.id)" || exit 1
CT="$(node -e "console.log(require('crypto').randomBytes(48).toString('base64'))")"
IV="$(node -e "console.log(require('crypto').randomBytes(16).toString('base64'))")"
MAC="$(node -e "console.log(require('crypto').randomBytes(32).toString('base64'))")"
MSG_ID="$(curl -fsS -XPOST "$BASE/messages" -H 'content-type: application/json' -H "authorization: Bearer $TOKEN" \
  -d "{\"chatId\":\"$CHAT_ID\",\"encryptedContent\":\"$CT\",\"iv\":\"$IV\",\"mac\":\"$MAC\",\"type\":\"text\"}" | json v.id)" || exit 1
echo "== fixtures: users $ALICE, $BOB; chat $CHAT_ID; message $MSG_ID"

# ---- sqlmap ----
COMMON=(--batch --level="$LEVEL" --risk="$RISK" --dbms="$DBMS" --flush-session --disable-coloring
  --time-sec=2 --timeout=10 --retries=1 --ignore-code=400,401,404,409,413,415
  --output-dir="$OUT" -H 'Content-Type: application/json')
AUTH=(-H "Authorization: Bearer $TOKEN")

status=0
declare -a SUMMARY=()
scan() {
  local name="$1" marks="$2"; shift 2
  local log="$OUT/$name.txt"
  echo "== sqlmap: $name ($marks)"
  sqlmap "${COMMON[@]}" "$@" >"$log" 2>&1
  local rc=$?
  local tested clean found
  tested="$(grep -oE "(testing if |heuristic \(basic\) test shows that )?(\(custom\) )?(GET|POST|URI) parameter '[^']+'" "$log" | grep -oE "(GET|POST|URI) parameter '[^']+'" | sort -u | paste -sd ',' - | sed 's/,/, /g')"
  clean="$(grep -E "do not appear to be injectable|does not seem to be injectable" "$log" | sed -E 's/^\[[0-9:]+\] //' | sort -u)"
  if grep -qE "sqlmap identified the following injection point|is vulnerable\. Do you want to keep testing" "$log"; then
    found=yes
  else
    found=no
  fi
  if [ "$found" = yes ]; then
    status=1
    SUMMARY+=("$name: INJECTABLE — see $log")
  elif [ -z "$clean" ] || [ "$rc" -ne 0 ]; then
    status=1
    SUMMARY+=("$name: sqlmap did not finish cleanly (exit $rc) — see $log")
  else
    SUMMARY+=("$name: nothing injectable; tested: ${tested:-?} ($marks)")
  fi
  echo "   parameters: ${tested:-none found}"
  while IFS= read -r line; do [ -n "$line" ] && echo "   $line"; done <<<"$clean"
}

# --code: the HTTP status that means "the query was true" (the bodies carry fresh tokens and ids, so
# page comparison alone is noisy): a login that works, a user found, a page served. A send is 201
# the first time and 200 for a retried clientMessageId, so it is left to page comparison.
scan login "#1 = username, #2 = password" --code=200 -u "$BASE/auth/login" --data "{\"username\":\"$ALICE*\",\"password\":\"$PW*\"}"
scan users-by-name "username" --code=200 "${AUTH[@]}" -u "$BASE/users?username=$BOB" -p username
scan users-by-id "#1 = {id}" --code=200 "${AUTH[@]}" -u "$BASE/users/$BOB_ID*"
scan messages-page "#1 = {chatId}, #2 = before" --code=200 "${AUTH[@]}" -u "$BASE/messages/$CHAT_ID*?before=$MSG_ID*"
scan messages-send "#1 = chatId, #2 = encryptedContent, #3 = type, #4 = clientMessageId" "${AUTH[@]}" -u "$BASE/messages" \
  --data "{\"chatId\":\"$CHAT_ID*\",\"encryptedContent\":\"$CT*\",\"iv\":\"$IV\",\"mac\":\"$MAC\",\"type\":\"text*\",\"clientMessageId\":\"sqlmap-1*\"}"

# The server must have survived the scan.
curl -fsS "$BASE/health" >/dev/null || { SUMMARY+=("server: not healthy after the scan"); status=1; }
if grep -qiE '"level":(50|60)' "$OUT/server.log"; then
  SUMMARY+=("server: logged errors during the scan — see $OUT/server.log")
  status=1
fi

echo
echo "== summary ($(sqlmap --version 2>/dev/null | head -1 | awk '{print $1}'), --level=$LEVEL --risk=$RISK, --dbms=$DBMS)"
for line in "${SUMMARY[@]}"; do echo "  $line"; done
echo "  output: $OUT"
if [ "$status" -eq 0 ]; then echo "RESULT: no injectable parameter found"; else echo "RESULT: FAILED"; fi
exit "$status"
