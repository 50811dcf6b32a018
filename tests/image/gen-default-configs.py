#!/usr/bin/env python3
"""Generate or check the factory configuration shipped for each board.

For every board profile board/<name>.toml this writes
yocto/meta-safe-yolo/recipes-safe-yolo/safe-yolo-data/files/config/<name>.toml
from the template safe-yolo.toml.in next to it: `system.board`, the
detector backend and the `[outputs]` section (chip, siren/relay/healthy
lines, acknowledge button, door contact) come from the profile, so the
factory config always agrees with the board it is installed on. The
safe-yolo-data recipe installs the one for SAFE_YOLO_BOARD as
/etc/safe-yolo/safe-yolo.toml; the board crate's tests validate every
generated file with the daemon's own config parser.

    gen-default-configs.py           check: exit 1 if a generated file is stale
    gen-default-configs.py --write   regenerate them
    --boards DIR --out DIR           other folders (negative tests use copies)
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FILES = REPO / "yocto/meta-safe-yolo/recipes-safe-yolo/safe-yolo-data/files"
BACKENDS = {"rknn": "rknn", "onnxruntime-cuda": "onnxruntime", "onnxruntime": "onnxruntime", "tract": "tract"}


def line_ref(spec: dict) -> list[str]:
    out = [f'name = "{spec["name"]}"'] if "name" in spec else [f'offset = {spec["offset"]}']
    if spec.get("active_low"):
        out.append("active_low = true")
    return out


def outputs(profile: dict) -> str:
    gpio = profile["gpio"]
    chip = gpio["chip"]
    lines = gpio["lines"]
    out = ["[outputs]", 'backend = "gpio"', f'chip = "{chip}"', ""]
    skipped = []
    for role in ("siren", "relay", "healthy", "ack", "door"):
        spec = lines.get(role)
        if spec is None:
            continue
        if spec.get("chip", chip) != chip:
            skipped.append(f"# The {role} line is on chip {spec['chip']!r}; the outputs section drives one chip.")
            continue
        if role == "ack":
            out += ["[outputs.ack_button]", *line_ref(spec), "debounce_ms = 30", ""]
        elif role == "door":
            out += ["[outputs.door_contact]", *line_ref(spec), "debounce_ms = 50", ""]
        else:
            out += ["[[outputs.lines]]", f'id = "{role}"', f'role = "{role}"', *line_ref(spec)]
            if role == "siren":
                out.append('safe_state = "off"')
            out.append("")
    return "\n".join(skipped + ([""] if skipped else []) + out).rstrip() + "\n"


def render(template: str, profile: dict) -> str:
    return (
        template.replace("@BOARD@", profile["board"]["name"])
        .replace("@BACKEND@", BACKENDS[profile["accelerator"]["backend"]])
        .replace("@OUTPUTS@", outputs(profile))
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--boards", type=Path, default=REPO / "board")
    ap.add_argument("--out", type=Path, default=FILES / "config")
    ap.add_argument("--template", type=Path, default=FILES / "safe-yolo.toml.in")
    args = ap.parse_args()
    template = args.template.read_text()
    stale = []
    wanted = set()
    for board in sorted(args.boards.glob("*.toml")):
        profile = tomllib.loads(board.read_text())
        text = render(template, profile)
        target = args.out / board.name
        wanted.add(board.name)
        if args.write:
            args.out.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        elif not target.is_file() or target.read_text() != text:
            stale.append(f"{target} does not match board/{board.name}")
    for extra in sorted(p.name for p in args.out.glob("*.toml") if p.name not in wanted):
        if args.write:
            (args.out / extra).unlink()
        else:
            stale.append(f"{args.out / extra} has no board profile")
    if stale:
        for s in stale:
            print(f"gen-default-configs: {s}", file=sys.stderr)
        print("gen-default-configs: regenerate with: python3 tests/image/gen-default-configs.py --write", file=sys.stderr)
        return 1
    print(f"gen-default-configs: {'wrote' if args.write else 'up to date:'} {len(wanted)} factory configs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
