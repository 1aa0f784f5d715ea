#!/usr/bin/env bash
# Builds the browser UI (web/): installs its npm packages exactly as locked
# (npm's cache under ~/.cache/huddle/npm, so a second run needs no network),
# type-checks it and builds it with Vite into web/dist, which the agent and the
# gateway serve (HUDDLE_WEB_DIR). Built files are never committed.
#
#   --unit   also run the front-end unit tests (vitest)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$HUDDLE_ROOT/web"

export npm_config_cache=$HUDDLE_CACHE/npm
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

stage "web: npm packages"
# Skip the install when node_modules already matches the lock file.
stamp=node_modules/.huddle-lock-sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    npm ci --prefer-offline --no-progress --loglevel=error
    echo "$want" >"$stamp"
fi

stage "web: type check (tsc)"
./node_modules/.bin/tsc --noEmit -p .

if [ "${1:-}" = "--unit" ]; then
    stage "web: unit tests (vitest)"
    ./node_modules/.bin/vitest run
fi

stage "web: build (vite)"
./node_modules/.bin/vite build --logLevel warn
stage_end
