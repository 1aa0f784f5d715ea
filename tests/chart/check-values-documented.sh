#!/usr/bin/env bash
# Checks that charts/huddle/README.md documents every value: each leaf key of values.yaml has a
# table row `| `key` | type | `default` | description |` whose type and default match
# values.yaml, and no row names a key values.yaml does not have.
#
# The leaf keys come from Helm itself (tests/chart/leaves-chart renders them from the values it
# is given), so YAML is parsed exactly as `helm install` parses it.
#
#   tests/chart/check-values-documented.sh [HELM]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
export LC_ALL=C

helm=${1:-$HUDDLE_BIN/helm-$HELM_VERSION/helm}
chart=$HUDDLE_ROOT/charts/huddle
readme=$chart/README.md

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# "<key>\t<type>\t<default JSON>", from values.yaml.
"$helm" template leaves "$HUDDLE_ROOT/tests/chart/leaves-chart" -f "$chart/values.yaml" |
    sed -n 's/^  //p' | sort >"$work/values.tsv"
[ -s "$work/values.tsv" ] || die "no leaf keys rendered from $chart/values.yaml"

# The same three columns from the README's value tables (those headed "| key | type | default |
# description |", up to the next blank line).
awk -F'|' '
    /^\| key \| type \| default \| description \|/ { table = 1; next }
    /^[[:space:]]*$/ { table = 0 }
    table && /^\| `[^`]+` \|/ {
        key = $2; type = $3; def = $4
        for (i = 5; i < NF; i++) if (def !~ /`[[:space:]]*$/) def = def "|" $i
        gsub(/^[[:space:]]*`|`[[:space:]]*$/, "", key)
        gsub(/^[[:space:]]+|[[:space:]]+$/, "", type)
        gsub(/^[[:space:]]*`|`[[:space:]]*$/, "", def)
        printf "%s\t%s\t%s\n", key, type, def
    }' "$readme" | sort >"$work/readme.tsv"

failed=0
cut -f1 "$work/readme.tsv" | uniq -d >"$work/dupes"
if [ -s "$work/dupes" ]; then
    echo "README.md documents these keys more than once:" >&2
    sed 's/^/    /' "$work/dupes" >&2
    failed=1
fi

join -t $'\t' -v1 <(cut -f1 "$work/values.tsv") <(cut -f1 "$work/readme.tsv") >"$work/undocumented"
if [ -s "$work/undocumented" ]; then
    echo "values.yaml keys missing from $readme (add a row for each):" >&2
    join -t $'\t' "$work/undocumented" "$work/values.tsv" |
        awk -F'\t' '{printf "    | `%s` | %s | `%s` | ... |\n", $1, $2, $3}' >&2
    failed=1
fi

join -t $'\t' -v1 <(cut -f1 "$work/readme.tsv") <(cut -f1 "$work/values.tsv") >"$work/stale"
if [ -s "$work/stale" ]; then
    echo "README.md rows for keys values.yaml does not have:" >&2
    sed 's/^/    /' "$work/stale" >&2
    failed=1
fi

# Rows whose type or default differ from values.yaml.
join -t $'\t' "$work/values.tsv" "$work/readme.tsv" |
    awk -F'\t' '$2 != $4 || $3 != $5 {
        printf "    %s: values.yaml has %s `%s`, README.md says %s `%s`\n", $1, $2, $3, $4, $5
    }' >"$work/differ"
if [ -s "$work/differ" ]; then
    echo "README.md rows that disagree with values.yaml:" >&2
    cat "$work/differ" >&2
    failed=1
fi

[ $failed -eq 0 ] || exit 1
echo "    all $(wc -l <"$work/values.tsv") values documented in charts/huddle/README.md"
