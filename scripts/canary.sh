#!/usr/bin/env bash
# Upgrade canary (not part of the test run): a fresh venv with the NEWEST releases pyproject.toml allows, the fast
# tests there, and a report of which packages differ from requirements.lock and what failed. An upgrade is then a
# deliberate commit (bash scripts/lock.sh --upgrade-package NAME), never a surprise in CI.
#   bash scripts/canary.sh [extra pytest args]      # report in $CANARY_DIR (default: a new temp folder)
set -uo pipefail
cd "$(dirname "$0")/.."
work=${CANARY_DIR:-$(mktemp -d -t sora-canary-XXXX)}
mkdir -p "$work"
python3 -m venv "$work/venv" || exit 2
# shellcheck disable=SC1091
. "$work/venv/bin/activate"
echo "torch==2.13.0" > "$work/torch.txt"   # an eager upgrade must never swap the CPU wheel for a CUDA build
{
  pip install -q torch==2.13.0 &&   # the local CPU wheel, as in the setup command
  pip install -q --upgrade --upgrade-strategy eager -c "$work/torch.txt" -e ".[dev]"
} > "$work/install.log" 2>&1 || { echo "canary: install failed, see $work/install.log"; tail -20 "$work/install.log"; exit 2; }
pip freeze --exclude-editable > "$work/freeze.txt"
pip list --outdated --format json --exclude-editable > "$work/outdated.json" 2>/dev/null || echo "[]" > "$work/outdated.json"
python - "$work/freeze.txt" requirements.lock "$work/outdated.json" <<'PY' | tee "$work/report.txt"
import json, re, sys
def pins(path):
    found = {}
    for line in open(path):
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)", line)
        if m:
            found[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return found
latest, locked = pins(sys.argv[1]), pins(sys.argv[2])
changed = sorted((n, locked[n], v) for n, v in latest.items() if n in locked and locked[n] != v)
added = sorted(n for n in latest if n not in locked and n != "torch")
print(f"canary: {len(changed)} packages newer than the lock" + (":" if changed else ""))
for name, old, new in changed:
    print(f"  {name}: {old} -> {new}")
if added:
    print("  not in the lock: " + ", ".join(added))
held = sorted((re.sub(r"[-_.]+", "-", o["name"]).lower(), o["version"], o["latest_version"])
              for o in json.load(open(sys.argv[3])))
held = [h for h in held if h[0] != "torch" and h[0] != "pip"]
print(f"canary: {len(held)} newer releases not installable within the ranges (ours or a dependency's)"
      + (":" if held else ""))
for name, allowed, latest in held:
    print(f"  {name}: newest allowed {allowed}, newest released {latest}")
PY
python -m pytest -q -m "not slow" -p no:cacheprovider "$@" > "$work/pytest.log" 2>&1
code=$?
grep -E "^(FAILED|ERROR)" "$work/pytest.log" | tee -a "$work/report.txt"
tail -1 "$work/pytest.log" | tee -a "$work/report.txt"
echo "canary: report in $work/report.txt (pytest exit $code)"
exit $code
