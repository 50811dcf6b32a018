#!/bin/bash
# Functions are called through wait_for; CAMERA_ID and the others come from
# /etc/vmtest.env (written by tests/vm/systemd.sh).
# shellcheck disable=SC2317,SC2153
# The guest side of the systemd VM test (tests/vm/systemd.sh), run by
# vmtest.service under systemd as PID 1. The appliance's own units run as
# shipped (safe-yolo.service, safe-yolo-health.service,
# safe-yolo-data-init.service, the gpio udev rule); this script only watches
# them and pokes the box as a technician would:
#   - safe-yolo.service active/running: READY through sd_notify (Type=notify),
#     inside its sandbox (user safe-yolo, seccomp, no new privileges, only
#     CAP_NET_BIND_SERVICE), "NOT GUARDING", healthy line low;
#   - the one-time setup token, read from the journal, to the host, which
#     sets the box up and adds the vivid camera through the HTTPS API; the
#     camera opens through V4L2 (DeviceAllow), the healthy line goes high;
#   - a door_open rule (from the host) drives the relay line when the door
#     contact (gpio-sim) opens;
#   - the boot health check (safe-yolo-health.service) passed and
#     boot-complete.target was reached;
#   - a stall injected with the test-only fault feature
#     (SAFEYOLO_FAULT_STALL_DETECT_AFTER=0, a runtime drop-in) drops the
#     healthy line, stops the watchdog pings and systemd restarts the daemon
#     (WatchdogSec); the health check run meanwhile fails; the daemon comes
#     back with the camera, the healthy line high, and the health check passes;
#   - SIGKILL of the daemon: healthy drops, systemd restarts it (Restart=);
#   - the journal has no seccomp kill, no SIGSYS, no permission error;
#   - a clean reboot: the daemon comes back guarding with the saved camera,
#     data-init changes nothing, the event and the certificate are kept, the
#     boot health check passes again.
# Results are VMTEST lines on ttyS0; the journal follows between markers.
# No `set -e`: a failed check is recorded and the run goes on to the end,
# so that the journal is always dumped and the VM powered off.
set -uo pipefail
# shellcheck disable=SC1091
. /etc/vmtest.env

CON=/dev/ttyS0
say() { printf '%s\n' "$*" >"$CON"; }
FAILS=0
pass() { say "VMTEST PASS $*"; }
fail() { say "VMTEST FAIL $*"; FAILS=$((FAILS + 1)); }
info() { say "VMTEST INFO $*"; }
step() { say "VMTEST STEP $* end"; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }
uptime_cs() { awk '{ printf "%d", $1 * 100 }' /proc/uptime; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
UNIT=safe-yolo.service
HEALTH=safe-yolo-health.service

finish() {
    # A mistake in this script (a function called before it is defined, a
    # typo) must not pass silently.
    if journalctl -q -b -u vmtest.service -o cat | grep -q 'command not found\|syntax error'; then
        fail "the guest script itself failed: $(journalctl -q -b -u vmtest.service -o cat | grep -m2 'command not found\|syntax error' | tr '\n' ' ')"
    fi
    info "at the end: $(find /dev/v4l/by-path -type l -printf "%f -> %l " 2>&1)"
    say "VMTEST-JOURNAL-BEGIN"
    journalctl -b --no-pager -o short-monotonic >"$CON" 2>&1
    say "VMTEST-JOURNAL-END"
    if [ "$BOOT_N" -eq 1 ] && [ "$FAILS" -eq 0 ]; then
        # The first boot passed: a clean reboot (the daemon stopped by
        # systemd), then the second boot's checks.
        : >/var/lib/vmtest/boot1-passed
        sync
        say "VMTEST BOOT1 PASS: rebooting"
        systemctl reboot
        exit 0
    fi
    if [ "$FAILS" -eq 0 ]; then say "VMTEST RESULT PASS"; else say "VMTEST RESULT FAIL ($FAILS)"; fi
    sync
    systemctl poweroff --force --force
    exit 0
}

# wait_for SECONDS COMMAND...: polls until COMMAND succeeds, bounded by the
# guest uptime and the deadline the host set.
wait_for() {
    local now end
    now=$(uptime_cs)
    end=$(( now + $1 * 100 )); shift
    [ "$end" -gt $(( DEADLINE_UPTIME_S * 100 )) ] && end=$(( DEADLINE_UPTIME_S * 100 ))
    [ "$now" -lt "$end" ] || { info "deadline reached"; return 1; }
    while :; do
        "$@" && return 0
        [ "$(uptime_cs)" -lt "$end" ] || return 1
        sleep 0.5
    done
}

# The daemon's journal this boot, one line per entry: the message, then its
# structured fields (tracing-journald's F_ prefix dropped) as key=value.
dlog() {
    journalctl -q -b -u "$UNIT" -o json --no-pager 2>/dev/null | jq -r '
        [.MESSAGE // "" | if type == "array" then implode else . end]
        + [to_entries[] | select(.key | startswith("F_")) | "\(.key[2:] | ascii_downcase)=\(.value)"]
        | join(" ")' 2>/dev/null
}
dlog_has() { dlog | grep -q -- "$1"; }
dlog_count() { dlog | grep -c -- "$1"; }
prop() { systemctl show -p "$2" --value "$1"; }
state() { echo "$(prop "$UNIT" ActiveState)/$(prop "$UNIT" SubState)"; }
is_running() { [ "$(state)" = active/running ]; }

# --- gpio-sim lines (set up by vmtest-hw.service) ----------------------------
s=/sys/kernel/config/gpio-sim/sim0
CHIP="$(cat "$s/bank0/chip_name" 2>/dev/null)"
DEV="$(cat "$s/dev_name" 2>/dev/null)"
SIM="/sys/devices/platform/$DEV/$CHIP"
line() { cat "$SIM/sim_gpio$1/value"; }
is_high() { [ "$(line "$1")" = 1 ]; }
is_low() { [ "$(line "$1")" = 0 ]; }
# Boots counted on the root file system (harness state, not /data): the
# test reboots once, after a passing first boot; any other reboot fails.
mkdir -p /var/lib/vmtest
BOOT_N=$(( $(cat /var/lib/vmtest/boots 2>/dev/null || echo 0) + 1 ))
echo "$BOOT_N" >/var/lib/vmtest/boots
sync
say "VMTEST BOOTED uptime=$(uptime_s) systemd=$(systemctl --version | head -n1 | cut -d' ' -f2) boot=$BOOT_N"
if [ "$BOOT_N" -gt 1 ] && { [ "$BOOT_N" -gt 2 ] || [ ! -e /var/lib/vmtest/boot1-passed ]; }; then
    fail "unexpected reboot (boot $BOOT_N): $(journalctl -q -b -1 -p warning -o cat 2>/dev/null | tail -n 5 | tr '\n' ' ')"
    BOOT_N=3
    finish
fi
if [ "$(prop vmtest-hw.service Result)" != success ] || [ -z "$CHIP" ] || [ ! -d "$SIM" ]; then
    fail "the VM's hardware was not set up (vmtest-hw.service: $(prop vmtest-hw.service Result)): $(journalctl -q -b -u vmtest-hw.service -o cat | tail -n 5 | tr '\n' ' ')"
    finish
fi
info "gpio-sim chip=$CHIP device=$DEV ($(stat -c '%G %a' "/dev/$CHIP"))"
if [ "$(stat -c %G "/dev/$CHIP")" = gpio ]; then
    pass "udev rule 90-safe-yolo-gpio.rules: /dev/$CHIP in group gpio"
else
    fail "/dev/$CHIP is not in group gpio: $(stat -c '%U:%G %a' "/dev/$CHIP")"
fi

# --- the host's channel ----------------------------------------------------------
mkdir -p /run/vmtest
: >/run/vmtest/host.msgs
stty -F /dev/ttyS1 raw -echo || fail "cannot set up ttyS1 (the host's channel)"
cat /dev/ttyS1 >>/run/vmtest/host.msgs &
host_said() { grep -q "^HOST $1 .*end" /run/vmtest/host.msgs; }
host_said_or_abort() { host_said "$1" || host_said abort; }
wait_host() {
    if wait_for "$2" host_said_or_abort "$1" && host_said "$1"; then
        return 0
    fi
    if host_said abort; then
        fail "the host aborted: $(grep -m1 '^HOST abort' /run/vmtest/host.msgs | sed 's/^HOST abort //; s/ end$//')"
    else
        fail "no \"HOST $1\" from the host within $2 s"
    fi
    finish
}

# --- checks both boots run ------------------------------------------------------
# The boot health check (safe-yolo-health.service, RequiredBy=boot-complete.target,
# pulled in by the rauc-mark-good stand-in) sleeps its settle time (60 s) after READY.
health_done() { case "$(prop "$HEALTH" ActiveState)" in active | failed) return 0 ;; *) return 1 ;; esac; }
boot_health_check() {
if wait_for 180 health_done && [ "$(prop "$HEALTH" ActiveState)/$(prop "$HEALTH" Result)" = active/success ] \
    && journalctl -q -b -u "$HEALTH" -o cat | grep -q '^health: safe-yolo.service ready and stable' \
    && [ "$(prop boot-complete.target ActiveState)" = active ] && [ -e /run/vmtest-mark-good ]; then
    pass "boot health check passed ($(journalctl -q -b -u "$HEALTH" -o cat | grep -m1 '^health:')); boot-complete.target reached, slot marked good"
else
    fail "boot health check: $(prop "$HEALTH" ActiveState)/$(prop "$HEALTH" Result), boot-complete.target $(prop boot-complete.target ActiveState): $(journalctl -q -b -u "$HEALTH" -o cat | tail -n 2 | tr '\n' ' ')"
fi
}

# No seccomp kill, no permission error in this boot's journal.
sandbox_journal_checks() {
J="$(journalctl -q -b --no-pager -o cat 2>/dev/null; journalctl -q -b -k --no-pager -o cat 2>/dev/null)"
if printf '%s\n' "$J" | grep -q 'type=1326\|status=31/SYS\|SIGSYS'; then
    fail "seccomp killed something: $(printf '%s\n' "$J" | grep -m2 'type=1326\|status=31/SYS\|SIGSYS' | tr '\n' ' ')"
else
    pass "no seccomp kill (audit type=1326, SIGSYS) in the journal"
fi
DENIED="$(dlog | grep -i 'permission denied\|operation not permitted\|EPERM\|EACCES\|os error 1)\|os error 13' || true)"
if [ -n "$DENIED" ]; then
    fail "permission errors in the daemon's journal: $(printf '%s\n' "$DENIED" | head -n 3 | tr '\n' ' ')"
else
    pass "no permission error (EPERM/EACCES) in the daemon's journal"
fi
# The state directory (database, keys, camera secrets) is the daemon's alone:
# the unit's StateDirectoryMode and data-init agree with what the daemon checks.
if dlog | grep -q 'state directory is readable by others'; then
    fail "the state directory is readable by others: $(stat -c %a /var/lib/safe-yolo 2>/dev/null)"
else
    pass "the state directory is private to the daemon (0700)"
fi
}

# --- the second boot, after a clean reboot ---------------------------------------
# /data kept everything: the daemon starts guarding with the camera the host
# added, data-init changes nothing, the host finds its event and logs in with
# the pinned certificate, the boot health check passes again.
second_boot() {
    case "$(prop "$UNIT" StatusText)" in
        *"NOT GUARDING"*) fail "after the reboot: $(prop "$UNIT" StatusText)" ;;
        *) pass "after the reboot: $UNIT READY and guarding (status \"$(prop "$UNIT" StatusText)\")" ;;
    esac
    if journalctl -q -b -u safe-yolo-data-init.service -o cat | grep -q "installed the factory configuration"; then
        fail "data-init installed the factory configuration again on the second boot"
    else
        pass "data-init kept /data/safe-yolo as it was (no factory configuration installed again)"
    fi
    if wait_for 90 is_high "$LINE_HEALTHY"; then
        pass "healthy line high after the reboot (the camera from the saved settings)"
    else
        fail "healthy line not high after the reboot"
    fi
    step rebooted "healthy=$(line "$LINE_HEALTHY")"
    wait_host reboot-checked "$HOST_TIMEOUT_S"
    boot_health_check
    sandbox_journal_checks
    finish
}

# --- READY through Type=notify, inside the sandbox --------------------------------
ready_or_failed() { is_running || [ "$(prop "$UNIT" ActiveState)" = failed ]; }
if wait_for "$READY_TIMEOUT_S" ready_or_failed && is_running; then
    T_READY="$(uptime_s)"
    T_START_US="$(prop "$UNIT" ExecMainStartTimestampMonotonic)"
    T_ACTIVE_US="$(prop "$UNIT" ActiveEnterTimestampMonotonic)"
    say "VMTEST READY uptime=$T_READY start_to_ready_s=$(awk -v a="$T_START_US" -v b="$T_ACTIVE_US" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')"
    pass "$UNIT $(state): READY through sd_notify (Type=$(prop "$UNIT" Type), status \"$(prop "$UNIT" StatusText)\")"
else
    fail "$UNIT not active/running within ${READY_TIMEOUT_S} s: $(state), result $(prop "$UNIT" Result)"
    finish
fi
if [ "$BOOT_N" -eq 2 ]; then
    second_boot
fi
case "$(prop "$UNIT" StatusText)" in
    *"NOT GUARDING"*) pass "status with the factory configuration: $(prop "$UNIT" StatusText)" ;;
    *) fail "status without \"NOT GUARDING\" on a box with no camera: $(prop "$UNIT" StatusText)" ;;
esac
PID="$(prop "$UNIT" MainPID)"
ps_status() { awk -v k="$1:" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "/proc/$PID/status"; }
info "daemon pid $PID: Uid $(ps_status Uid) Groups $(ps_status Groups) CapEff $(ps_status CapEff) NoNewPrivs $(ps_status NoNewPrivs) Seccomp $(ps_status Seccomp)"
SY_UID="$(id -u safe-yolo)"
if [ "$(ps_status Uid | awk '{print $1 $2}')" = "$SY_UID$SY_UID" ] \
    && [ "$(ps_status NoNewPrivs)" = 1 ] && [ "$(ps_status Seccomp)" = 2 ] \
    && [ "$(ps_status CapEff)" = 0000000000000400 ]; then
    pass "sandboxed: user safe-yolo, no new privileges, seccomp filter on, only CAP_NET_BIND_SERVICE"
else
    fail "the daemon is not in the unit's sandbox (see the INFO line above)"
fi
if [ "$(prop safe-yolo-data-init.service Result)" = success ] && mountpoint -q /etc/safe-yolo && mountpoint -q /var/lib/safe-yolo; then
    pass "safe-yolo-data-init seeded /data; /etc/safe-yolo and /var/lib/safe-yolo are its bind mounts"
else
    fail "data partition: data-init $(prop safe-yolo-data-init.service Result), mounts: $(findmnt -n -o TARGET,SOURCE /etc/safe-yolo /var/lib/safe-yolo | tr '\n' ';')"
fi
if is_low "$LINE_HEALTHY"; then
    pass "healthy line low with no camera (not guarding)"
else
    fail "healthy line high with no camera"
fi

# --- the camera's stable name, before the host discovers it ------------------------
# udev's link (60-persistent-v4l.rules), which discovery reports and the
# board profile names. vmtest-hw.service saw it; a missing one here is
# udev's (or the harness's) problem, not the daemon's: said so, with udev's view.
LINK=/dev/v4l/by-path/platform-vivid.0-video-index0
link_ok() { [ "$(readlink -f "$LINK")" = /dev/video0 ]; }
if wait_for 30 link_ok; then
    info "udev: $LINK -> $(readlink "$LINK")"
else
    fail "udev: $LINK does not resolve to /dev/video0: $(find /dev/v4l -printf "%p -> %l " 2>&1); $(udevadm info /dev/video0 | grep -E 'ID_PATH|DEVLINKS' | tr '\n' ' ')"
fi

# --- first-boot setup token, from the journal --------------------------------------
if wait_for 30 dlog_has "setup_token="; then
    step setup-token "token=$(dlog | grep -m1 -o 'setup_token=[^ ]*' | cut -d= -f2)"
else
    fail "the daemon logged no setup token"
    step setup-token "token=none"
fi

# --- the camera, added by the host ------------------------------------------------
wait_host camera-set "$HOST_TIMEOUT_S"
CAMERA_OK=0
if wait_for 30 dlog_has "camera source opened"; then
    if dlog | grep "camera source opened" | grep -q 'V4l2 {.*driver: "vivid"'; then
        CAMERA_OK=1
        pass "camera $CAMERA_ID opened through the V4L2 backend on vivid, inside the unit's DeviceAllow"
    else
        fail "the camera source is not vivid through V4L2: $(dlog | grep -m1 'camera source opened')"
    fi
else
    fail "camera not opened within 30 s of the host adding it: $(dlog | grep -i 'camera' | tail -n 2 | tr '\n' ' ')"
fi
if wait_for 30 is_high "$LINE_HEALTHY"; then
    pass "healthy line high (running and guarding)"
else
    fail "healthy line not high with the camera added (value $(line "$LINE_HEALTHY"))"
fi
step camera-checked "opened=$CAMERA_OK healthy=$(line "$LINE_HEALTHY")"

# --- an alarm driving a gpio-sim line: the guard door's contact ----------------------
wait_host door-rule-set "$HOST_TIMEOUT_S"
wait_for 10 is_low "$LINE_RELAY" || fail "relay line high before the door opened"
echo pull-up >"$SIM/sim_gpio$LINE_DOOR/pull"
T_DOOR="$(uptime_s)"
if wait_for 20 dlog_has "alarm raised.*rule=\"\?$DOOR_RULE_ID"; then
    pass "door_open alarm raised $(elapsed "$T_DOOR" "$(uptime_s)") s after the door contact opened"
else
    fail "no door_open alarm within 20 s"
fi
if wait_for 5 is_high "$LINE_RELAY"; then pass "relay line high (door open)"; else fail "relay line not high with the door open"; fi
wait_for 30 dlog_has "alarm event stored.*rule=\"\?$DOOR_RULE_ID" || fail "the door alarm's event was not stored"
echo pull-down >"$SIM/sim_gpio$LINE_DOOR/pull"
step door-checked "relay=$(line "$LINE_RELAY")"
wait_host door-events-checked "$HOST_TIMEOUT_S"

# --- the boot health check ------------------------------------------------------------
# safe-yolo-health.service (RequiredBy=boot-complete.target, pulled in by the
# rauc-mark-good stand-in) sleeps its settle time (60 s) after READY.
boot_health_check

# From here on the health check is rerun by the test: a failing one must not
# reboot the VM (the image's FailureAction=reboot), and its settle time is
# shorter. A runtime drop-in, as a technician would add one.
mkdir -p "/run/systemd/system/$HEALTH.d"
cat >"/run/systemd/system/$HEALTH.d/50-vmtest.conf" <<DROPIN
[Unit]
FailureAction=none
[Service]
Environment=SAFEYOLO_HEALTH_SETTLE=$HEALTH_SETTLE_S
DROPIN
systemctl daemon-reload
# health_verdict: reruns the health check; prints active/success or failed/<result>.
health_verdict() {
    systemctl restart "$HEALTH" >/dev/null 2>&1
    echo "$(prop "$HEALTH" ActiveState)/$(prop "$HEALTH" Result)"
}

# --- a stalled pipeline: watchdog -> restart -----------------------------------------
RESTARTS0="$(prop "$UNIT" NRestarts)"
mkdir -p "/run/systemd/system/$UNIT.d"
# SAFEYOLO_FAULT_STALL_DETECT_AFTER=0: the detect workers beat once, when
# their model is loaded, then never again (no inference runs at all). So the
# stall timeout can be 45 s here (the VM's 90 s is for a slow inference):
# nothing but the injected fault goes silent that long.
printf '[Service]\nEnvironment=SAFEYOLO_FAULT_STALL_DETECT_AFTER=0 SAFEYOLO_SYSTEM__STALL_TIMEOUT_S=45\n' \
    >"/run/systemd/system/$UNIT.d/60-vmtest-fault.conf"
systemctl daemon-reload
info "restarting $UNIT with SAFEYOLO_FAULT_STALL_DETECT_AFTER=0 (the detect workers stop beating once loaded), stall timeout 45 s"
systemctl restart "$UNIT" || fail "systemctl restart $UNIT with the fault drop-in: $(state)"
# The drop-in goes at once: the restart systemd makes after the stall runs clean.
rm -f "/run/systemd/system/$UNIT.d/60-vmtest-fault.conf"
systemctl daemon-reload
PID_FAULT="$(prop "$UNIT" MainPID)"
info "faulty daemon pid $PID_FAULT $(state)"
wait_for 60 is_high "$LINE_HEALTHY" || fail "healthy line not high after the restart with the fault drop-in"
T_STALL0="$(uptime_s)"
stalled() { dlog | grep "pipeline stalled" | grep -q .; }
if wait_for "$STALL_TIMEOUT_S" stalled; then
    T_STALL="$(uptime_s)"
    info "pipeline stalled logged $(elapsed "$T_STALL0" "$T_STALL") s after the healthy line was up"
    if wait_for 5 is_low "$LINE_HEALTHY"; then
        pass "stall: healthy line dropped $(elapsed "$T_STALL" "$(uptime_s)") s after \"pipeline stalled\""
    else
        fail "stall: healthy line still high after \"pipeline stalled\""
    fi
    # The health check's verdict while the daemon is stalled: it must not
    # pass. It starts with the daemon still active; systemd restarts the
    # daemon during its settle time. (On systemd 252 the daemon's restart also
    # restarts this unit, Requires=: the run in progress is stopped, Result
    # "signal", a failure like the script's own "restarted during the settle
    # time", and a new run starts once the daemon is READY again.)
    HEALTH_CURSOR="$(journalctl -q -b -n 1 -o json --no-pager | jq -r .__CURSOR)"
    systemctl restart --no-block "$HEALTH"
else
    fail "no \"pipeline stalled\" within $STALL_TIMEOUT_S s of the fault injection"
fi
restarted_once() { [ "$(prop "$UNIT" NRestarts)" -gt "$RESTARTS0" ]; }
if wait_for 120 restarted_once; then
    T_WD="$(uptime_s)"
    if journalctl -q -b -u "$UNIT" -o cat | grep -q "Watchdog timeout"; then
        pass "systemd's watchdog fired (\"$(journalctl -q -b -u "$UNIT" -o cat | grep -m1 'Watchdog timeout')\") and restarted $UNIT $(elapsed "${T_STALL:-$T_STALL0}" "$T_WD") s after the stall (NRestarts $RESTARTS0 -> $(prop "$UNIT" NRestarts))"
    else
        fail "$UNIT restarted, but not by its watchdog: $(journalctl -q -b -u "$UNIT" -o cat | grep -v '^ ' | tail -n 3 | tr '\n' ' ')"
    fi
else
    fail "systemd did not restart $UNIT after the stall (NRestarts $(prop "$UNIT" NRestarts), $(state))"
fi
new_pid_running() { is_running && [ "$(prop "$UNIT" MainPID)" != "$PID_FAULT" ]; }
if wait_for "$READY_TIMEOUT_S" new_pid_running; then
    pass "$UNIT READY again after the watchdog restart (pid $PID_FAULT -> $(prop "$UNIT" MainPID))"
else
    fail "$UNIT not running a new process after the watchdog restart: $(state), pid $(prop "$UNIT" MainPID)"
fi
if wait_for 90 is_high "$LINE_HEALTHY"; then
    pass "healthy line back high after the watchdog restart (the camera from the saved configuration)"
else
    fail "healthy line not back after the watchdog restart"
fi
# The verdict of the health check started during the stall: the first one
# the journal has after it started (a pass: the script's "ready and stable"
# or systemd's "Finished"; a failure: the script's own message or systemd's
# "Failed with result").
health_verdicts() {
    journalctl -q -b -u "$HEALTH" --after-cursor="${HEALTH_CURSOR:-}" -o cat --no-pager 2>/dev/null \
        | grep -E '^health: |^Finished |Failed with result'
}
first_verdict() { health_verdicts | grep -q .; }
if [ -n "${HEALTH_CURSOR:-}" ] && wait_for $(( HEALTH_SETTLE_S + 60 )) first_verdict; then
    VERDICT="$(health_verdicts | head -n1)"
    case "$VERDICT" in
        *"ready and stable"* | Finished\ *) fail "health check during the stall passed: $VERDICT" ;;
        *) pass "health check during the stall: failed ($VERDICT); then: $(health_verdicts | tail -n1)" ;;
    esac
else
    fail "no verdict of the health check started during the stall"
fi
step stall-restarted "restarts=$(prop "$UNIT" NRestarts) healthy=$(line "$LINE_HEALTHY")"
wait_host stall-checked "$HOST_TIMEOUT_S"

# --- SIGKILL: restarted by systemd -------------------------------------------------
RESTARTS1="$(prop "$UNIT" NRestarts)"
PID="$(prop "$UNIT" MainPID)"
wait_for 30 is_high "$LINE_HEALTHY" || fail "healthy line low before SIGKILL"
kill -9 "$PID"
T_KILL="$(uptime_s)"
if wait_for 5 is_low "$LINE_HEALTHY"; then
    pass "healthy line dropped $(elapsed "$T_KILL" "$(uptime_s)") s after SIGKILL of pid $PID"
else
    fail "healthy line still high after SIGKILL"
fi
restarted_again() { [ "$(prop "$UNIT" NRestarts)" -gt "$RESTARTS1" ]; }
if wait_for 30 restarted_again && wait_for "$READY_TIMEOUT_S" is_running; then
    pass "SIGKILL: systemd restarted $UNIT, READY again $(elapsed "$T_KILL" "$(uptime_s)") s after the kill (pid $(prop "$UNIT" MainPID), NRestarts $(prop "$UNIT" NRestarts))"
else
    fail "SIGKILL: $UNIT not restarted (NRestarts $(prop "$UNIT" NRestarts), $(state))"
fi
if wait_for 90 is_high "$LINE_HEALTHY"; then
    pass "healthy line back high after the SIGKILL restart"
else
    fail "healthy line not back after the SIGKILL restart"
fi
# The health check with the daemon up and stable again: passes.
HEALTH_CURSOR="$(journalctl -q -b -n 1 -o json --no-pager | jq -r .__CURSOR)"
VERDICT="$(health_verdict)"
if [ "$VERDICT" = active/success ] && health_verdicts | grep -q '^health: .*ready and stable'; then
    pass "health check with the daemon back and stable: passed ($(journalctl -q -b -u "$HEALTH" -o cat | grep '^health:' | tail -n1))"
else
    fail "health check with the daemon back: $VERDICT ($(journalctl -q -b -u "$HEALTH" -o cat | grep '^health:' | tail -n1))"
fi
step kill-restarted "restarts=$(prop "$UNIT" NRestarts) healthy=$(line "$LINE_HEALTHY")"
wait_host kill-checked "$HOST_TIMEOUT_S"

# --- the sandbox denied nothing the daemon needs ------------------------------------
sandbox_journal_checks
UNEXPECTED=$(( $(prop "$UNIT" NRestarts) - RESTARTS0 ))
if [ "$UNEXPECTED" -eq 2 ]; then
    pass "exactly the two restarts the test caused (watchdog, SIGKILL)"
else
    fail "$UNEXPECTED restarts of $UNIT since the fault injection, want 2"
fi
FAILED_UNITS="$(systemctl list-units --state=failed --no-legend --plain | awk '{print $1}' | grep -v "^$HEALTH$" | tr '\n' ' ')"
if [ -z "$FAILED_UNITS" ]; then pass "no failed unit"; else fail "failed units: $FAILED_UNITS"; fi
finish
