# Host side of the VM test's HTTPS API steps (sourced by tests/vm/run.sh).
# Talks to the daemon in the VM through qemu's port forward
# (https://127.0.0.1:$PORT), as an installer and an operator would:
#   first contact  openssl s_client fetches the served certificate (pinned
#                  with curl --cacert from then on) and checks TLS 1.3 is
#                  negotiated and TLS 1.2 refused
#   setup          POST /api/v1/setup with the one-time token the daemon
#                  logged (the guest copies it to the serial console)
#   login          POST /api/v1/auth/login -> bearer token
#   as flashed     GET /api/v1/system (guarding false), GET /api/v1/cameras,
#                  GET /api/v1/rules: nothing configured
#   camera         GET /api/v1/cameras/discovery finds vivid (driver, a
#                  format this appliance captures at the footage's size),
#                  POST /api/v1/cameras/preview gives a JPEG of that size,
#                  the multi-planar vivid node is discovered and previewed in
#                  each of MPLANE_FORMATS (its colour bars checked),
#                  PUT /api/v1/cameras/{id} built from the discovery answer
#                  (skipped with SAFEYOLO_VM_SKIP_CAMERA_ADD=1: the test must
#                  then fail), GET /api/v1/cameras until it is online
#   zone, rule     PUT /api/v1/zones/{id}, PUT /api/v1/rules/{id} (the guest
#                  configuration has none: the API is the only source)
#   event          GET /api/v1/events, then POST /api/v1/events/{id}/ack
#   second rule    PUT /api/v1/rules/{id}: a second alarm for the ack button
#   button ack     GET /api/v1/events: the button acknowledged it
#   door           PUT a door_open rule; GET /api/v1/events: its event
#   camera removed PUT a camera_offline rule; after the guest removed vivid:
#                  GET /api/v1/events (the camera_offline event),
#                  GET /api/v1/system (answering, camera offline)
#
# Handshake: the guest reports on its serial console (ttyS0, the file
# $SERIAL) with "VMTEST STEP <name> ... end" lines; the host answers with
# "HOST <name> ... end" lines written to the guest's second serial port
# (ttyS1, a qemu pipe chardev: the FIFO $CTL.in). "HOST abort <reason> end"
# makes the guest stop waiting, dump its logs and power off.
# shellcheck shell=bash

API_USER="vmadmin"
API_PASSWORD="vm-test-$(od -An -N9 -tx1 /dev/urandom | tr -d ' \n')"
API_TOKEN=""
API_FAILS=0
API_BODY=""
API_LOG=""
API_CERT=""
API_EVENT1=""
API_EVENT2=""
API_CAMERA_SOURCE=""
# Timings measured on the host (ms), printed by run.sh.
T_CAMERA_ONLINE_MS=""
T_OFFLINE_EVENT_MS=""

# Sends one line to the guest (never blocks: the host holds the FIFO open
# read-write on fd 8, so the write succeeds even when qemu is gone).
host_say() {
    printf 'HOST %s end\n' "$*" >&8
    printf '[host -> guest] HOST %s end\n' "$*" >>"$API_LOG"
}

api_note() { printf '%s\n' "$*" >>"$API_LOG"; }

# Records a failed API step, tells the guest to stop waiting, returns 1.
api_fail() {
    API_FAILS=$((API_FAILS + 1))
    log "API FAIL $*"
    api_note "API FAIL $*"
    host_say "abort $*"
    return 1
}

api_pass() {
    log "API PASS $*"
    api_note "API PASS $*"
}

# api METHOD PATH [JSON]: one request with the pinned certificate; the body
# lands in $API_BODY, the HTTP status is printed (000 when the request failed).
api() {
    local method="$1" path="$2" data="${3:-}" status
    local args=(-sS --max-time 120 --cacert "$API_CERT" -o "$API_BODY" -w '%{http_code}' -X "$method")
    [ -n "$API_TOKEN" ] && args+=(-H "Authorization: Bearer $API_TOKEN")
    [ -n "$data" ] && args+=(-H 'Content-Type: application/json' --data-binary "$data")
    status="$(curl "${args[@]}" "https://127.0.0.1:$PORT$path" 2>>"$API_LOG")" || status="${status:-000}"
    {
        printf '%s %s -> %s\n' "$method" "$path" "$status"
        [ -n "$data" ] && printf '  request: %s\n' "$(printf '%s' "$data" | sed "s/$API_PASSWORD/<password>/g")"
        if [ "$(head -c 2 "$API_BODY" 2>/dev/null | od -An -tx1 | tr -d ' ')" = ffd8 ]; then
            printf '  response: a JPEG, %s bytes\n' "$(stat -c %s "$API_BODY")"
        else
            printf '  response: %s\n' "$(head -c 2000 "$API_BODY" 2>/dev/null)"
        fi
    } >>"$API_LOG"
    printf '%s\n' "$status"
}

# expect_status WANT GOT WHAT: fails the step unless GOT is WANT.
expect_status() {
    [ "$2" = "$1" ] && return 0
    api_fail "$3: HTTP $2 (want $1): $(head -c 300 "$API_BODY" 2>/dev/null)"
}

# jq on the last response body.
body() { jq -r "$@" "$API_BODY" 2>/dev/null; }

# Waits for a "VMTEST STEP $1 ... end" line from the guest; prints the line.
wait_step() {
    wait_serial "^VMTEST STEP $1 .*end" || return 1
    grep -a "^VMTEST STEP $1 .*end" "$SERIAL" | head -n1 | tr -d '\r'
}

# First contact: fetch the served certificate (trust on first use, pinned for
# every later request) and check the TLS versions.
api_first_contact() {
    local out
    out="$(openssl s_client -connect "127.0.0.1:$PORT" -servername localhost </dev/null 2>&1)" || true
    printf '%s\n' "$out" >"$WORK/api-s_client.log"
    printf '%s\n' "$out" | openssl x509 -out "$API_CERT" 2>/dev/null \
        || { api_fail "first contact: no certificate served on port $PORT"; return 1; }
    api_note "served certificate: $(openssl x509 -in "$API_CERT" -noout -subject -ext subjectAltName 2>/dev/null | tr '\n' ' ')"
    if printf '%s\n' "$out" | grep -q "^New, TLSv1.3,"; then
        api_pass "TLS 1.3 negotiated ($(printf '%s\n' "$out" | sed -n 's/^New, \(TLSv1.3\), Cipher is \(.*\)/\1 \2/p'))"
    else
        api_fail "TLS 1.3 not negotiated: $(printf '%s\n' "$out" | grep -m1 '^New,')"; return 1
    fi
    if openssl s_client -connect "127.0.0.1:$PORT" -servername localhost -tls1_2 </dev/null >"$WORK/api-s_client-tls12.log" 2>&1; then
        api_fail "a TLS 1.2 handshake was accepted (the default floor is 1.3)"; return 1
    fi
    api_pass "TLS 1.2 refused"
}

# Setup with the one-time token, then login.
api_setup_and_login() {
    local line token status
    line="$(wait_step setup-token)" || { api_fail "the guest did not report the setup token"; return 1; }
    token="$(printf '%s\n' "$line" | sed -n 's/.* token=\([^ ]*\) .*/\1/p')"
    [ -n "$token" ] || { api_fail "no setup token in: $line"; return 1; }

    api_first_contact || return 1

    # Setup without the token is refused from the NAT address (10.0.2.2: the
    # factory configuration has no [api] setup_networks), with it the first
    # admin is created.
    status="$(api POST /api/v1/setup "$(jq -nc --arg u "$API_USER" --arg p "$API_PASSWORD" '{username: $u, password: $p}')")"
    expect_status 403 "$status" "setup without the token" || return 1
    api_pass "setup without the token refused (HTTP 403) from 10.0.2.2"
    status="$(api POST /api/v1/setup "$(jq -nc --arg u "$API_USER" --arg p "$API_PASSWORD" --arg t "$token" \
        '{username: $u, password: $p, setup_token: $t}')")"
    expect_status 201 "$status" "first-boot setup" || return 1
    api_pass "first-boot setup with the logged one-time token (admin $API_USER)"

    status="$(api POST /api/v1/auth/login "$(jq -nc --arg u "$API_USER" --arg p "$API_PASSWORD" '{username: $u, password: $p}')")"
    expect_status 200 "$status" "login" || return 1
    API_TOKEN="$(body .access_token)"
    case "$API_TOKEN" in "" | null) api_fail "login: no access_token"; return 1 ;; esac
    api_pass "login (role $(body .role))"
}

# The box as flashed: nothing configured, not guarding.
api_as_flashed() {
    local status
    status="$(api GET /api/v1/system)"
    expect_status 200 "$status" "system" || return 1
    [ "$(body -c '[.guarding, (.cameras | length)]')" = "[false,0]" ] \
        || { api_fail "the factory box claims to guard: $(body -c '{guarding, cameras}')"; return 1; }
    api_pass "GET /api/v1/system: guarding false, no camera (outputs $(body .outputs_backend))"
    status="$(api GET /api/v1/cameras)"
    expect_status 200 "$status" "list cameras" || return 1
    [ "$(body '.running | length')" = 0 ] || { api_fail "cameras running on the factory box: $(body -c '[.running[].id]')"; return 1; }
    status="$(api GET /api/v1/rules)"
    expect_status 200 "$status" "list rules" || return 1
    [ "$(body '.running | length')" = 0 ] || { api_fail "rules running on the factory box: $(body -c '[.running[].id]')"; return 1; }
    api_pass "no camera and no rule running on the factory box"
}

# Discovery: vivid with a format this appliance captures at the footage's
# size and rate; sets API_CAMERA_SOURCE (a source document) from the answer.
api_discover() {
    local status dev
    status="$(api GET /api/v1/cameras/discovery)"
    expect_status 200 "$status" "camera discovery" || return 1
    cp "$API_BODY" "$WORK/discovery.json"
    dev="$(body -c '[.devices[] | select(.driver == "vivid")] | first // empty')"
    [ -n "$dev" ] || { api_fail "discovery found no vivid device: devices $(body -c '[.devices[] | {node, driver}]'), skipped $(body -c '.skipped')"; return 1; }
    api_pass "discovery: vivid at $(jq -r .path <<<"$dev") ($(jq -r .node <<<"$dev"), card \"$(jq -r .card <<<"$dev")\", $(jq '.formats | length' <<<"$dev") formats, $(jq '[.formats[] | select(.format != null)] | length' <<<"$dev") capturable)"
    # The format the footage is looped in, offered at its size (a discrete
    # size, or a range holding it) at some frame rate; the camera document
    # is built from that entry.
    API_CAMERA_SOURCE="$(jq -c --arg fmt "$CAM_FORMAT" --argjson w "$CAM_WIDTH" --argjson h "$CAM_HEIGHT" '
        def fits: (.kind == "discrete" and .width == $w and .height == $h)
            or (.kind == "stepwise" and .min_width <= $w and $w <= .max_width
                and .min_height <= $h and $h <= .max_height);
        def fps: [.rates[] | if .kind == "discrete" then .fps else .max_fps end | select(. != null)] | max;
        . as $d
        | [.formats[] | select(.format == $fmt) | .format as $f | .sizes[] | select(fits)
           | {kind: "v4l2", device: $d.path, width: $w, height: $h, format: $f, fps: fps}]
        | first // empty
        | if .fps == null then del(.fps) else .fps |= round end' <<<"$dev")"
    if [ -z "$API_CAMERA_SOURCE" ]; then
        api_fail "discovery: vivid offers no $CAM_FORMAT at ${CAM_WIDTH}x$CAM_HEIGHT: $(jq -c '[.formats[] | {fourcc, format, sizes}] | .[0:4]' <<<"$dev")"
        return 1
    fi
    case "$(jq -r .device <<<"$API_CAMERA_SOURCE")" in
        /dev/v4l/by-*) ;;
        *) api_fail "discovery names vivid by its node, not a stable path: $API_CAMERA_SOURCE"; return 1 ;;
    esac
    api_pass "discovery offers $(jq -r '.format + " " + (.width|tostring) + "x" + (.height|tostring) + " at " + ((.fps // "?")|tostring) + " fps"' <<<"$API_CAMERA_SOURCE") on $(jq -r .device <<<"$API_CAMERA_SOURCE")"
}

# One still picture of the source: a JPEG of the size asked for.
api_preview() {
    local status size
    status="$(api POST /api/v1/cameras/preview "$API_CAMERA_SOURCE")"
    expect_status 200 "$status" "preview of $API_CAMERA_SOURCE" || return 1
    cp "$API_BODY" "$WORK/preview.jpg"
    [ "$(head -c 3 "$WORK/preview.jpg" | od -An -tx1 | tr -d ' ')" = ffd8ff ] \
        || { api_fail "the preview is not a JPEG: $(head -c 16 "$WORK/preview.jpg" | od -An -tx1)"; return 1; }
    size="$(ffprobe -v error -select_streams v:0 -show_entries stream=width,height -of csv=p=0:s=x "$WORK/preview.jpg" 2>&1)"
    [ "$size" = "${CAM_WIDTH}x$CAM_HEIGHT" ] \
        || { api_fail "the preview is $size, not the ${CAM_WIDTH}x$CAM_HEIGHT asked for"; return 1; }
    api_pass "POST /api/v1/cameras/preview: a $size JPEG ($(stat -c %s "$WORK/preview.jpg") bytes, $WORK/preview.jpg)"
}

# The colour of pixel X,Y of a 640-pixel-wide picture decoded to packed RGB
# (the file RAW) as "R G B".
rgb_pixel() {
    od -An -v -tu1 -j $(( ($3 * 640 + $2) * 3 )) -N3 "$1" | awk '{ print $1, $2, $3 }'
}

# The multi-planar node (a second vivid instance, multiplanar=2, no footage:
# its 75% colour bars): discovery lists it with its two-buffer formats, and a
# still preview in each of MPLANE_FORMATS captures a real frame through the
# daemon's V4L2 backend (S_FMT with pix_mp, a v4l2_plane array per buffer,
# each plane mapped) and converts it: the bars must come out in their colours
# (a plane or the U and V mixed up would not).
api_multiplanar() {
    local dev path f src status size x i want got t0 t1 ms
    t0="$(now_ms)"
    dev="$(jq -c '[.devices[] | select(.driver == "vivid") | select([.formats[].format] | index("nv12m"))] | first // empty' "$WORK/discovery.json")"
    [ -n "$dev" ] || { api_fail "discovery lists no multi-planar vivid node (no nv12m offered): $(jq -c '[.devices[] | {node, formats: [.formats[].format]}]' "$WORK/discovery.json"), skipped $(jq -c .skipped "$WORK/discovery.json")"; return 1; }
    path="$(jq -r .path <<<"$dev")"
    api_pass "discovery: multi-planar vivid at $path (bus $(jq -r .bus_info <<<"$dev")), capturable $(jq -r '[.formats[].format | select(. != null)] | join(" ")' <<<"$dev")"
    # The bars of a 640-pixel row, 80 pixels each, sampled in their middle
    # below the text overlay: white, yellow, cyan, green, magenta, red, blue, black at 75%.
    want=(1 1 1  1 1 0  0 1 1  0 1 0  1 0 1  1 0 0  0 0 1  0 0 0)
    for f in $MPLANE_FORMATS; do
        src="$(jq -nc --arg d "$path" --arg f "$f" '{kind: "v4l2", device: $d, width: 640, height: 480, format: $f, fps: 25}')"
        t1="$(now_ms)"
        status="$(api POST /api/v1/cameras/preview "$src")"
        ms=$(( $(now_ms) - t1 ))
        expect_status 200 "$status" "preview of the multi-planar node in $f ($src)" || return 1
        cp "$API_BODY" "$WORK/preview-mplane-$f.jpg"
        size="$(ffprobe -v error -select_streams v:0 -show_entries stream=width,height -of csv=p=0:s=x "$WORK/preview-mplane-$f.jpg" 2>&1)"
        [ "$size" = 640x480 ] || { api_fail "the $f preview of the multi-planar node is $size, not 640x480"; return 1; }
        ffmpeg -nostdin -v error -y -i "$WORK/preview-mplane-$f.jpg" -f rawvideo -pix_fmt rgb24 "$WORK/preview-mplane-$f.rgb"
        for i in 0 1 2 3 4 5 6 7; do
            x=$(( i * 80 + 40 ))
            got="$(rgb_pixel "$WORK/preview-mplane-$f.rgb" "$x" 400)"
            # Each channel near 75% (191) where the bar has it, near 0 where not.
            awk -v g="$got" -v r="${want[$((i * 3))]}" -v gg="${want[$((i * 3 + 1))]}" -v b="${want[$((i * 3 + 2))]}" '
                function ok(v, on) { return on ? (v > 150 && v < 230) : (v < 50) }
                BEGIN { split(g, c, " "); exit !(ok(c[1], r) && ok(c[2], gg) && ok(c[3], b)) }' \
                || { api_fail "the $f preview's bar $i at x=$x is RGB $got, not the colour bar's ($WORK/preview-mplane-$f.jpg)"; return 1; }
        done
        api_pass "POST /api/v1/cameras/preview of the multi-planar node in $f: a $size JPEG in $ms ms, its 8 colour bars right ($WORK/preview-mplane-$f.jpg)"
    done
    T_MPLANE_MS=$(( $(now_ms) - t0 ))
}

# Adds the camera (PUT /api/v1/cameras/{id}) and waits until it is online.
api_add_camera() {
    local status i t0 state doc
    if [ "$SKIP_CAMERA_ADD" = 1 ]; then
        log "SAFEYOLO_VM_SKIP_CAMERA_ADD=1: the camera is NOT added (the test must fail)"
        api_note "camera add skipped (SAFEYOLO_VM_SKIP_CAMERA_ADD=1)"
        host_say "camera-set skipped=1"
        return 0
    fi
    local source="$API_CAMERA_SOURCE"
    # The replay negative check: the same footage from a file, not vivid.
    [ "$BREAK" = replay ] && source='{"kind": "replay", "path": "vtest.mjpeg"}'
    doc="$(jq -nc --argjson source "$source" '{doc: {name: "Walkway (vivid)", source: $source}}')"
    t0="$(now_ms)"
    status="$(api PUT "/api/v1/cameras/$CAMERA_ID" "$doc")"
    expect_status 200 "$status" "camera $CAMERA_ID" || return 1
    api_pass "PUT /api/v1/cameras/$CAMERA_ID (version $(body .version)): $source"
    for i in $(seq 1 120); do
        status="$(api GET /api/v1/cameras)"
        [ "$status" = 200 ] || { api_fail "GET /api/v1/cameras: HTTP $status"; return 1; }
        state="$(body -r --arg id "$CAMERA_ID" '.health[]? | select(.id == $id) | .state')"
        [ "$state" = online ] && break
        [ "$i" -eq 120 ] || sleep 0.5
    done
    [ "$state" = online ] || { api_fail "camera $CAMERA_ID not online 60 s after the PUT: $(body -c .health)"; return 1; }
    T_CAMERA_ONLINE_MS=$(( $(now_ms) - t0 ))
    [ "$(body -c '[.running[].id]')" = "[\"$CAMERA_ID\"]" ] \
        || { api_fail "running cameras after the PUT: $(body -c '[.running[].id]')"; return 1; }
    api_pass "camera $CAMERA_ID online $(awk -v m="$T_CAMERA_ONLINE_MS" 'BEGIN{printf "%.1f", m/1000}') s after the PUT (its first frame; polled every 0.5 s)"
    host_say "camera-set"

    # A still preview of the device the camera now captures from is refused.
    status="$(api POST /api/v1/cameras/preview "$API_CAMERA_SOURCE")"
    if [ "$BREAK" != replay ]; then
        expect_status 409 "$status" "preview of the running camera's device" || return 1
        api_pass "preview of the running camera's device refused (HTTP 409: $(body .message))"
        # Discovery names the camera that holds the device.
        status="$(api GET /api/v1/cameras/discovery)"
        expect_status 200 "$status" "camera discovery with the camera running" || return 1
        [ "$(body -r '[.devices[] | select(.driver == "vivid")] | first | .in_use_by')" = "$CAMERA_ID" ] \
            || { api_fail "discovery does not show vivid in use by $CAMERA_ID: $(body -c '[.devices[] | {node, in_use_by}]')"; return 1; }
        api_pass "discovery: vivid in use by camera $CAMERA_ID"
    fi
    status="$(api GET /api/v1/system)"
    expect_status 200 "$status" "system" || return 1
    [ "$(body .guarding)" = true ] || { api_fail "not guarding with the camera added: $(body -c '{guarding, cameras}')"; return 1; }
    api_pass "GET /api/v1/system: guarding true"
}

# The zone and the first rule, once the guest checked the camera.
api_zone_and_rule() {
    local status zone_polygon line
    line="$(wait_step camera-checked)" || { api_fail "the guest did not report the camera check"; return 1; }
    case "$line" in
        *" opened=1 healthy=1 "*) ;;
        *) api_fail "the guest saw no camera capturing from vivid with the healthy line high: $line"; return 1 ;;
    esac
    # The forbidden zone: the walkway, the lower three quarters of the
    # picture, where people walk all along the footage. The negative check
    # puts it in a corner where nobody ever is.
    zone_polygon='[[0.0, 0.25], [1.0, 0.25], [1.0, 1.0], [0.0, 1.0]]'
    [ "$BREAK" = api-zone ] && zone_polygon='[[0.0, 0.0], [0.02, 0.0], [0.02, 0.02], [0.0, 0.02]]'
    status="$(api PUT "/api/v1/zones/$ZONE_ID" "$(jq -nc --arg cam "$CAMERA_ID" --argjson poly "$zone_polygon" \
        '{doc: {camera: $cam, name: "Forbidden walkway area", polygon: $poly, anchor: "feet"}}')")"
    expect_status 200 "$status" "zone $ZONE_ID" || return 1
    api_pass "zone $ZONE_ID defined (version $(body .version))"

    # min_frames = 1: an inference takes ~20 s under TCG; the rule logic
    # itself is tested elsewhere, this test is about the wiring.
    api_put_rule "$RULE_ID" "Person on the forbidden walkway" '["siren", "relay"]' || return 1

    status="$(api GET /api/v1/rules)"
    expect_status 200 "$status" "list rules" || return 1
    [ "$(body -c '[.running[].id]')" = "[\"$RULE_ID\"]" ] \
        || { api_fail "running rules after the PUT: $(body -c '[.running[].id]')"; return 1; }
    api_pass "the running rules are exactly the API's: $RULE_ID"
    host_say "rules-set"
}

# api_put_rule ID NAME OUTPUTS_JSON: an intrusion rule on the zone.
api_put_rule() {
    local status
    status="$(api PUT "/api/v1/rules/$1" "$(jq -nc --arg name "$2" --arg zone "$ZONE_ID" --argjson outputs "$3" \
        '{doc: {name: $name, kind: "intrusion", zone: $zone, severity: "critical",
                min_frames: 1, cooldown_s: 600, outputs: $outputs}}')")"
    expect_status 200 "$status" "rule $1" || return 1
    api_pass "intrusion rule $1 defined"
}

# api_wait_event RULE QUERY COND WHAT: polls GET /api/v1/events?rule=RULE&QUERY
# (up to 60 s: the alarm is raised before its event is stored) until the
# newest event satisfies the jq condition COND; sets $API_EVENT_ID.
api_wait_event() {
    local status i
    API_EVENT_ID=""
    for i in $(seq 1 60); do
        status="$(api GET "/api/v1/events?rule=$1$2")"
        [ "$status" = 200 ] || { api_fail "GET /api/v1/events: HTTP $status: $(head -c 300 "$API_BODY")"; return 1; }
        if [ "$(body ".events[0] // {} | $3")" = true ]; then
            API_EVENT_ID="$(body '.events[0].id')"
            return 0
        fi
        [ "$i" -eq 60 ] || sleep 1
    done
    api_fail "no event of rule $1 $4 in GET /api/v1/events (last: $(body -c '.events[0] // {} | {id, kind, zone, state, by, acknowledged}'))"
}

# After the guest saw the alarm: find the event, acknowledge it through the
# API, then define the second rule whose alarm the ack button silences.
api_event_and_ack() {
    local status
    local line
    line="$(wait_step alarm-on)" || { api_fail "the guest did not report the first alarm"; return 1; }
    case "$line" in
        *" alarm=1 "*) ;;
        *) api_fail "the guest saw no alarm for rule $RULE_ID: $line"; return 1 ;;
    esac
    api_wait_event "$RULE_ID" "&state=open" \
        ".kind == \"intrusion\" and .zone == \"$ZONE_ID\" and .camera == \"walkway\" and .state == \"active\"" \
        "that is an active intrusion in zone $ZONE_ID on camera walkway" || return 1
    API_EVENT1="$API_EVENT_ID"
    api_pass "GET /api/v1/events: event $API_EVENT1, active intrusion of rule $RULE_ID in zone $ZONE_ID"

    status="$(api POST "/api/v1/events/$API_EVENT1/ack")"
    expect_status 200 "$status" "acknowledge event $API_EVENT1" || return 1
    case "$(body .state)/$(body '.by // .acknowledged.by')" in
        acknowledged/"$API_USER" | cleared/"$API_USER") ;;
        *) api_fail "event $API_EVENT1 after the ack: $(body -c '{state, by, acknowledged}')"; return 1 ;;
    esac
    api_pass "POST /api/v1/events/$API_EVENT1/ack: $(body .state) by $API_USER"
    host_say "acked event=$API_EVENT1"

    wait_step api-ack-checked >/dev/null || { api_fail "the guest did not check the API acknowledgement"; return 1; }
    api_put_rule "$RULE2_ID" "Person on the walkway (button check)" '["siren"]' || return 1
    host_say "rule2-set"
}

# After the guest pressed the ack button: the API shows the second event
# acknowledged by the button.
api_button_event() {
    wait_step button-checked >/dev/null || { api_fail "the guest did not report the button check"; return 1; }
    api_wait_event "$RULE2_ID" "" \
        "(.state == \"acknowledged\" or .state == \"cleared\") and (.by // .acknowledged.by) == \"ack-button\"" \
        "acknowledged by the ack button" || return 1
    API_EVENT2="$API_EVENT_ID"
    api_pass "GET /api/v1/events: event $API_EVENT2 of rule $RULE2_ID $(body '.events[0].state') by the ack button"
    host_say "events-checked"
}

# The guard door: a door_open rule on the walkway camera tripping the stop
# relay; the guest opens the door contact (gpio-sim), the host finds the event.
api_door() {
    local status
    status="$(api PUT "/api/v1/rules/$DOOR_RULE_ID" "$(jq -nc \
        '{doc: {name: "Guard door open", kind: "door_open", camera: "walkway", severity: "critical",
                open_after_s: 0, outputs: ["relay"]}}')")"
    expect_status 200 "$status" "rule $DOOR_RULE_ID" || return 1
    api_pass "door_open rule $DOOR_RULE_ID defined"
    host_say "door-rule-set"
    wait_step door-checked >/dev/null || { api_fail "the guest did not report the door check"; return 1; }
    api_wait_event "$DOOR_RULE_ID" "" \
        ".kind == \"door_open\" and .camera == \"walkway\"" \
        "that is a door_open event on camera walkway" || return 1
    api_pass "GET /api/v1/events: event $API_EVENT_ID, door_open on camera walkway ($(body '.events[0].message'))"
    host_say "door-events-checked"
}

# The camera removed: a camera_offline rule first; after the guest unbound
# vivid, its event, and the API still answering.
api_camera_removed() {
    local status t0 uptime_before
    status="$(api GET /api/v1/system)"
    expect_status 200 "$status" "system before the camera removal" || return 1
    uptime_before="$(body .uptime_s)"
    status="$(api PUT "/api/v1/rules/$OFFLINE_RULE_ID" "$(jq -nc --arg cam "$CAMERA_ID" \
        '{doc: {name: "Walkway camera offline", kind: "camera_offline", camera: $cam, severity: "critical",
                offline_after_s: 2, outputs: ["siren"]}}')")"
    expect_status 200 "$status" "rule $OFFLINE_RULE_ID" || return 1
    api_pass "camera_offline rule $OFFLINE_RULE_ID defined"
    host_say "offline-rule-set"
    wait_step camera-removed >/dev/null || { api_fail "the guest did not report the camera removal"; return 1; }
    t0="$(now_ms)"
    api_wait_event "$OFFLINE_RULE_ID" "" \
        ".kind == \"camera_offline\" and .camera == \"$CAMERA_ID\"" \
        "that is a camera_offline event on camera $CAMERA_ID" || return 1
    T_OFFLINE_EVENT_MS=$(( $(now_ms) - t0 ))
    api_pass "GET /api/v1/events: event $API_EVENT_ID, camera_offline on camera $CAMERA_ID ($(body '.events[0].message'))"
    status="$(api GET /api/v1/system)"
    expect_status 200 "$status" "system after the camera removal" || return 1
    [ "$(body -r --arg id "$CAMERA_ID" '.cameras[] | select(.id == $id) | .state')" = offline ] \
        || { api_fail "camera $CAMERA_ID not offline in GET /api/v1/system: $(body -c .cameras)"; return 1; }
    [ "$(body .uptime_s)" -ge "$uptime_before" ] 2>/dev/null \
        || { api_fail "the API restarted with the camera removal: uptime_s $(body .uptime_s), before it $uptime_before"; return 1; }
    api_pass "GET /api/v1/system answers with the camera gone, no restart (uptime $(body .uptime_s) s): $CAMERA_ID offline ($(body -r --arg id "$CAMERA_ID" '.cameras[] | select(.id == $id) | .reason'))"
    host_say "offline-checked"
}

# All the host's steps, in order; stops at the first failure (which tells
# the guest to abort).
api_steps() {
    API_BODY="$WORK/api-body.json"
    API_LOG="$WORK/api.log"
    API_CERT="$WORK/api-cert.pem"
    : >"$API_LOG"
    api_setup_and_login && api_as_flashed && api_discover && api_preview && api_multiplanar && api_add_camera \
        && api_zone_and_rule && api_event_and_ack && api_button_event && api_door && api_camera_removed
}
