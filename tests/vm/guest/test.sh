#!/bin/sh
# The in-VM part of the VM test (busybox sh). Sets up gpio-sim and vivid's
# loop, starts the feeder and the real daemon, then checks what a technician
# would check on a real box:
#   - the daemon reaches READY capturing from vivid (real V4L2 backend);
#   - the "healthy" line goes high (real GPIO backend on gpio-sim);
#   - a person in the forbidden zone raises the intrusion alarm and the siren
#     and relay lines read back high in gpio-sim's sysfs;
#   - pulling the ack button line silences the siren;
#   - SIGKILL of the daemon drops the "healthy" line (the kernel releases it).
# Every result is a "VMTEST ..." line on the serial console; the daemon's and
# the feeder's logs follow between BEGIN/END markers. Settings come from
# /etc/vmtest.env, written by tests/vm/run.sh.
# shellcheck disable=SC1091
. /etc/vmtest.env

FAILS=0
pass() { echo "VMTEST PASS $*"; }
fail() { echo "VMTEST FAIL $*"; FAILS=$((FAILS + 1)); }
uptime_s() { cut -d' ' -f1 /proc/uptime; }
# Elapsed seconds between two /proc/uptime readings, with two decimals.
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

dump_logs() {
    echo "VMTEST-FEEDER-LOG-BEGIN"
    cat /tmp/feeder.log 2>/dev/null
    echo "VMTEST-FEEDER-LOG-END"
    echo "VMTEST-DAEMON-LOG-BEGIN"
    cat /tmp/daemon.log 2>/dev/null
    echo "VMTEST-DAEMON-LOG-END"
}

finish() {
    dump_logs
    if [ "$FAILS" -eq 0 ]; then echo "VMTEST RESULT PASS"; else echo "VMTEST RESULT FAIL ($FAILS)"; fi
    exit "$FAILS"
}

# wait_for SECONDS COMMAND...: polls COMMAND every 0.2 s until it succeeds,
# giving up at SECONDS or at the guest's deadline (set by the host so that the
# logs are always printed before qemu is stopped).
wait_for() {
    _left=$(( DEADLINE_UPTIME_S - $(cut -d. -f1 /proc/uptime) ))
    _secs=$1; shift
    [ "$_left" -lt "$_secs" ] && _secs=$_left
    [ "$_secs" -gt 0 ] || { echo "VMTEST INFO deadline reached"; return 1; }
    _limit=$(( _secs * 5 ))
    _i=0
    while [ "$_i" -lt "$_limit" ]; do
        "$@" && return 0
        sleep 0.2
        _i=$((_i + 1))
    done
    return 1
}

# --- gpio-sim: one bank of 8 named lines, live -------------------------------
mount -t configfs none /sys/kernel/config 2>/dev/null
s=/sys/kernel/config/gpio-sim/sim0
mkdir "$s" "$s/bank0" || { fail "gpio-sim configfs"; finish; }
echo 8 > "$s/bank0/num_lines"
n=0
for name in SIREN RELAY HEALTHY ACK DOOR; do
    mkdir "$s/bank0/line$n"
    echo "$name" > "$s/bank0/line$n/name"
    n=$((n + 1))
done
echo 1 > "$s/live" || { fail "gpio-sim live"; finish; }
CHIP="$(cat "$s/bank0/chip_name")"
DEV="$(cat "$s/dev_name")"
SIM="/sys/devices/platform/$DEV/$CHIP"
echo "VMTEST INFO gpio-sim chip=$CHIP device=$DEV"
line() { cat "$SIM/sim_gpio$1/value"; }
is_high() { [ "$(line "$1")" = 1 ]; }
is_low() { [ "$(line "$1")" = 0 ]; }

# --- network (for the HTTPS API steps, see tests/vm/run.sh) -----------------
ip link set lo up
if ip link set eth0 up 2>/dev/null; then
    ip addr add 10.0.2.15/24 dev eth0
    ip route add default via 10.0.2.2
fi

# --- feeder: real footage into vivid's capture through the output loop -------
for v in /dev/video*; do echo "VMTEST INFO $v"; done
# The stable name udev would give vivid's capture node (no udev here).
mkdir -p /dev/v4l/by-path
ln -s ../../video0 /dev/v4l/by-path/platform-vivid.0-video-index0
/bin/feeder /dev/video1 /dev/video0 /usr/share/vmtest/frames.raw \
    "$CAM_WIDTH" "$CAM_HEIGHT" "$CAM_FOURCC" "$SRC_FPS" >/tmp/feeder.log 2>&1 &
FEEDER=$!
if wait_for 20 grep -q "feeder: streaming" /tmp/feeder.log; then
    pass "feeder streaming into vivid"
else
    fail "feeder did not start"; finish
fi

# --- the daemon ----------------------------------------------------------------
T_START="$(uptime_s)"
echo "VMTEST DAEMON-START uptime=$T_START"
SAFEYOLO_LOG="$DAEMON_LOG_FILTER" /usr/bin/safe-yolo --log-format text run \
    --config /etc/safe-yolo/safe-yolo.toml >/tmp/daemon.log 2>&1 &
DAEMON=$!

ready_or_gone() { grep -q "safe-yolo ready" /tmp/daemon.log || ! kill -0 "$DAEMON" 2>/dev/null; }
if wait_for "$READY_TIMEOUT_S" ready_or_gone && grep -q "safe-yolo ready" /tmp/daemon.log; then
    T_READY="$(uptime_s)"
    echo "VMTEST READY uptime=$T_READY start_to_ready_s=$(elapsed "$T_START" "$T_READY")"
else
    if kill -0 "$DAEMON" 2>/dev/null; then
        fail "daemon not ready within ${READY_TIMEOUT_S}s"
    else
        wait "$DAEMON"
        fail "daemon exited with status $? before READY"
    fi
    finish
fi

if wait_for 30 grep -q "camera source opened" /tmp/daemon.log; then
    if grep -q 'camera source opened.*source=V4l2 {.*driver: "vivid"' /tmp/daemon.log; then
        pass "camera opened through the V4L2 backend on vivid"
    else
        fail "the camera source is not vivid through V4L2: $(grep 'camera source opened' /tmp/daemon.log | head -n1 | sed 's/.*source=//')"
    fi
else
    fail "camera not opened"
fi

if wait_for 30 is_high "$LINE_HEALTHY"; then
    pass "healthy line high"
else
    fail "healthy line not high (value $(line "$LINE_HEALTHY"))"
fi

# --- intrusion ---------------------------------------------------------------------
if wait_for "$ALARM_TIMEOUT_S" grep -q "alarm raised.*rule=$RULE_ID" /tmp/daemon.log; then
    T1="$(uptime_s)"
    echo "VMTEST ALARM ready_to_alarm_s=$(elapsed "$T_READY" "$T1")"
    pass "alarm raised for rule $RULE_ID $(elapsed "$T_READY" "$T1") s after READY"
else
    fail "no alarm raised for rule $RULE_ID within ${ALARM_TIMEOUT_S}s"
fi
if wait_for 3 is_high "$LINE_SIREN"; then pass "siren line high"; else fail "siren line not high"; fi
if wait_for 3 is_high "$LINE_RELAY"; then pass "relay line high"; else fail "relay line not high"; fi

# --- acknowledge button ---------------------------------------------------------------
# Pressed once the event is in the store, so the press acknowledges it too
# (a press earlier than that silences the outputs but finds no open event).
wait_for 30 grep -q "alarm event stored.*rule=$RULE_ID" /tmp/daemon.log \
    || fail "the alarm event was not stored"
SIREN_WAS_ON=0
is_high "$LINE_SIREN" && SIREN_WAS_ON=1
echo pull-up > "$SIM/sim_gpio$LINE_ACK/pull"
sleep 0.3
echo pull-down > "$SIM/sim_gpio$LINE_ACK/pull"
if [ "$SIREN_WAS_ON" -eq 0 ]; then
    fail "siren was not on: the ack button cannot be checked"
elif wait_for 5 is_low "$LINE_SIREN"; then
    pass "ack button silenced the siren"
else
    fail "siren still on after the ack button"
fi
if wait_for 10 grep -q "alarm acknowledged.*by=\"\?ack-button" /tmp/daemon.log; then
    pass "the event was acknowledged by the button"
else
    fail "the event was not acknowledged (daemon log: $(grep 'acknowledge' /tmp/daemon.log | tail -n1))"
fi

# --- capture rate ---------------------------------------------------------------------
# vivid delivers frames at its own rate (the feeder's output rate). The
# daemon's capture rate is that rate less the frames it missed (its debug
# "frames missed" lines count them), until the daemon logs stats itself.
VIVID_FPS="$(grep -o 'fps=[0-9.]*' /tmp/feeder.log | tail -n1 | cut -d= -f2)"
echo "VMTEST FPS vivid_loop=${VIVID_FPS:-unknown}"
STATS="$(grep 'capture_fps=' /tmp/daemon.log | tail -n1)"
if [ -n "$STATS" ]; then
    echo "VMTEST FPS daemon_capture=$(echo "$STATS" | sed -n 's/.*capture_fps=\([0-9.]*\).*/\1/p')"
else
    T_NOW="$(uptime_s)"
    MISSED="$(grep -o 'missed_total=[0-9]*' /tmp/daemon.log | tail -n1 | cut -d= -f2)"
    awk -v f="${VIVID_FPS:-0}" -v t="$(elapsed "$T_READY" "$T_NOW")" -v m="${MISSED:-0}" \
        'BEGIN { if (t > 0 && f > 0) printf "VMTEST FPS daemon_capture_derived=%.1f missed=%d over=%.0fs\n", (f * t - m) / t, m, t }'
fi

# --- SIGKILL: the kernel releases the lines, healthy drops -------------------------
if wait_for 30 is_high "$LINE_HEALTHY"; then
    kill -9 "$DAEMON"
    T0="$(uptime_s)"
    if wait_for 5 is_low "$LINE_HEALTHY"; then
        pass "healthy line dropped $(elapsed "$T0" "$(uptime_s)") s after SIGKILL"
    else
        fail "healthy line still high after SIGKILL"
    fi
    is_low "$LINE_SIREN" || fail "siren line high after SIGKILL"
else
    fail "healthy line low before SIGKILL (cannot test the drop)"
    kill -9 "$DAEMON"
fi
kill "$FEEDER" 2>/dev/null
finish
