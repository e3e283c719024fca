#!/bin/bash
# usage: check_recipes.sh <container dir>
# The Apptainer definition and the Dockerfile build the same image: the same base image,
# the same files copied in, and the same container/build.sh steps in the same order (no
# build step of their own); build.sh is valid bash. Building the images needs a container
# runtime and a registry, which CI has not (container/README.md says what was run).
set -euo pipefail
dir=$1
def=$dir/ringscan.def docker=$dir/Dockerfile
fail() { echo "FAIL: $*"; exit 1; }

bash -n "$dir/build.sh" || fail "build.sh is not valid bash"
base_def=$(sed -nE 's/^From:[[:space:]]*(\S+).*/\1/p' "$def")
base_docker=$(sed -nE 's/^FROM[[:space:]]+(\S+).*/\1/p' "$docker")
[[ -n "$base_def" && "$base_def" == "$base_docker" ]] || fail "base images differ: '$base_def' (def) vs '$base_docker' (Dockerfile)"
[[ "$base_def" == nvidia/cuda:*-devel-* ]] || fail "the base image $base_def is not a CUDA devel image"

# Files copied in: %files lines (source destination) vs COPY lines.
files_def=$(sed -n '/^%files/,/^%/p' "$def" | grep -vE '^%|^[[:space:]]*$' | awk '{print $1, $2}')
files_docker=$(sed -nE 's/^COPY[[:space:]]+(\S+)[[:space:]]+(\S+).*/\1 \2/p' "$docker")
[[ "$files_def" == "$files_docker" ]] || fail "the files copied in differ:"$'\n'"$files_def"$'\n'"vs"$'\n'"$files_docker"

# Steps: every command of %post, and every RUN's commands, must be a build.sh step.
steps_def=$(sed -n '/^%post/,/^%/p' "$def" | grep -vE '^%|^[[:space:]]*(#|$)' | sed 's/&&/\n/g' | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')
steps_docker=$(sed -nE 's/^RUN[[:space:]]+(.*)/\1/p' "$docker" | sed 's/&&/\n/g' | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')
[[ "$steps_def" == "$steps_docker" ]] || fail "the build steps differ:"$'\n'"$steps_def"$'\n'"vs"$'\n'"$steps_docker"
while read -r step; do
  [[ "$step" =~ ^/opt/ringscan/build\.sh\ (deps|build|clean)$ ]] || fail "a step is not one of build.sh's: '$step'"
done <<<"$steps_def"
[[ "$(echo "$steps_def" | awk '{print $2}' | paste -sd' ')" == "deps build clean" ]] || fail "the steps are not deps, build, clean"
echo "PASS: $base_def; $(echo "$steps_def" | awk '{print $2}' | paste -sd' ')"
