#!/usr/bin/env bash
# CI checks of the appliance image (board profiles, systemd units, Yocto layer,
# signed A/B updates). Runs on a fresh Debian bookworm machine: installs what
# it needs (idempotent), then runs every check and, for each check, a negative
# test that plants a defect in a temporary copy and asserts the check fails.
#
#   factory-configs  factory configs match the board profiles (gen-default-configs.py)
#   crates-drift     safe-yolo-crates.inc matches Cargo.lock (gen-crates-inc.py)
#   oelint           oelint-adv clean on every recipe of meta-safe-yolo (lint-recipes.sh)
#   units            systemd-analyze verify + security exposure <= 2.0 (check-units.sh)
#   rauc             signed verity bundles, rejections, A/B install, mark-good,
#                    rollback (rauc-test.sh; wrong CA, self-signed signer,
#                    tampered signature and payload are rejected inside it; the
#                    planted defect is a keyring that trusts a self-signed signer)
#
# Usage: scripts/ci-image-checks.sh [--no-install]
# Needs root (or sudo) for apt-get. Python tools go to a venv under
# $SAFEYOLO_TOOLS_DIR (default /var/cache/safe-yolo/image-tools) unless the
# pinned oelint-adv is already on PATH.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
img="$repo/tests/image"
OELINT_VERSION=9.11.2
tools=${SAFEYOLO_TOOLS_DIR:-/var/cache/safe-yolo/image-tools}
install=1
[ "${1:-}" = "--no-install" ] && install=0

log() { echo "ci-image-checks: $*"; }

# --- dependencies ------------------------------------------------------------
if [ "$install" = 1 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    need=()
    #   systemd         systemd-analyze (verify, security --offline)
    #   rauc            bundle, info, extract, install (Debian: 1.8)
    #   squashfs-tools  mksquashfs for bundles; openssl for the test PKI
    #   dbus            a private bus for `rauc service`; dmsetup: verity installs
    #   python3-venv    a venv for oelint-adv (PEP 668 forbids system pip)
    for pkg in systemd rauc squashfs-tools openssl dbus dmsetup python3 python3-venv; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
    done
    if [ "${#need[@]}" -gt 0 ]; then
        log "apt-get install ${need[*]}"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
fi
if [ "$(oelint-adv --version 2>/dev/null)" != "oelint-adv $OELINT_VERSION" ]; then
    if [ ! -x "$tools/venv/bin/oelint-adv" ] ||
        [ "$("$tools/venv/bin/oelint-adv" --version 2>/dev/null)" != "oelint-adv $OELINT_VERSION" ]; then
        [ "$install" = 1 ] || { log "oelint-adv $OELINT_VERSION is missing (run without --no-install)"; exit 2; }
        log "pip install oelint-adv==$OELINT_VERSION into $tools/venv"
        mkdir -p "$tools"
        python3 -m venv "$tools/venv"
        "$tools/venv/bin/pip" install -q --disable-pip-version-check "oelint-adv==$OELINT_VERSION"
    fi
    export PATH="$tools/venv/bin:$PATH"
fi

# --- checks and planted defects ----------------------------------------------
scratch=$(mktemp -d "${TMPDIR:-/tmp}/safe-yolo-image-checks.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
results=()
failed=0

# check NAME CMD...: the check must pass.
check() {
    local name=$1; shift
    local t0=$SECONDS
    if "$@" >"$scratch/$name.log" 2>&1; then
        results+=("PASS  $name ($((SECONDS - t0)) s)")
        sed 's/^/    /' "$scratch/$name.log"
    else
        results+=("FAIL  $name")
        failed=1
        sed 's/^/    /' "$scratch/$name.log" >&2
    fi
}
# planted NAME PATTERN CMD...: with a defect planted, the check must fail and
# its output must match PATTERN (so it fails for the planted reason).
planted() {
    local name=$1 pattern=$2; shift 2
    if "$@" >"$scratch/$name.log" 2>&1; then
        results+=("FAIL  $name: the check passed despite the planted defect")
        failed=1
    elif ! grep -qE "$pattern" "$scratch/$name.log"; then
        results+=("FAIL  $name: failed, but not with /$pattern/")
        failed=1
        sed 's/^/    /' "$scratch/$name.log" >&2
    else
        results+=("PASS  $name (defect caught)")
    fi
}

log "factory configs"
check factory-configs python3 "$img/gen-default-configs.py"
mkdir -p "$scratch/boards" "$scratch/configs"
cp "$repo"/board/*.toml "$scratch/boards/"
cp "$repo"/yocto/meta-safe-yolo/recipes-safe-yolo/safe-yolo-data/files/config/*.toml "$scratch/configs/"
sed -i 's/^siren = { offset = 17 }/siren = { offset = 16 }/' "$scratch/boards/rk3588.toml"
planted factory-configs:profile-changed "rk3588.toml does not match" \
    python3 "$img/gen-default-configs.py" --boards "$scratch/boards" --out "$scratch/configs"

log "crates drift"
check crates-drift python3 "$img/gen-crates-inc.py"
inc="$repo/yocto/meta-safe-yolo/recipes-safe-yolo/safe-yolo/safe-yolo-crates.inc"
victim=$(grep -m1 -o 'crate://crates.io/[^;]*' "$inc" | sed 's#crate://crates.io/##')
vname=${victim%/*}
vver=${victim#*/}
grep -v -F -e "crate://crates.io/$vname/$vver;" -e "SRC_URI[$vname-$vver.sha256sum]" "$inc" >"$scratch/missing-crate.inc"
planted crates-drift:crate-missing "missing from the .inc: $vname $vver" \
    python3 "$img/gen-crates-inc.py" --inc "$scratch/missing-crate.inc"
# Flip the first hex digit of the first checksum.
python3 - "$inc" "$scratch/bad-sum.inc" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r'sha256sum\] = "([0-9a-f])', text)
digit = "0" if m.group(1) != "0" else "1"
open(sys.argv[2], "w").write(text[: m.start(1)] + digit + text[m.end(1):])
PY
planted crates-drift:checksum-changed "checksum of .*: .inc has" \
    python3 "$img/gen-crates-inc.py" --inc "$scratch/bad-sum.inc"

log "oelint-adv"
check oelint "$img/lint-recipes.sh"
cp -r "$repo/yocto/meta-safe-yolo" "$scratch/layer"
sed -i '/^LICENSE = /d' "$scratch/layer/recipes-safe-yolo/safe-yolo/safe-yolo_0.1.0.bb"
planted oelint:license-removed "oelint\.var\.mandatoryvar\.LICENSE" "$img/lint-recipes.sh" "$scratch/layer"

log "systemd units"
check units "$img/check-units.sh"
units="$repo/yocto/meta-safe-yolo/recipes-safe-yolo/safe-yolo/files"
cp -r "$units" "$scratch/weak-units"
sed -i -e '/^CapabilityBoundingSet=/d' -e '/^ProtectSystem=/d' -e '/^SystemCallFilter=/d' \
    -e '/^RestrictAddressFamilies=/d' -e '/^PrivateTmp=/d' "$scratch/weak-units/safe-yolo.service"
planted units:weakened "safe-yolo.service: exposure [0-9.]+ is above 2" "$img/check-units.sh" "$scratch/weak-units"
cp -r "$units" "$scratch/broken-units"
sed -i 's/^Type=notify$/Type=notfy/' "$scratch/broken-units/safe-yolo.service"
planted units:invalid "systemd-analyze verify" "$img/check-units.sh" "$scratch/broken-units"

log "RAUC bundles and A/B updates"
check rauc "$img/rauc-test.sh"
planted rauc:keyring-trusts-self-signed "self-signed signer: was accepted" \
    env SAFEYOLO_RAUC_PLANT=trust-selfsigned "$img/rauc-test.sh"

echo
log "summary"
printf '  %s\n' "${results[@]}"
if [ "$failed" = 0 ]; then log "all checks passed"; else log "FAILED"; fi
exit "$failed"
