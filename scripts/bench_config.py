"""The benchmarks' daemon configuration: config/demo.toml's five replay cameras
with paths made absolute, a temporary state directory, and four bench-only
intrusion zones across each walkway (people walking along it enter and leave
them all the time, so alarms raise and clear often; no cooldown).

Used by scripts/bench-glass-to-output.sh (as a command, and for `log_fields`,
the one reader of the daemon's JSON log) and scripts/attack.py (as a module):

    python3 scripts/bench_config.py REPO WORK [--backend B] [--every N]
        [--workers N] [--threads N] [--bind ADDR] [--redirect ADDR]

writes WORK/bench.toml.
"""

import argparse
import json
import re


def log_fields(lines):
    """The fields of each of the daemon's JSON log lines (`--log-format json`);
    other lines are skipped."""
    for line in lines:
        try:
            v = json.loads(line)
        except ValueError:
            continue
        yield v.get("fields", v)


def bench_config(repo, work, backend=None, every=None, workers=None, threads=None,
                 bind="127.0.0.1:0", redirect=None):
    """Writes WORK/bench.toml and returns its path."""
    text = open(f"{repo}/config/demo.toml").read()
    text = text.replace('model = "../models/', f'model = "{repo}/models/')
    text = text.replace('state_dir = "../state/demo"', f'state_dir = "{work}/state"')
    text = text.replace('media_dir = "../demo-media"', f'media_dir = "{repo}/demo-media"')
    text = text.replace('sim_log = "../state/demo/outputs.jsonl"', f'sim_log = "{work}/state/outputs.jsonl"')
    api = f'bind = "{bind}"'
    if redirect:
        api += f'\nhttp_redirect_bind = "{redirect}"'
    text = text.replace('bind = "127.0.0.1:8443"', api)
    if backend:
        text = re.sub(r'backend = "auto"', f'backend = "{backend}"', text, count=1)
    if every:
        text = text.replace("detect_every = 2", f"detect_every = {every}")
    if workers:
        text = re.sub(r"(?m)^detect_workers = \d+", f"detect_workers = {workers}", text)
    if threads:
        text = re.sub(r"(?m)^threads = \d+", f"threads = {threads}", text)
    for i in range(1, 6):
        for k in range(4):
            x0, x1 = k * 0.25, (k + 1) * 0.25
            text += f'''
[[zones]]
id = "bench-strip-{i}-{k}"
camera = "walkway-{i}"
polygon = [[{x0}, 0.30], [{x1}, 0.30], [{x1}, 0.60], [{x0}, 0.60]]

[[rules]]
id = "bench-intrusion-{i}-{k}"
kind = "intrusion"
zone = "bench-strip-{i}-{k}"
min_frames = 1
severity = "warning"
cooldown_s = 0
clear_after_s = 0
outputs = ["siren"]
'''
    path = f"{work}/bench.toml"
    open(path, "w").write(text)
    return path


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("repo")
    ap.add_argument("work")
    for opt in ("--backend", "--every", "--workers", "--threads", "--redirect"):
        ap.add_argument(opt)
    ap.add_argument("--bind", default="127.0.0.1:0")
    a = ap.parse_args()
    bench_config(a.repo, a.work, a.backend, a.every, a.workers, a.threads, a.bind, a.redirect)
