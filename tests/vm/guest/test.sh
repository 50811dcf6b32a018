#!/bin/sh
# The in-VM part of the VM test (busybox sh). Sets up gpio-sim and vivid's
# loop, starts the feeder and the real daemon with the factory configuration
# of the VM board (no cameras, zones or rules), then checks what a technician
# would check on a real box, while the host drives the HTTPS API
# (tests/vm/api.sh):
#   - the daemon reaches READY with no camera, "NOT GUARDING", and the
#     "healthy" line stays low (real GPIO backend on gpio-sim);
#   - the one-time setup token the daemon logs is passed to the host, which
#     sets up the admin, logs in, discovers vivid, previews it and adds the
#     camera (PUT /api/v1/cameras/{id});
#   - the camera is opened through the real V4L2 backend on vivid and the
#     "healthy" line goes high;
#   - the host defines the zone and the rule; a person in that zone raises
#     the intrusion alarm and the siren and relay lines read back high;
#   - the host's acknowledgement through the API drops the siren line;
#   - the alarm of a second rule (defined by the host) is silenced by
#     pulling the ack button line;
#   - the door contact trips the stop relay through a door_open rule;
#   - vivid's device is removed (its platform device unbound, as a USB
#     camera is unplugged): the camera_offline rule the host defined raises
#     its alarm while the daemon keeps running;
#   - SIGKILL of the daemon drops the "healthy" line (the kernel releases it).
# Every result is a "VMTEST ..." line on the serial console; the daemon's and
# the feeder's logs follow between BEGIN/END markers. Settings come from
# /etc/vmtest.env, written by tests/vm/run.sh.
#
# Handshake with the host: "VMTEST STEP <name> ... end" lines on the console
# (ttyS0) tell the host a step is done; the host answers with
# "HOST <name> ... end" lines on the second serial port (ttyS1), which a
# background cat appends to /tmp/host.msgs. "HOST abort <reason> end" ends
# the test (the logs are still dumped).
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
# giving up after SECONDS of guest uptime or at the guest's deadline (set by
# the host so that the logs are always printed before qemu is stopped). The
# limit is on the clock, not on a count of polls: under TCG, with inference
# busy on both vCPUs, one poll can take far longer than its 0.2 s sleep.
# Guest uptime in hundredths of a second (/proc/uptime has two decimals).
uptime_cs() { awk '{ printf "%d", $1 * 100 }' /proc/uptime; }
wait_for() {
    _now=$(uptime_cs)
    _end=$(( _now + $1 * 100 )); shift
    [ "$_end" -gt $(( DEADLINE_UPTIME_S * 100 )) ] && _end=$(( DEADLINE_UPTIME_S * 100 ))
    [ "$_now" -lt "$_end" ] || { echo "VMTEST INFO deadline reached"; return 1; }
    while :; do
        "$@" && return 0
        [ "$(uptime_cs)" -lt "$_end" ] || return 1
        sleep 0.2
    done
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

# --- network (for the HTTPS API steps, see tests/vm/api.sh) -----------------
ip link set lo up
if ip link set eth0 up 2>/dev/null; then
    ip addr add 10.0.2.15/24 dev eth0
    ip route add default via 10.0.2.2
else
    fail "no eth0: the host cannot reach the API"
fi

# --- the host's messages: second serial port -> /tmp/host.msgs ---------------
: >/tmp/host.msgs
stty -F /dev/ttyS1 raw -echo || fail "cannot set up ttyS1 (the host's channel)"
cat /dev/ttyS1 >>/tmp/host.msgs &
HOST_READER=$!
host_said() { grep -q "^HOST $1 .*end" /tmp/host.msgs; }
# shellcheck disable=SC2317 # called through wait_for
host_said_or_abort() { host_said "$1" || host_said abort; }
# wait_host NAME SECONDS: waits for "HOST NAME ... end"; on "HOST abort", or
# when the host stays silent, records the failure and ends the test.
wait_host() {
    if wait_for "$2" host_said_or_abort "$1" && host_said "$1"; then
        return 0
    fi
    if host_said abort; then
        fail "the host aborted: $(grep -m1 '^HOST abort' /tmp/host.msgs | sed 's/^HOST abort //; s/ end$//')"
    else
        fail "no \"HOST $1\" from the host within $2 s"
    fi
    kill -9 "$DAEMON" 2>/dev/null
    kill "$FEEDER" "$HOST_READER" 2>/dev/null
    finish
}
step() { echo "VMTEST STEP $* end"; }

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
# The replay negative check plays the footage from the media folder.
if [ -f /usr/share/vmtest/vtest.mjpeg ]; then
    mkdir -p /var/lib/safe-yolo/media
    cp /usr/share/vmtest/vtest.mjpeg /var/lib/safe-yolo/media/
fi
T_START="$(uptime_s)"
echo "VMTEST DAEMON-START uptime=$T_START env=$DAEMON_ENV"
# shellcheck disable=SC2086 # DAEMON_ENV is a list of NAME=value words
env $DAEMON_ENV SAFEYOLO_LOG="$DAEMON_LOG_FILTER" /usr/bin/safe-yolo --log-format text run \
    --config /etc/safe-yolo/safe-yolo.toml >/tmp/daemon.log 2>&1 &
DAEMON=$!

# shellcheck disable=SC2317 # called through wait_for
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

# --- as flashed: no camera, not guarding, healthy low ---------------------------
if grep "safe-yolo ready" /tmp/daemon.log | grep -q "NOT GUARDING"; then
    pass "READY with the factory configuration: $(grep -m1 "safe-yolo ready" /tmp/daemon.log | sed 's/.*status="\{0,1\}//; s/"$//')"
else
    fail "READY without \"NOT GUARDING\" on a box with no camera: $(grep -m1 "safe-yolo ready" /tmp/daemon.log)"
fi
if grep -q "camera source opened" /tmp/daemon.log; then
    fail "a camera was opened before the host added one"
fi
# The outputs follow "guarding" before READY: low now means low by design.
if is_low "$LINE_HEALTHY"; then
    pass "healthy line low with no camera (not guarding)"
else
    fail "healthy line high with no camera (value $(line "$LINE_HEALTHY")): a PLC would think the box guards"
fi

# --- first-boot setup: the token from the daemon's log, to the host ------------
if wait_for 30 grep -q "setup_token=" /tmp/daemon.log; then
    step setup-token "token=$(grep -m1 -o 'setup_token=[^ ]*' /tmp/daemon.log | cut -d= -f2)"
else
    fail "the daemon logged no setup token"
    step setup-token "token=none"
fi

# --- the camera, added by the host from its discovery ------------------------------
# The host sets up the admin, logs in, discovers vivid and adds the camera.
wait_host camera-set "$HOST_TIMEOUT_S"
T_CAMERA="$(uptime_s)"
CAMERA_OK=0
if wait_for 30 grep -q "camera source opened" /tmp/daemon.log; then
    if grep -q 'camera source opened.*source=V4l2 {.*driver: "vivid"' /tmp/daemon.log; then
        CAMERA_OK=1
        pass "camera $CAMERA_ID opened through the V4L2 backend on vivid"
    else
        fail "the camera source is not vivid through V4L2: $(grep 'camera source opened' /tmp/daemon.log | head -n1 | sed 's/.*source=//')"
    fi
else
    fail "camera not opened within 30 s of the host adding it"
fi
if wait_for 30 is_high "$LINE_HEALTHY"; then
    pass "healthy line high $(elapsed "$T_CAMERA" "$(uptime_s)") s after the camera was added (running and guarding)"
else
    fail "healthy line not high with the camera added (value $(line "$LINE_HEALTHY"))"
fi
step camera-checked "opened=$CAMERA_OK healthy=$(line "$LINE_HEALTHY")"

# The host defines the zone and the rule.
wait_host rules-set "$HOST_TIMEOUT_S"
T_RULES="$(uptime_s)"
if grep -q "setting applied to the running pipeline.*id=\"\?$RULE_ID" /tmp/daemon.log; then
    pass "the API's rule $RULE_ID reached the running pipeline"
else
    fail "no \"setting applied\" for rule $RULE_ID in the daemon log"
fi

# --- intrusion (zone and rule from the API) -------------------------------------------
ALARM=0
if wait_for "$ALARM_TIMEOUT_S" grep -q "alarm raised.*rule=$RULE_ID" /tmp/daemon.log; then
    ALARM=1
    T1="$(uptime_s)"
    # The daemon's own measure: the person frame's capture to the siren line.
    wait_for 5 grep -q "alarm reached the output lines rule=$RULE_ID" /tmp/daemon.log
    GLASS_MS="$(grep -m1 "alarm reached the output lines rule=$RULE_ID" /tmp/daemon.log | sed -n 's/.*glass_to_output_ms=\([0-9]*\).*/\1/p')"
    echo "VMTEST ALARM rule_to_alarm_s=$(elapsed "$T_RULES" "$T1") frame_to_output_ms=${GLASS_MS:-unknown}"
    pass "alarm raised for rule $RULE_ID $(elapsed "$T_RULES" "$T1") s after the API defined it"
else
    fail "no alarm raised for rule $RULE_ID within ${ALARM_TIMEOUT_S}s"
fi
if wait_for 3 is_high "$LINE_SIREN"; then pass "siren line high"; else fail "siren line not high"; fi
if wait_for 3 is_high "$LINE_RELAY"; then pass "relay line high"; else fail "relay line not high"; fi
step alarm-on "rule=$RULE_ID alarm=$ALARM siren=$(line "$LINE_SIREN") relay=$(line "$LINE_RELAY")"

# --- acknowledge through the API -----------------------------------------------------
SIREN_WAS_ON=0
is_high "$LINE_SIREN" && SIREN_WAS_ON=1
wait_host acked "$HOST_TIMEOUT_S"
EVENT1="$(grep -m1 '^HOST acked ' /tmp/host.msgs | sed -n 's/.* event=\([0-9]*\) .*/\1/p')"
if [ "$SIREN_WAS_ON" -eq 0 ]; then
    fail "siren was not on: the API acknowledgement cannot be checked"
elif wait_for 5 is_low "$LINE_SIREN"; then
    pass "API acknowledgement of event $EVENT1 dropped the siren line"
else
    fail "siren still on after the API acknowledged event $EVENT1"
fi
echo "VMTEST INFO relay line after the API ack: $(line "$LINE_RELAY")"
# The one acknowledge path (API and button) logs who acknowledged: here the API's
# user, not the button.
if grep "alarm acknowledged event_id=$EVENT1 by=" /tmp/daemon.log | grep -qv 'by="ack-button"'; then
    pass "the daemon logged the API acknowledgement of event $EVENT1"
else
    fail "no \"alarm acknowledged\" by an API user for event $EVENT1 in the daemon log"
fi
step api-ack-checked "siren=$(line "$LINE_SIREN")"

# --- a second alarm, silenced by the acknowledge button -----------------------------
wait_host rule2-set "$HOST_TIMEOUT_S"
T_RULES2="$(uptime_s)"
if wait_for "$ALARM_TIMEOUT_S" grep -q "alarm raised.*rule=$RULE2_ID" /tmp/daemon.log; then
    T2="$(uptime_s)"
    echo "VMTEST ALARM2 rule_to_alarm_s=$(elapsed "$T_RULES2" "$T2")"
    pass "second alarm raised for rule $RULE2_ID $(elapsed "$T_RULES2" "$T2") s after the API defined it"
else
    fail "no alarm raised for rule $RULE2_ID within ${ALARM_TIMEOUT_S}s"
fi
if wait_for 3 is_high "$LINE_SIREN"; then pass "siren line high again"; else fail "siren line not high for the second alarm"; fi
# Pressed once the event is in the store, so the press acknowledges it too
# (a press earlier than that silences the outputs but finds no open event).
wait_for 30 grep -q "alarm event stored.*rule=$RULE2_ID" /tmp/daemon.log \
    || fail "the second alarm's event was not stored"
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
step button-checked "siren=$(line "$LINE_SIREN")"
# The host checks the event's state through the API.
wait_host events-checked "$HOST_TIMEOUT_S"

# --- the guard door's contact: a door_open rule trips the stop relay ---------------
wait_host door-rule-set "$HOST_TIMEOUT_S"
wait_for 10 is_low "$LINE_RELAY" || fail "stop relay still high before the door opened"
echo pull-up > "$SIM/sim_gpio$LINE_DOOR/pull"
T_DOOR="$(uptime_s)"
if wait_for 10 grep -q "alarm raised.*rule=$DOOR_RULE_ID" /tmp/daemon.log; then
    pass "door_open alarm raised $(elapsed "$T_DOOR" "$(uptime_s)") s after the door contact opened"
else
    fail "no door_open alarm within 10 s (daemon log: $(grep 'door contact' /tmp/daemon.log | tail -n1))"
fi
if wait_for 5 is_high "$LINE_RELAY"; then pass "stop relay tripped by the open door"; else fail "stop relay not high with the door open"; fi
wait_for 30 grep -q "alarm event stored.*rule=$DOOR_RULE_ID" /tmp/daemon.log \
    || fail "the door alarm's event was not stored"
echo pull-down > "$SIM/sim_gpio$LINE_DOOR/pull"
if wait_for 10 grep -q "door contact changed.*open=false" /tmp/daemon.log; then
    pass "door closed: the daemon saw the contact close"
else
    fail "the daemon did not see the door close"
fi
step door-checked "relay=$(line "$LINE_RELAY")"
wait_host door-events-checked "$HOST_TIMEOUT_S"

# --- capture rate ---------------------------------------------------------------------
# vivid delivers frames at its own rate (the feeder's output rate); the
# daemon logs its own capture rate every 30 s ("pipeline stats").
VIVID_FPS="$(grep -o 'fps=[0-9.]*' /tmp/feeder.log | tail -n1 | cut -d= -f2)"
echo "VMTEST FPS vivid_loop=${VIVID_FPS:-unknown}"
STATS="$(grep 'capture_fps=' /tmp/daemon.log | tail -n1)"
echo "VMTEST FPS daemon_capture=$(echo "$STATS" | sed -n 's/.*capture_fps=\([0-9.]*\).*/\1/p') detected=$(echo "$STATS" | sed -n 's/.* detected=\([0-9]*\).*/\1/p') captured=$(echo "$STATS" | sed -n 's/.* captured=\([0-9]*\).*/\1/p')"

# --- the camera unplugged: vivid's device removed -----------------------------------
# The host defined a camera_offline rule; the device goes away under the
# running daemon (unbinding vivid's platform device removes its nodes, as
# unplugging a USB camera does; rmmod would refuse while the nodes are open).
wait_host offline-rule-set "$HOST_TIMEOUT_S"
wait_for 10 is_high "$LINE_HEALTHY" || fail "healthy line low before the camera was removed"
T_UNPLUG="$(uptime_s)"
if echo vivid.0 > /sys/bus/platform/drivers/vivid/unbind; then
    pass "vivid.0 unbound from its driver"
else
    fail "cannot unbind vivid.0"
fi
if [ -e /dev/video0 ] || [ -e /dev/video1 ]; then
    fail "vivid's nodes still there after the unbind: $(ls /dev/video* 2>/dev/null | tr '\n' ' ')"
else
    pass "vivid's nodes /dev/video0 and /dev/video1 are gone"
fi
UNPLUG_ALARM=0
if wait_for 60 grep -q "alarm raised.*rule=$OFFLINE_RULE_ID" /tmp/daemon.log; then
    UNPLUG_ALARM=1
    T_OFF="$(uptime_s)"
    echo "VMTEST OFFLINE unplug_to_alarm_s=$(elapsed "$T_UNPLUG" "$T_OFF")"
    pass "camera_offline alarm raised $(elapsed "$T_UNPLUG" "$T_OFF") s after the device was removed"
else
    fail "no camera_offline alarm within 60 s of the device removal (daemon log: $(grep -i 'camera offline\|camera.*source' /tmp/daemon.log | tail -n1))"
fi
if kill -0 "$DAEMON" 2>/dev/null; then
    pass "the daemon keeps running with its camera gone"
else
    fail "the daemon exited after the camera was removed"
fi
if [ "$(grep -c "safe-yolo ready" /tmp/daemon.log)" -eq 1 ] && ! grep -q "shutting down\|safe-yolo stopped" /tmp/daemon.log; then
    pass "READY held: no restart, no shutdown"
else
    fail "the daemon restarted or began to stop: $(grep "safe-yolo ready\|shutting down\|safe-yolo stopped" /tmp/daemon.log | tail -n2)"
fi
echo "VMTEST INFO healthy line with the camera offline: $(line "$LINE_HEALTHY"); camera log: $(grep -i 'camera offline' /tmp/daemon.log | tail -n1)"
step camera-removed "alarm=$UNPLUG_ALARM"
wait_host offline-checked "$HOST_TIMEOUT_S"
kill -0 "$DAEMON" 2>/dev/null || fail "the daemon exited during the host's offline checks"

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
kill "$FEEDER" "$HOST_READER" 2>/dev/null
finish
