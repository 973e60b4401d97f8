# env.sh: source this before running gst-simclr programs.
# OpenBLAS 0.3.21 does not recognise some AVX-512 CPUs (family 6 model 207
# among them) and falls back to its slow "Prescott" kernel; the kernel is fixed
# when the library loads, so the choice must be in the environment first. We
# only set it when the user has not, and only on AVX-512 CPUs, where SkylakeX
# is the right kernel; other CPUs (e.g. AMD Zen, picked as "Zen") are left alone.
if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
  export OPENBLAS_CORETYPE=SkylakeX
fi
