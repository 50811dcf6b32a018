#!/usr/bin/env bash
# Prints the line coverage of each crate from the profiles the last instrumented
# test run left (scripts/test.sh), the whole workspace's, and the pure core's
# (domain, rules, outputs, config, store, alarms: at least 85% each is the bar,
# and the run fails below it). Counts the production code under appliance/<crate>/src
# (the unit-test modules in those files included); integration tests, benches
# and examples are not counted. The JSON summary is kept in
# $CARGO_TARGET_DIR/coverage.json.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/build-env.sh
source scripts/build-env.sh
json="$CARGO_TARGET_DIR/coverage.json"
# The objects are exactly the executables of this build (test binaries and the
# daemon the whole-daemon tests run), listed by cargo: a target directory that
# builds again and again keeps older binaries of the same crates beside them,
# and their stale coverage maps would count this run's lines as missed.
mapfile -t objects < <(cargo test --workspace --all-features --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
seen = set()
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    exe = m.get("executable") if m.get("reason") == "compiler-artifact" else None
    if exe and exe not in seen:
        seen.add(exe)
        print(exe)
')
[ "${#objects[@]}" -gt 0 ] || { echo "coverage-report: no test executables found" >&2; exit 1; }
shopt -s nullglob
profiles=("$CARGO_TARGET_DIR"/*.profraw)
[ "${#profiles[@]}" -gt 0 ] || { echo "coverage-report: no profiles in $CARGO_TARGET_DIR (run scripts/test.sh)" >&2; exit 1; }
# A process killed while it writes its profile at exit (a detector child the daemon
# SIGKILLs after its grace period, under load) leaves a truncated file: it is
# skipped with a warning, not a reason to fail the run (`--failure-mode=all`: only
# when no profile merges).
"$LLVM_PROFDATA" merge -sparse --failure-mode=all "${profiles[@]}" -o "$CARGO_TARGET_DIR/coverage.profdata"
args=()
for o in "${objects[@]}"; do args+=(-object "$o"); done
"$LLVM_COV" export -summary-only -instr-profile "$CARGO_TARGET_DIR/coverage.profdata" \
    "${args[@]}" >"$json" 2>"$CARGO_TARGET_DIR/coverage.log" || {
    tail -20 "$CARGO_TARGET_DIR/coverage.log" >&2
    exit 1
}
python3 - "$json" "$PWD" <<'PY'
import json, sys, collections
data = json.load(open(sys.argv[1]))
# By the path inside the workspace: crates a reused build did not recompile keep
# the source paths of the checkout that compiled them.
crates = collections.defaultdict(lambda: [0, 0])
for f in data["data"][0]["files"]:
    name = f["filename"]
    if "/appliance/" not in name:
        continue
    crate, _, rest = name.rpartition("/appliance/")[2].partition("/")
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
print(f"  {'core':<10} {cn:>7} {cc:>8} {pct(cc, cn):>6.1f}%  (domain, rules, outputs, config, store, alarms; bar 85% each)")
low = [k for k in core if pct(crates[k][1], crates[k][0]) < 85.0]
if low or pct(cc, cn) < 85.0:
    print(f"coverage: below the 85% bar: {', '.join(low) or 'the core as a whole'}", file=sys.stderr)
    sys.exit(1)
PY
