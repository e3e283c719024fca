#!/usr/bin/env bash
# cuDNN for the optional cuDNN attention (cuda::attention_cudnn_*, RINGSCAN_WITH_CUDNN):
# the header-only cudnn-frontend travels with the repository's GPU dependencies
# (.gpu-deps/, git-ignored, carried to a GPU machine with no package registry);
# the cuDNN 9 library is the machine's own (the CUDA toolkit's, or the one inside
# a Python wheel such as torch's nvidia-cudnn).
#
#   scripts/cudnn-deps.sh fetch       here (with pip and a package index): download the
#                                     nvidia-cudnn-frontend wheel and unpack its include/ into
#                                     .gpu-deps/cudnn/frontend/include; copy cuDNN 9 headers into
#                                     .gpu-deps/cudnn/include (from the local CUDA toolkit, else
#                                     from the nvidia-cudnn-cu13 wheel), for a machine whose
#                                     cuDNN came without headers
#   scripts/cudnn-deps.sh cmake-args  on the machine that builds: print the CMake -D arguments
#                                     for its cuDNN (one line, on stdout), or nothing and a
#                                     message on stderr when there is none (exit 0 either way;
#                                     exit 1 only on a usage error). They leave
#                                     RINGSCAN_WITH_CUDNN at AUTO: an optional path never fails
#                                     a configure; CMakeCache.txt's RINGSCAN_CUDNN_ENABLED (and
#                                     RINGSCAN_CUDNN_WHY_OFF) says what was built. Add
#                                     -DRINGSCAN_WITH_CUDNN=ON to make it required.
#
# Where cmake-args looks for libcudnn.so.9, in order: $CUDNN_ROOT, $CUDA_HOME (default
# /usr/local/cuda), the system loader's cache (ldconfig), then python3's packages
# (nvidia.cudnn, i.e. nvidia/cudnn/lib, and torch/lib; $PYTHON picks the interpreter).
# Headers: those next to the library if it has them, else .gpu-deps/cudnn/include.
# The library is named by its real file (libcudnn.so.9 is enough: CMake links it by path),
# never through a symlink in another directory: libcudnn finds its sub-libraries
# (libcudnn_graph.so.9, the engines) through $ORIGIN, the directory it was loaded from.
#
# Environment: CUDNN_FRONTEND_VERSION (fetch; default 1.32.0, the version the code was
# compiled against first), CUDNN_HEADERS_FROM=wheel (fetch: take the headers from the
# nvidia-cudnn-cu13 wheel, ~500 MB download, even where the toolkit has them).
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest="$repo/.gpu-deps/cudnn"
python=${PYTHON:-python3}
cuda_home=${CUDA_HOME:-/usr/local/cuda}
say() { echo "cudnn-deps: $*" >&2; }

# Version "9.19.0" from a directory holding cudnn_version.h (empty if none).
header_version() {
  local f="$1/cudnn_version.h"
  [[ -f "$f" ]] || return 0
  awk '/^#define CUDNN_MAJOR /{a=$3} /^#define CUDNN_MINOR /{b=$3} /^#define CUDNN_PATCHLEVEL /{c=$3}
       END{if (a != "") printf "%s.%s.%s", a, b, c}' "$f"
}

# Unpack the members of wheel $1 under prefix $2 (a path inside the zip) into directory $3.
unpack_prefix() {
  "$python" - "$1" "$2" "$3" <<'PY'
import os, sys, zipfile
wheel, prefix, out = sys.argv[1], sys.argv[2], sys.argv[3]
n = 0
with zipfile.ZipFile(wheel) as z:
    for m in z.infolist():
        if not m.filename.startswith(prefix) or m.is_dir():
            continue
        rel = m.filename[len(prefix):]
        path = os.path.join(out, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with z.open(m) as src, open(path, "wb") as dst:
            dst.write(src.read())
        n += 1
print(n)
PY
}

fetch() {
  "$python" -m pip --version >/dev/null 2>&1 || { say "fetch needs pip ($python -m pip)"; return 1; }
  local tmp fe_version=${CUDNN_FRONTEND_VERSION:-1.32.0} wheel n
  tmp=$(mktemp -d) || return 1
  trap 'rm -rf "$tmp"' RETURN
  say "downloading nvidia-cudnn-frontend==$fe_version"
  "$python" -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp/fe" "nvidia-cudnn-frontend==$fe_version" \
    || { say "pip download nvidia-cudnn-frontend failed"; return 1; }
  wheel=$(ls "$tmp"/fe/nvidia_cudnn_frontend-*.whl 2>/dev/null | head -1)
  [[ -n "$wheel" ]] || { say "no nvidia_cudnn_frontend wheel downloaded"; return 1; }
  rm -rf "$dest/frontend"
  mkdir -p "$dest/frontend/include"
  n=$(unpack_prefix "$wheel" include/ "$dest/frontend/include") || { say "could not unpack $wheel"; return 1; }
  [[ -f "$dest/frontend/include/cudnn_frontend.h" ]] || { say "$wheel has no include/cudnn_frontend.h"; return 1; }
  say "cudnn-frontend $fe_version: $n headers in $dest/frontend/include"

  # cuDNN 9 headers, for a machine whose libcudnn came without them.
  local src=""
  if [[ "${CUDNN_HEADERS_FROM:-}" != wheel ]]; then
    for d in "${CUDNN_ROOT:+$CUDNN_ROOT/include}" "$cuda_home/include" /usr/include /usr/include/x86_64-linux-gnu; do
      [[ -n "$d" && "$(header_version "$d")" == 9.* && -f "$d/cudnn.h" ]] && { src=$d; break; }
    done
  fi
  rm -rf "$dest/include"
  mkdir -p "$dest/include"
  if [[ -n "$src" ]]; then
    cp "$src"/cudnn*.h "$dest/include/" || return 1
  else
    say "downloading nvidia-cudnn-cu13 for its headers (about 500 MB)"
    "$python" -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp/cudnn" nvidia-cudnn-cu13 \
      || { say "pip download nvidia-cudnn-cu13 failed"; return 1; }
    wheel=$(ls "$tmp"/cudnn/nvidia_cudnn_cu13-*.whl 2>/dev/null | head -1)
    [[ -n "$wheel" ]] || { say "no nvidia_cudnn_cu13 wheel downloaded"; return 1; }
    unpack_prefix "$wheel" nvidia/cudnn/include/ "$dest/include" >/dev/null || return 1
    src=$wheel
  fi
  [[ "$(header_version "$dest/include")" == 9.* ]] || { say "no cuDNN 9 headers in $dest/include"; return 1; }
  say "cuDNN $(header_version "$dest/include") headers (from $src) in $dest/include"
  printf 'cudnn-frontend %s\ncudnn headers %s (from %s)\n' "$fe_version" "$(header_version "$dest/include")" "$src" \
    >"$dest/VERSIONS"
  grep -qx '/.gpu-deps/' "$repo/.git/info/exclude" 2>/dev/null || echo '/.gpu-deps/' >>"$repo/.git/info/exclude"
  say "done: $(du -sh "$dest" | cut -f1) in $dest (git-ignored; carry .gpu-deps)"
}

# Candidate library directories, one per line, in search order.
lib_dirs() {
  local d
  if [[ -n "${CUDNN_ROOT:-}" ]]; then
    for d in lib64 lib lib/x86_64-linux-gnu; do echo "$CUDNN_ROOT/$d"; done
  fi
  echo "$cuda_home/lib64"
  echo "$cuda_home/lib"
  if command -v ldconfig >/dev/null 2>&1; then
    ldconfig -p 2>/dev/null | awk '/libcudnn\.so\.9 /{print $NF}' | xargs -r -n1 dirname
  fi
  command -v "$python" >/dev/null 2>&1 || return 0
  # nvidia.cudnn is a namespace package in the wheels (no __init__.py): take __path__.
  "$python" - <<'PY' 2>/dev/null
import glob, os, site, sys
dirs = []
try:
    import nvidia.cudnn as m
    dirs += [os.path.join(p, "lib") for p in list(m.__path__)]
except Exception:
    pass
roots = list(sys.path)
try:
    roots += site.getsitepackages() + [site.getusersitepackages()]
except Exception:
    pass
for r in roots:
    if r and os.path.isdir(r):
        dirs += [os.path.join(r, "nvidia", "cudnn", "lib"), os.path.join(r, "torch", "lib")]
seen = set()
for d in dirs:
    d = os.path.realpath(d)
    if d not in seen:
        seen.add(d)
        print(d)
PY
}

cmake_args() {
  local fe="$dest/frontend/include"
  [[ -n "${CUDNN_FRONTEND_INCLUDE_DIR:-}" ]] && fe=$CUDNN_FRONTEND_INCLUDE_DIR
  if [[ ! -f "$fe/cudnn_frontend.h" ]]; then
    say "no cudnn-frontend headers in $fe (run scripts/cudnn-deps.sh fetch where pip works): cuDNN attention off"
    return 0
  fi
  local d f lib="" inc="" dirs=()
  mapfile -t dirs < <(lib_dirs)
  for d in "${dirs[@]}"; do
    [[ -n "$d" && -d "$d" ]] || continue
    for f in "$d/libcudnn.so.9" "$d/libcudnn.so"; do
      if [[ -e "$f" ]]; then lib=$(readlink -f "$f"); break 2; fi
    done
  done
  if [[ -z "$lib" ]]; then
    say "no libcudnn.so.9 (looked in \$CUDNN_ROOT, $cuda_home, ldconfig, $python's nvidia.cudnn and torch): cuDNN attention off"
    return 0
  fi
  local libdir base
  libdir=$(dirname "$lib")
  base=$(dirname "$libdir")
  # Headers beside the library (toolkit or wheel: ../include), else the system's, else ours.
  for d in "$base/include" "$cuda_home/include" /usr/include /usr/include/x86_64-linux-gnu "$dest/include"; do
    if [[ "$(header_version "$d")" == 9.* && -f "$d/cudnn.h" ]]; then inc=$d; break; fi
  done
  if [[ -z "$inc" ]]; then
    say "libcudnn at $lib but no cuDNN 9 headers (run scripts/cudnn-deps.sh fetch to carry some): cuDNN attention off"
    return 0
  fi
  say "cuDNN $lib, headers $(header_version "$inc") in $inc, cudnn-frontend in $fe"
  echo "-DCUDNN_INCLUDE_DIR=$inc -DCUDNN_LIBRARY=$lib -DCUDNN_FRONTEND_INCLUDE_DIR=$fe"
}

case "${1:-}" in
  fetch) fetch ;;
  cmake-args) cmake_args ;;
  *) echo "usage: scripts/cudnn-deps.sh fetch | cmake-args" >&2; exit 1 ;;
esac
