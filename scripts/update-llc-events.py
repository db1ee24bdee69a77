#!/usr/bin/env python3
"""Regenerates data/x86-llc-events.json from Linux's perf event lists.

Usage: scripts/update-llc-events.py LINUX_SOURCE_DIR [--commit HASH]

LINUX_SOURCE_DIR is a checkout of the Linux kernel (for example
`git clone --depth 1 https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git`).
The selection (which events stand in for which generic counter on which
model, and why) is kept from the current data file; the event fields are
read again from tools/perf/pmu-events/arch/x86/<model>/*.json and each
model's pattern from mapfile.csv. An event the JSON no longer has is an
error, so a rename upstream is seen, not silently dropped.
"""
import csv
import glob
import json
import os
import subprocess
import sys

FIELDS = ["EventName", "EventCode", "UMask", "CounterMask", "Invert", "EdgeDetect",
          "MSRValue", "Unit", "BriefDescription"]
DATA = os.path.join(os.path.dirname(__file__), "..", "data", "x86-llc-events.json")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    linux = sys.argv[1]
    commit = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--commit" else None
    if commit is None:
        try:
            commit = subprocess.run(["git", "-C", linux, "rev-parse", "HEAD"], check=True,
                                    capture_output=True, text=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            commit = None
    arch = os.path.join(linux, "tools", "perf", "pmu-events", "arch", "x86")
    patterns = {}
    with open(os.path.join(arch, "mapfile.csv")) as f:
        for row in csv.DictReader(f):
            patterns.setdefault(row["Filename"], row["Family-model"])
    with open(DATA) as f:
        data = json.load(f)
    for model in data["models"]:
        name = model["model"]
        if name not in patterns:
            sys.exit(f"{name}: not in mapfile.csv")
        model["mapfile"] = patterns[name]
        wanted = [e["EventName"] for e in model["events"]]
        found = {}
        files = sorted(glob.glob(os.path.join(arch, name, "*.json")))
        for path in files:
            with open(path) as f:
                for event in json.load(f):
                    if event.get("EventName") in wanted and event["EventName"] not in found:
                        found[event["EventName"]] = (event, os.path.relpath(path, arch))
        missing = [w for w in wanted if w not in found]
        if missing:
            sys.exit(f"{name}: no event {', '.join(missing)} in {name}/*.json")
        model["events"] = [{k: found[w][0][k] for k in FIELDS if k in found[w][0]} for w in wanted]
        if wanted:
            model["file"] = found[wanted[0]][1]
            model["commit"] = commit
    with open(DATA, "w") as f:
        json.dump(data, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
