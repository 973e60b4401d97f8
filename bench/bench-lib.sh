# bench-lib.sh: shell helpers shared by the benchmark scripts (sourced).

# stats VALUES...: "min median max" of the numbers
stats () {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%.1f %.1f %.1f", v[1], m, v[NR] }'
}

# sustained_views METRICS_CSV: the pipeline's sustained views/s, the mean of
# the sink's per-interval rate (column 7) after the first two intervals
# (start-up: data set load, model set-up); "nan" if there is none.
sustained_views () {
  local v
  v=$(awk -F, 'NR > 3 { s += $7; n++ } END { if (n) printf "%.1f", s / n; else print "nan" }' \
    "$1" 2>/dev/null)
  echo "${v:-nan}"
}

# work_cpu LOG STEPS: from a pipeline log written with
# GST_DEBUG=simclrencoder:4 and SIMCLR_MPI_STATS=1, each process's CPU
# milliseconds per step of work: every thread's CPU (the encoder's "thread
# CPU" line at EOS) minus the CPU its MPI collectives polled away
# (simclr-mpi lines), over STEPS (set-up included, the same for both sides
# of an A/B). Less sensitive to other jobs on the cores than views/s: a
# process that waits for the CPU, or polls for another rank, adds none.
# Prints "mean max" over the ranks ("nan nan" if the lines are missing).
work_cpu () {
  awk -v steps="$2" '
    /thread CPU, rank [0-9]+ of/ {
      r = $0; sub(/.*thread CPU, rank /, "", r); r = r + 0
      line = $0
      while (match(line, /\[[^]]* [0-9.]+ s\]/)) {
        f = substr(line, RSTART, RLENGTH); line = substr(line, RSTART + RLENGTH)
        n = split(f, w, " "); cpu[r] += w[n - 1]; seen[r] = 1
      }
    }
    /simclr-mpi: rank [0-9]+ of [0-9]+: .* s CPU/ {
      r = $0; sub(/.*simclr-mpi: rank /, "", r); r = r + 0
      c = $0; sub(/ s CPU.*/, "", c); sub(/.* /, "", c); mpi[r] += c
    }
    END {
      for (r in seen) { v = 1e3 * (cpu[r] - mpi[r]) / steps; s += v; k++; if (v > mx) mx = v }
      if (k) printf "%.1f %.1f", s / k, mx; else print "nan nan"
    }' "$1"
}
