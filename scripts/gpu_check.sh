#!/usr/bin/env bash
# scripts/gpu_check.sh OUTDIR — the whole GPU check on a fresh GPU machine, in one call:
#   1. build medkern in place with CUDA for the detected architecture (e.g. sm_90 on H100/H200;
#      override with MEDKERN_CUDA_ARCH=80), Release, ninja -j16
#   2. print medkern.info()
#   3. pytest -m "cuda and not slow" (junit xml in OUTDIR); the slow ones (training parity) run last
#   4. GPU benchmarks (scripts/gpu_bench.py -> OUTDIR/gpu_bench.json) and the per-kernel device
#      time of each benchmark convolution (scripts/gpu_conv_profile.py -> OUTDIR/gpu_conv_profile.json;
#      the 3-D layers by default, GPU_PROFILE_DIMS=2,3 for the 2-D ones too)
#   5. compute-sanitizer memcheck over scripts/sanitizer_driver.py (every CUDA op once), and
#      racecheck over the shared-memory kernels (conv2d, conv3d, linear, batch_norm, group norm, preprocess statistics)
#   6. pytest -m "cuda and slow"
# and writes OUTDIR/results.json (per-step verdicts, test counts, bench summary) and
# OUTDIR/gpu_check.log. A failing step is recorded and the next one runs; the exit status is
# nonzero if any step failed. Steps share a time budget (GPU_CHECK_BUDGET_S, default 540 s) so
# the run stays inside a 10-minute call; a step that no longer fits is recorded as skipped.
# GPU_CHECK_SKIP="step step" leaves steps out (recorded as not run); GPU_RACECHECK_ONLY narrows the
# float32 racecheck to some families (a rerun after changing only those kernels).
# On the device machine: `scripts/gpu_check.sh "$OUT"` (about 5-7 minutes; timeout_s 600).
set -u -o pipefail

OUTDIR=${1:?usage: scripts/gpu_check.sh OUTDIR}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
exec > >(tee "$OUTDIR/gpu_check.log") 2>&1

BUDGET=${GPU_CHECK_BUDGET_S:-540}
START=$(date +%s)
STATUS_FILE="$OUTDIR/steps.tsv"
: > "$STATUS_FILE"
FAILED=0
export PYTHONPATH="$ROOT/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
PY=${PYTHON:-python3}

elapsed() { echo $(( $(date +%s) - START )); }

# run_step NAME TIMEOUT_S CMD... : runs CMD with the smaller of TIMEOUT_S and the budget left,
# records pass / fail(rc) / timeout / skipped in steps.tsv, never stops the script.
run_step() {
  local name=$1 limit=$2; shift 2
  if [[ " ${GPU_CHECK_SKIP:-} " == *" $name "* ]]; then
    echo "=== $name: not run (GPU_CHECK_SKIP)"
    printf '%s\tnot run\t0\n' "$name" >> "$STATUS_FILE"
    return
  fi
  local left=$(( BUDGET - $(elapsed) ))
  if (( left < 20 )); then
    echo "=== $name: SKIPPED (time budget spent: $(elapsed)s of ${BUDGET}s)"
    printf '%s\tskipped\t0\n' "$name" >> "$STATUS_FILE"
    FAILED=1
    return
  fi
  (( limit > left )) && limit=$left
  echo "=== $name (limit ${limit}s, at $(elapsed)s)"
  local t0=$(date +%s) rc
  timeout --kill-after=10 "$limit" "$@"
  rc=$?
  local dt=$(( $(date +%s) - t0 )) verdict=pass
  if (( rc == 124 || rc == 137 )); then verdict=timeout; elif (( rc != 0 )); then verdict="fail($rc)"; fi
  [[ $verdict != pass ]] && FAILED=1
  echo "=== $name: $verdict in ${dt}s"
  printf '%s\t%s\t%s\n' "$name" "$verdict" "$dt" >> "$STATUS_FILE"
}

# The device image's default compiler (CXX=/opt/gcc/bin/g++) brings a libstdc++ that clashes with
# torch's when both are loaded in one process (segfault inside iostream code, 2026-11-26); the
# system compiler, which torch's libstdc++ comes with, does not. MEDKERN_CXX overrides.
if [[ -n ${MEDKERN_CXX:-} ]]; then
  export CXX=$MEDKERN_CXX CUDAHOSTCXX=$MEDKERN_CXX
elif [[ -x /usr/bin/g++ ]]; then
  export CXX=/usr/bin/g++ CC=/usr/bin/gcc CUDAHOSTCXX=/usr/bin/g++
fi

# ---- 1. build --------------------------------------------------------------------------------
ARCH=${MEDKERN_CUDA_ARCH:-}
if [[ -z $ARCH ]]; then
  ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
fi
if [[ -z $ARCH ]]; then
  ARCH=$($PY -c "import torch; m, n = torch.cuda.get_device_capability(); print(f'{m}{n}')" 2>/dev/null)
fi
ARCH=${ARCH:-90}
echo "medkern gpu_check: CUDA architecture sm_$ARCH, budget ${BUDGET}s, output $OUTDIR"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || true

PYBIND11_DIR=$($PY -c "import pybind11; print(pybind11.get_cmake_dir())")
# (no exported shell functions or extra variables: the child processes see a plain environment)
run_step build 300 bash -c "cmake -S . -B build-gpu -G Ninja -DMEDKERN_DEV_INPLACE=ON -DMEDKERN_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=$ARCH -DCMAKE_BUILD_TYPE=Release -Dpybind11_DIR=$PYBIND11_DIR \
  -DPython_EXECUTABLE=$(command -v $PY) && ninja -C build-gpu -j16"

# ---- 2. info ---------------------------------------------------------------------------------
run_step info 60 $PY -c "import json, medkern; print(json.dumps(medkern.info(), indent=1, default=str))"

# ---- 3. tests --------------------------------------------------------------------------------
run_step pytest 160 $PY -m pytest -m "cuda and not slow" -q tests -p no:cacheprovider \
  --junitxml="$OUTDIR/junit.xml" -o junit_family=xunit2

# ---- 4. benchmarks (before the sanitizers: the numbers matter most when time runs short) -------
run_step bench 170 env PYTHONPATH="$ROOT:$PYTHONPATH" $PY scripts/gpu_bench.py "$OUTDIR" --repeat 3
run_step models 120 env PYTHONPATH="$ROOT:$PYTHONPATH" $PY benchmarks/bench_models.py --device cuda \
  --models seedcnn,resnet18_224 --modes train,infer --no-compile --repeat 10 --json "$OUTDIR/bench_models.json"
run_step conv_profile 60 env PYTHONPATH="$ROOT:$PYTHONPATH" $PY scripts/gpu_conv_profile.py "$OUTDIR" --iters 3 --dims "${GPU_PROFILE_DIMS:-3}"

# ---- 5. sanitizers ---------------------------------------------------------------------------
SANITIZER=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer 2>/dev/null | head -1)
if [[ -n $SANITIZER ]]; then
  # without torch's caching allocator every tensor is its own allocation, so memcheck sees
  # out-of-bounds accesses that would otherwise land inside a cached block
  run_step memcheck 120 env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$SANITIZER" --tool memcheck --error-exitcode 99 \
    --print-limit 20 $PY scripts/sanitizer_driver.py
  # racecheck is slow (every shared-memory access is tracked): float32 (which includes the TF32
  # pipeline) and the 16-bit tensor-core kernels as two steps, so one timing out still leaves the other
  run_step racecheck 150 "$SANITIZER" --tool racecheck --error-exitcode 99 --print-limit 20 \
    $PY scripts/sanitizer_driver.py --only "${GPU_RACECHECK_ONLY:-conv2d,conv3d,linear,batch_norm,norm_act,preprocess}" --dtypes float32
  run_step racecheck_16bit 100 "$SANITIZER" --tool racecheck --error-exitcode 99 --print-limit 20 \
    $PY scripts/sanitizer_driver.py --only conv2d,linear,batch_norm --dtypes float16
else
  echo "=== memcheck / racecheck: compute-sanitizer not found (recorded as unavailable)"
  printf 'memcheck\tunavailable\t0\nracecheck\tunavailable\t0\n' >> "$STATUS_FILE"
fi

# ---- 6. slow GPU tests (training parity), last: they are worth least per second ------------------
# (pytest's exit status 5, "no tests collected", is not a failure here)
run_step pytest_slow 150 bash -c '"$0" -m pytest -m "cuda and slow" -q tests -p no:cacheprovider \
  --junitxml="$1/junit_slow.xml" -o junit_family=xunit2; rc=$?; [ $rc -eq 5 ] && exit 0; exit $rc' "$PY" "$OUTDIR"

# ---- results.json ----------------------------------------------------------------------------
$PY - "$OUTDIR" "$ARCH" "$(elapsed)" <<'PYEOF' || FAILED=1
import json, pathlib, sys
import xml.etree.ElementTree as ET

out, arch, seconds = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
steps = {}
for line in (out / "steps.tsv").read_text().splitlines():
    name, verdict, dt = line.split("\t")
    steps[name] = {"verdict": verdict, "seconds": int(dt)}
tests = None
junits = [p for p in (out / "junit.xml", out / "junit_slow.xml") if p.exists()]
if junits:
    suites = []
    for path in junits:
        root = ET.parse(path).getroot()
        suites += [root] if root.tag == "testsuite" else list(root)
    count = lambda key: sum(int(s.get(key, 0)) for s in suites)
    tests = {"total": count("tests"), "failures": count("failures"), "errors": count("errors"),
             "skipped": count("skipped")}
    tests["passed"] = tests["total"] - tests["failures"] - tests["errors"] - tests["skipped"]
    tests["failed_names"] = [f"{c.get('classname')}::{c.get('name')}" for s in suites for c in s.iter("testcase")
                             if c.find("failure") is not None or c.find("error") is not None]
bench = None
if (out / "gpu_bench.json").exists():
    bench = json.loads((out / "gpu_bench.json").read_text())["summary"]
results = {"cuda_arch": arch, "seconds": seconds, "steps": steps, "tests": tests,
           "sanitizers": {k: steps.get(k, {}).get("verdict", "not run") for k in ("memcheck", "racecheck")},
           "bench": bench,
           "ok": all(s["verdict"] in ("pass", "unavailable", "not run") for s in steps.values())
                 and bool(tests) and tests["passed"] > 0 and not tests["failed_names"]}
(out / "results.json").write_text(json.dumps(results, indent=2))
print(json.dumps({k: v for k, v in results.items() if k != "tests"} | {"tests": tests and
      {k: v for k, v in tests.items() if k != "failed_names"}}, indent=1))
sys.exit(0 if results["ok"] else 1)
PYEOF

echo "gpu_check finished in $(elapsed)s: $([[ $FAILED == 0 ]] && echo ALL OK || echo SOMETHING FAILED)"
exit $FAILED
