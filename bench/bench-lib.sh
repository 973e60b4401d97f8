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
