#!/usr/bin/env bash
# Calibrate the regression gate on this machine: how often it fails identical code
# (false alarms) and how often it catches a known slowdown. See docs/gate-calibration.md.
#
#   bash docs/examples/calibrate_gate.sh OUT_DIR [PAIRS] [AB_PAIRS] [THREADS] [AUTO_PAIRS] [AUTO_GRID]
#
# Run it in a clean clone whose working tree equals HEAD (the A/B parts compare HEAD
# with the working tree). PAIRS (default 10) single-run pairs: sweeps A, S (20% slower
# unified cases) and B of the sweep below; the gate on A->B and B->A (A/A, both orders)
# and on A->S or B->S (the sweep beside S, alternately). AB_PAIRS (default 10) pairs of
# `ab HEAD --rounds 4` on the README's restricted quick grid: A/A, then a uniform 10%
# slowdown. AUTO_PAIRS (default 0) triples of `ab HEAD --rounds auto` (adaptive rounds,
# the default --max-rounds) on AUTO_GRID: tiny (default: the single-run sweep below) or
# quick (the quick preset): A/A, the unified cases 20% slower, every case 10% slower.
# THREADS, when given, adds --meprop-threads THREADS to the single-run sweeps and the
# adaptive A/Bs (left out: torch's default, every core). Every gate exit code goes to
# OUT_DIR/results.tsv, with the rounds adaptive A/Bs used; the tally is printed.
# Exit 1 on an A/A comparison is a false alarm, on a slowed one a catch; exit 3
# (undecided) is neither: the runs could not tell a change from machine state.
set -uo pipefail

OUT=${1:?usage: calibrate_gate.sh OUT_DIR [PAIRS] [AB_PAIRS] [THREADS] [AUTO_PAIRS] [AUTO_GRID]}
PAIRS=${2:-10}
AB_PAIRS=${3:-10}
THREADS=${4:-}
AUTO_PAIRS=${5:-0}
AUTO_GRID=${6:-tiny}
TINY=(--meprop-widths 512 --meprop-batches 64 --meprop-ks 0.05 --meprop-methods dense,unified,topk)
SWEEP=(suites --benchmark-only "${TINY[@]}" -q -p no:cacheprovider)
case "$AUTO_GRID" in
    tiny) AUTO_ARGS=("${TINY[@]}") ;;
    quick) AUTO_ARGS=(--meprop-preset quick) ;;
    *) echo "AUTO_GRID must be tiny or quick, got $AUTO_GRID" >&2; exit 2 ;;
esac
if [ -n "$THREADS" ]; then
    SWEEP+=(--meprop-threads "$THREADS")
    AUTO_ARGS+=(--meprop-threads "$THREADS")
fi
AB_GRID=(-- -k test_backward --meprop-preset quick --meprop-widths 256,1024
         --meprop-grads gaussian --meprop-ks 0.01
         --meprop-methods dense,unified/compact,topk/masked --meprop-threads 1)
SLOW_UNIFIED=(MEPROP_BENCH_SLOWDOWN=0.2 MEPROP_BENCH_SLOWDOWN_METHODS=unified)
declare -A AUTO_ENV=(
    [auto-aa]=""
    [auto-unified-20pct]="--candidate-env MEPROP_BENCH_SLOWDOWN=0.2 --candidate-env MEPROP_BENCH_SLOWDOWN_METHODS=unified"
    [auto-uniform-10pct]="--candidate-env MEPROP_BENCH_SLOWDOWN=0.10"
)

mkdir -p "$OUT/sweeps" "$OUT/gates" || exit 2
[ -e "$OUT/results.tsv" ] && { echo "$OUT/results.tsv exists; choose a new OUT_DIR" >&2; exit 2; }
printf 'part\tpair\texit\tseconds\tload1\trounds\n' > "$OUT/results.tsv"

record() {  # part pair exit seconds [rounds]
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$(cut -d' ' -f1 /proc/loadavg)" \
        "${5:-}" >> "$OUT/results.tsv"
}

sweep() {  # json [VAR=VALUE...]
    local json=$1; shift
    env "$@" python -m pytest "${SWEEP[@]}" --benchmark-json "$json" > "$json.log" 2>&1 \
        || { echo "sweep $json failed; see $json.log" >&2; exit 2; }
}

gate() {  # part pair baseline candidate
    local name="$OUT/gates/$1-$2" start=$SECONDS code
    python -m meprop_bench.gate "$3" "$4" --json "$name.json" > "$name.md" 2> "$name.err"
    code=$?
    record "$1" "$2" "$code" $((SECONDS - start))
}

for i in $(seq 1 "$PAIRS"); do
    s="$OUT/sweeps/$i"
    sweep "$s-A.json"
    sweep "$s-S.json" "${SLOW_UNIFIED[@]}"
    sweep "$s-B.json"
    gate single-aa "$i" "$s-A.json" "$s-B.json"
    gate single-aa-reversed "$i" "$s-B.json" "$s-A.json"
    beside=$([ $((i % 2)) = 1 ] && echo A || echo B)
    gate single-unified-20pct "$i" "$s-$beside.json" "$s-S.json"
    echo "single-run pair $i/$PAIRS done at $(date +%T)" >&2
done

for i in $(seq 1 "$AB_PAIRS"); do
    for part in ab4-aa ab4-uniform-10pct; do
        env=()
        [ "$part" = ab4-uniform-10pct ] && env=(--candidate-env MEPROP_BENCH_SLOWDOWN=0.10)
        start=$SECONDS
        python -m meprop_bench.ab HEAD --rounds 4 --out "$OUT/$part-$i" "${env[@]}" \
            "${AB_GRID[@]}" > "$OUT/$part-$i.md" 2> "$OUT/$part-$i.err"
        record "$part" "$i" $? $((SECONDS - start))
    done
    echo "ab pair $i/$AB_PAIRS done at $(date +%T)" >&2
done

for i in $(seq 1 "$AUTO_PAIRS"); do
    for part in auto-aa auto-unified-20pct auto-uniform-10pct; do
        read -r -a env <<< "${AUTO_ENV[$part]}"
        start=$SECONDS
        python -m meprop_bench.ab HEAD --rounds auto --out "$OUT/$part-$i" "${env[@]}" \
            -- "${AUTO_ARGS[@]}" > "$OUT/$part-$i.md" 2> "$OUT/$part-$i.err"
        code=$?
        rounds=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["sequential"]["rounds"])' \
            "$OUT/$part-$i/gate.json" 2> /dev/null)
        record "$part" "$i" "$code" $((SECONDS - start)) "$rounds"
    done
    echo "adaptive triple $i/$AUTO_PAIRS done at $(date +%T)" >&2
done

# exit codes: 0 pass, 1 regression, 2 unusable, 3 undecided; rounds of adaptive A/Bs
awk -F'\t' 'NR > 1 { n[$1]++; c[$1 FS $3]++; s[$1] += $4 }
    END { for (p in n) printf "%-22s n=%-3d pass=%-3d regression=%-3d undecided=%-3d unusable=%-3d seconds=%d\n",
          p, n[p], c[p FS 0], c[p FS 1], c[p FS 3], c[p FS 2], s[p] }' "$OUT/results.tsv" | sort
python - "$OUT/results.tsv" <<'PY'
import csv, statistics, sys
rounds = {}
for row in csv.DictReader(open(sys.argv[1]), delimiter="\t"):
    if row["rounds"]:
        rounds.setdefault(row["part"], []).append(int(row["rounds"]))
for part, used in sorted(rounds.items()):
    print(f"{part:<22} rounds: median {statistics.median(used):g}, largest {max(used)}")
PY
