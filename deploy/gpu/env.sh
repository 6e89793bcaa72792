#!/usr/bin/env bash
# Source THERE (GPU machine): unpacks the carried .debs into a private prefix (never into /),
# fixes their pkg-config prefixes and exports what CMake and the loader need.
#   source deploy/gpu/env.sh   # then: cmake -S . -B build-gpu $SFD_GPU_CMAKE_ARGS
SFD_DEPS_PREFIX=${SFD_DEPS_PREFIX:-/tmp/sfd-deps}
export SFD_DEPS_PREFIX
if [ ! -f "$SFD_DEPS_PREFIX/.done" ]; then
  mkdir -p "$SFD_DEPS_PREFIX"
  for f in .deps/debs/*.deb; do dpkg -x "$f" "$SFD_DEPS_PREFIX"; done
  # Every path in the carried .pc files names the package's own files: point them at the prefix.
  sed -i "s|/usr/|$SFD_DEPS_PREFIX/usr/|g; s|^prefix=/usr\$|prefix=$SFD_DEPS_PREFIX/usr|" \
    "$SFD_DEPS_PREFIX"/usr/lib/x86_64-linux-gnu/pkgconfig/*.pc
  touch "$SFD_DEPS_PREFIX/.done"
fi
PY=${SFD_PYTHON:-python3}
TORCH_PREFIX=$($PY -c 'import torch;print(torch.utils.cmake_prefix_path)')
export LD_LIBRARY_PATH="$SFD_DEPS_PREFIX/usr/lib/x86_64-linux-gnu:$($PY -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib:${LD_LIBRARY_PATH:-}"
export PATH=/usr/local/cuda/bin:$PATH
export SFD_GPU_CMAKE_ARGS="-G Ninja -DSFD_BUILD_SERVER=OFF -DSFD_WITH_CUDA=ON -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_PREFIX_PATH=$TORCH_PREFIX;$SFD_DEPS_PREFIX/usr/lib/x86_64-linux-gnu/cmake;$SFD_DEPS_PREFIX/usr/share/cmake -Dnlohmann_json_DIR=$SFD_DEPS_PREFIX/usr/share/cmake/nlohmann_json"
