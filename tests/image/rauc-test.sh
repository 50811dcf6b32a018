#!/usr/bin/env bash
# RAUC test with Debian's rauc (1.8): signed verity bundles and A/B updates
# into file-backed slots, without root file systems or a bootloader.
#
#  1. A throw-away PKI is made at test time (nothing is committed): a test CA,
#     a signer certificate with the codeSigning EKU, a second "wrong" CA, a
#     self-signed signer and a signer without the codeSigning EKU.
#  2. A verity bundle is built and verified; a wrong CA, a self-signed signer,
#     a signer without codeSigning, a corrupted signature and a corrupted
#     payload (`rauc extract`) must all be rejected.
#  3. The bundle is installed by a real `rauc service` (private D-Bus) into
#     file-backed slots A/B, with tests/image/custom-bootloader.sh standing in
#     for U-Boot's boot counter. The new slot boots, is marked good (what
#     rauc-mark-good.service does after boot-complete.target), and reports its
#     version; then a second update whose health check never passes burns its
#     boot attempts and the box falls back to the good slot.
#  4. The layer's production system.conf is loaded by RAUC 1.8 (its keys must
#     stay 1.8-compatible).
#
# Usage: tests/image/rauc-test.sh [--keep]    (needs rauc, squashfs-tools,
# openssl, dbus-daemon, python3; scripts/ci-image-checks.sh installs them)
# Env: SAFEYOLO_RAUC_PLANT=trust-selfsigned  plant a defect (the keyring also
#      trusts the self-signed signer): the test must then fail; the CI runs
#      this as the check's negative test.
#      SAFEYOLO_RAUC_STATUS_SAMPLE=FILE  also write the `rauc status` JSON of
#      the updated box there (the board crate's parser test uses such a sample).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bootloader="$here/custom-bootloader.sh"
prod_conf="$repo/yocto/meta-safe-yolo/recipes-core/rauc/files/system.conf"
keep=0
[ "${1:-}" = "--keep" ] && keep=1

work=$(mktemp -d "${TMPDIR:-/tmp}/safe-yolo-rauc.XXXXXX")
service_pid=""
dbus_pid=""
stop_service() {
    if [ -n "$service_pid" ]; then
        kill "$service_pid" 2>/dev/null || true
        wait "$service_pid" 2>/dev/null || true
        service_pid=""
    fi
}
cleanup() {
    stop_service
    [ -n "$dbus_pid" ] && kill "$dbus_pid" 2>/dev/null || true
    if [ "$keep" = 1 ]; then echo "rauc-test: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

say() { echo "rauc-test: $*"; }
fail() { echo "rauc-test: FAIL: $*" >&2; [ -f "$work/last.log" ] && sed 's/^/    /' "$work/last.log" >&2; exit 1; }
# pass DESCRIPTION CMD...: the command must succeed.
pass() {
    local what=$1; shift
    "$@" >"$work/last.log" 2>&1 || fail "$what"
    say "ok   $what"
}
# reject DESCRIPTION PATTERN CMD...: the command must fail, saying PATTERN.
reject() {
    local what=$1 pattern=$2; shift 2
    if "$@" >"$work/last.log" 2>&1; then fail "$what: was accepted"; fi
    grep -qiE "$pattern" "$work/last.log" || fail "$what: failed, but not with /$pattern/"
    say "ok   $what (rejected)"
}

for tool in rauc mksquashfs openssl dbus-daemon python3; do
    command -v "$tool" >/dev/null || { echo "rauc-test: $tool is missing (run scripts/ci-image-checks.sh, which installs it)" >&2; exit 2; }
done
cd "$work"

# --- 1. PKI, generated now, never committed ---------------------------------
ca() { # ca NAME CN
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$1.key.pem" -out "$1.cert.pem" -days 2 -subj "/O=SAFE-YOLO CI/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}
leaf() { # leaf NAME CA EKU(yes|no)
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$1.key.pem" -out "$1.csr" -subj "/O=SAFE-YOLO CI/CN=$1" 2>/dev/null
    {
        echo "basicConstraints=CA:FALSE"
        echo "keyUsage=critical,digitalSignature"
        [ "$3" = yes ] && echo "extendedKeyUsage=critical,codeSigning"
    } >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$2.cert.pem" -CAkey "$2.key.pem" -CAcreateserial \
        -out "$1.cert.pem" -days 2 -extfile "$1.ext" 2>/dev/null
}
ca ca "SAFE-YOLO test CA"
ca wrong-ca "Some other CA"
leaf signer ca yes
leaf noeku-signer ca no
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout selfsigned.key.pem -out selfsigned.cert.pem -days 2 -subj "/CN=self-signed signer" \
    -addext "extendedKeyUsage=codeSigning" 2>/dev/null
keyring=ca.cert.pem
if [ "${SAFEYOLO_RAUC_PLANT:-}" = trust-selfsigned ]; then
    cat ca.cert.pem selfsigned.cert.pem >planted-keyring.pem
    keyring=planted-keyring.pem
    say "PLANTED DEFECT: the keyring also trusts the self-signed signer"
fi
say "ok   test PKI generated"

# --- 2. system.conf for file-backed slots --------------------------------------
mkdir -p mnt
truncate -s 1M slot-a.img slot-b.img
printf 'SAFE-YOLO factory image, slot A\n' | dd of=slot-a.img conv=notrunc status=none
cp slot-a.img slot-b.img
export SAFEYOLO_BOOTENV="$work/bootenv"
# Installing a verity bundle needs device-mapper (dm-verity). Where the kernel
# has none (some CI containers and microVMs), the install steps use
# plain-format bundles of the same content, signed by the same CA: the slot,
# boot-counting and mark-good logic under test is the same. The verity
# bundles are still built, verified and rejected when tampered above.
install_format=verity
bundle_formats=-plain
if ! dmsetup version >/dev/null 2>&1; then
    install_format=plain
    bundle_formats="plain verity"
fi
cat >system.conf <<EOF
[system]
compatible=safe-yolo-ci
bootloader=custom
bundle-formats=$bundle_formats
statusfile=$work/status.raucs
mountprefix=$work/mnt

[keyring]
path=$work/$keyring
check-purpose=codesign

[handlers]
bootloader-custom-backend=$bootloader

[slot.rootfs.0]
device=$work/slot-a.img
type=raw
bootname=A

[slot.rootfs.1]
device=$work/slot-b.img
type=raw
bootname=B
EOF

sed '/^\[keyring\]/,/^$/d' system.conf >build.conf

# --- 3. bundles ----------------------------------------------------------------
make_bundle() { # make_bundle OUT VERSION SIGNER [FORMAT]
    local content="content-$2-$3" format=${4:-verity}
    rm -rf "$content" "$1"
    mkdir "$content"
    # 256 KiB image: a recognisable header, then random bytes (squashfs
    # compresses filler away, and bundles of 4 KiB or less fail to build).
    { printf 'SAFE-YOLO rootfs %s\n' "$2"; head -c 262144 /dev/urandom; } | head -c 262144 >"$content/rootfs.img"
    cat >"$content/manifest.raucm" <<EOF
[update]
compatible=safe-yolo-ci
version=$2
description=SAFE-YOLO CI bundle

[bundle]
format=$format

[image.rootfs]
filename=rootfs.img
EOF
    # Built with a config without keyring: `rauc bundle` would otherwise refuse
    # to write the bundles that the checks below must reject.
    rauc bundle --conf=build.conf --cert="$3.cert.pem" --key="$3.key.pem" "$content" "$1"
}
pass "build a verity bundle signed by the test CA" make_bundle good.raucb 1.0.0 signer
pass "verify it against the test CA" rauc info --conf=system.conf good.raucb
grep -q "Verified" "$work/last.log" || fail "rauc info did not report a verified signature"
grep -q "1.0.0" "$work/last.log" || fail "rauc info did not show the bundle version"

reject "bundle checked against the wrong CA" "signature verification failed|unable to get local issuer|certificate verify" \
    rauc info --conf=system.conf --keyring=wrong-ca.cert.pem good.raucb
pass "build a bundle signed by a self-signed certificate" make_bundle selfsigned.raucb 1.0.0 selfsigned
reject "self-signed signer" "signature verification failed|self.signed|certificate verify" \
    rauc info --conf=system.conf selfsigned.raucb
pass "build a bundle signed by a certificate without codeSigning" make_bundle noeku.raucb 1.0.0 noeku-signer
reject "signer without the codeSigning EKU" "signature verification failed|purpose|certificate verify" \
    rauc info --conf=system.conf noeku.raucb

size=$(stat -c %s good.raucb)
flip() { # flip IN OUT OFFSET: copy IN to OUT with the byte at OFFSET inverted
    cp "$1" "$2"
    python3 - "$2" "$3" <<'PY'
import sys
path, off = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    f.seek(off)
    b = f.read(1)
    f.seek(off)
    f.write(bytes([b[0] ^ 0xFF]))
PY
}
flip good.raucb bad-signature.raucb $((size - 200))
reject "corrupted signature" "signature|CMS|verif|invalid" rauc info --conf=system.conf bad-signature.raucb
flip good.raucb bad-payload.raucb 2048
reject "corrupted payload (rauc extract)" "corrupt|verity|hash|failed" \
    rauc extract --conf=system.conf bad-payload.raucb "$work/extract-bad"
pass "extract the intact bundle" rauc extract --conf=system.conf good.raucb "$work/extract-good"
cmp -s extract-good/rootfs.img content-1.0.0-signer/rootfs.img || fail "extracted image differs from the input"

# --- 4. install into A/B with a real rauc service ----------------------------
start_service() { # start_service BOOTED_SLOT
    stop_service
    rauc service --conf=system.conf --override-boot-slot="$1" >>"$work/service.log" 2>&1 &
    service_pid=$!
    for _ in $(seq 1 100); do
        # (rauc aborts with SIGTRAP while the service is not up yet: keep that quiet.)
        (rauc status --conf=system.conf >/dev/null 2>&1) 2>/dev/null && return 0
        kill -0 "$service_pid" 2>/dev/null || break
        sleep 0.1
    done
    cp "$work/service.log" "$work/last.log"
    fail "rauc service did not come up"
}
booted=""
boot() { # one power-on: the boot script picks a slot ($booted); RAUC runs in it
    stop_service
    booted=$("$bootloader" boot) || fail "no bootable slot left"
    start_service "$booted"
}
json() { # json EXPR: evaluate EXPR on `rauc status --detailed` JSON (as `s`)
    rauc status --conf=system.conf --detailed --output-format=json 2>/dev/null >"$work/status.json"
    python3 - "$work/status.json" "$1" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
slots = {k: v for d in s["slots"] for k, v in d.items()}
print(eval(sys.argv[2], {"s": s, "slots": slots}))
PY
}

cat >dbus.conf <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$work/dbus.sock</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
EOF
dbus-daemon --config-file="$work/dbus.conf" --nofork --nopidfile >"$work/dbus.log" 2>&1 &
dbus_pid=$!
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$work/dbus.sock"
for _ in $(seq 1 50); do [ -S "$work/dbus.sock" ] && break; sleep 0.1; done

if [ "$install_format" = plain ]; then
    say "note: no device-mapper on this machine: installing plain-format bundles (verity bundles were verified above)"
    pass "build the install bundle 1.0.0 ($install_format)" make_bundle install.raucb 1.0.0 signer plain
else
    cp good.raucb install.raucb
fi

boot; [ "$booted" = A ] || fail "factory boot did not start slot A"
pass "mark the factory slot good" rauc status --conf=system.conf mark-good
pass "install bundle 1.0.0 while running A" rauc install --conf=system.conf install.raucb
cmp -s -n 262144 slot-b.img content-1.0.0-signer/rootfs.img || fail "slot B does not hold the new image"
cmp -s slot-a.img <(printf 'SAFE-YOLO factory image, slot A\n'; head -c $((1048576 - 32)) /dev/zero) ||
    fail "the running slot A was modified"
[ "$("$bootloader" get-primary)" = B ] || fail "slot B is not primary after the install"
say "ok   slot B written and made primary; slot A untouched"

boot; [ "$booted" = B ] || fail "the reboot did not start slot B"
# The health chain: safe-yolo READY -> safe-yolo-health -> boot-complete.target -> mark-good.
pass "health passed: mark slot B good" rauc status --conf=system.conf mark-good
[ "$(json 's["booted"]')" = B ] || fail "rauc status does not report B as booted"
[ "$(json 'slots["rootfs.1"]["boot_status"]')" = good ] || fail "slot B is not good"
[ "$(json 'slots["rootfs.1"]["slot_status"]["bundle"]["version"]')" = 1.0.0 ] || fail "slot B does not report version 1.0.0"
say "ok   slot B booted, marked good, reports version 1.0.0"
if [ -n "${SAFEYOLO_RAUC_STATUS_SAMPLE:-}" ]; then
    rauc status --conf=system.conf --detailed --output-format=json-pretty >"$SAFEYOLO_RAUC_STATUS_SAMPLE" 2>/dev/null
fi

# Rollback: an update whose health check never passes.
pass "build bundle 2.0.0" make_bundle v2.raucb 2.0.0 signer "$install_format"
pass "install bundle 2.0.0 while running B" rauc install --conf=system.conf v2.raucb
[ "$("$bootloader" get-primary)" = A ] || fail "slot A is not primary after the second install"
seq=""
for _ in 1 2 3 4; do
    boot
    seq="$seq$booted"
    # Health fails on A: nothing runs mark-good, the watchdog reboots the box.
done
[ "$seq" = AAAB ] || fail "boot sequence after a failing update was $seq, expected AAAB"
[ "$(json 's["booted"]')" = B ] || fail "rauc status does not report B after the rollback"
[ "$(json 'slots["rootfs.0"]["boot_status"]')" = bad ] || fail "the failed slot A is not reported bad"
[ "$(json 'slots["rootfs.1"]["boot_status"]')" = good ] || fail "the fallback slot B is not good"
say "ok   failed update: 3 attempts on A, then back to B (version $(json 'slots["rootfs.1"]["slot_status"]["bundle"]["version"]'))"
stop_service

# --- 5. the production system.conf loads in RAUC 1.8 -------------------------
if [ -f "$prod_conf" ]; then
    sed -e "s#^path=.*#path=$work/ca.cert.pem#" -e "s#^data-directory=.*#data-directory=$work/data#" \
        -e "s#@MACHINE@#ci#" -e "s#@BOOTLOADER@#uboot#" "$prod_conf" >prod-system.conf
    pass "production system.conf loads in RAUC 1.8 and verifies the bundle" \
        rauc info --conf=prod-system.conf --keyring="$work/ca.cert.pem" good.raucb
    if [ "$install_format" = plain ]; then
        reject "production system.conf refuses plain bundles" "not allowed" \
            rauc info --conf=prod-system.conf install.raucb
    fi
fi
say "PASS"
