#!/usr/bin/env bash
# setup.sh: install the Debian packages gst-simclr needs when they are missing,
# then configure and build into ./build. Idempotent: when everything is there
# it only runs ninja. Usage: scripts/setup.sh [--tests] [--data] [--main] [--fuzz] [--soak]
#   --tests  also install what the test suite needs (PyTorch for cross-checks,
#            the data sets and sample videos the tests read)
#   --data   also install the data sets (Fashion-MNIST, OpenCV's samples)
#   --main   what the main job (scripts/run-main.sh) needs: Fashion-MNIST and
#            matplotlib for its curve; builds only the plugin and the tools
#            (the full build, tests included, is `ninja -C build`)
#   --fuzz   also install clang 14 with libFuzzer and the LLVM symbolizer
#            (scripts/fuzz.sh); the default build does not need them
#   --soak   also install what bench/soak.sh needs to plot (matplotlib)
set -euo pipefail
cd "$(dirname "$0")/.."

want_tests=0
want_data=0
want_main=0
want_fuzz=0
want_soak=0
for arg in "$@"; do
  case "$arg" in
    --tests) want_tests=1; want_data=1 ;;
    --data) want_data=1 ;;
    --main) want_main=1 ;;
    --fuzz) want_fuzz=1 ;;
    --soak) want_soak=1; want_data=1 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

pkgs=(gcc libc6-dev pkgconf meson ninja-build libglib2.0-dev
      libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
      gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-libav
      libopenblas-dev libturbojpeg0-dev libjson-glib-dev zlib1g-dev
      libopenmpi-dev openmpi-bin)
if [ "$want_data" = 1 ]; then
  pkgs+=(dataset-fashion-mnist opencv-doc)
fi
if [ "$want_main" = 1 ]; then
  pkgs+=(dataset-fashion-mnist python3-matplotlib)
fi
if [ "$want_tests" = 1 ]; then
  # PyTorch reference checks and the plotting/eval scripts.
  pkgs+=(python3-torch python3-torchvision python3-numpy python3-pil)
fi
if [ "$want_fuzz" = 1 ]; then
  # libclang-rt-14-dev holds libFuzzer; Debian's clang does not pull it in.
  pkgs+=(clang libclang-rt-14-dev llvm)
fi
if [ "$want_soak" = 1 ]; then
  pkgs+=(python3-matplotlib)
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi

if [ ! -f build/build.ninja ]; then
  meson setup build
fi
if [ "$want_main" = 1 ] && [ "$want_tests" = 0 ]; then
  # The main job's programs only: about half the build of everything.
  ninja -C build plugins/libgstsimclr.so tools/simclr-lineval tools/simclr-split
else
  ninja -C build
fi
