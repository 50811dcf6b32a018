#!/usr/bin/env bash
# Prints the line coverage of each crate from the profiles the last instrumented
# test run left (scripts/test.sh), the whole workspace's, and the pure core's
# (domain, rules, outputs, config, store, alarms: at least 85% is the bar, and the
# run fails below it). Counts the production code under appliance/<crate>/src
# (the unit-test modules in those files included); integration tests, benches
# and examples are not counted. The JSON summary is kept in
# $CARGO_TARGET_DIR/coverage.json.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/build-env.sh
source scripts/build-env.sh
json="$CARGO_TARGET_DIR/coverage.json"
$SAFEYOLO_COVERAGE_CMD report --json --summary-only --output-path "$json"
python3 - "$json" "$PWD" <<'PY'
import json, sys, collections
data = json.load(open(sys.argv[1]))
root = sys.argv[2].rstrip("/") + "/appliance/"
crates = collections.defaultdict(lambda: [0, 0])
for f in data["data"][0]["files"]:
    name = f["filename"]
    if not name.startswith(root):
        continue
    crate, _, rest = name[len(root):].partition("/")
    if not rest.startswith("src/"):
        continue
    lines = f["summary"]["lines"]
    crates[crate][0] += lines["count"]
    crates[crate][1] += lines["covered"]
core = ["domain", "rules", "outputs", "config", "store", "alarms"]
def pct(c, n):
    return 100.0 * c / n if n else 100.0
print("coverage: lines covered by the tests, per crate (appliance/<crate>/src)")
print(f"  {'crate':<10} {'lines':>7} {'covered':>8} {'%':>7}")
for name in sorted(crates):
    n, c = crates[name]
    mark = "  (core)" if name in core else ""
    print(f"  {name:<10} {n:>7} {c:>8} {pct(c, n):>6.1f}%{mark}")
tn = sum(v[0] for v in crates.values()); tc = sum(v[1] for v in crates.values())
cn = sum(crates[k][0] for k in core); cc = sum(crates[k][1] for k in core)
print(f"  {'workspace':<10} {tn:>7} {tc:>8} {pct(tc, tn):>6.1f}%")
print(f"  {'core':<10} {cn:>7} {cc:>8} {pct(cc, cn):>6.1f}%  (domain, rules, outputs, config, store, alarms; bar 85%)")
sys.exit(0 if pct(cc, cn) >= 85.0 else 1)
PY
