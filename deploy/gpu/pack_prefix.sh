#!/usr/bin/env bash
# Packs Debian 12's gRPC / Abseil / protobuf build into a relocatable prefix, for GPU hosts that
# have no apt (the lent GPU machine: Ubuntu 24.04 with PyTorch from pip but no gRPC or Abseil).
# Run on a Debian 12 machine (after tools/install_deps.sh); carry the result along and point
# deploy/gpu/build.sh at it (its default location is deploy/gpu/prefix).
#
# Layout mirrors /usr so that Debian's CMake configs, which locate themselves relative to their
# own directory, work unchanged: include/, lib/x86_64-linux-gnu/ (libraries, cmake/, pkgconfig/),
# bin/ (protoc and the grpc plugins, which gRPCTargets.cmake checks for).
set -euo pipefail
cd "$(dirname "$0")"
OUT=${1:-prefix}
ARCH=x86_64-linux-gnu
rm -rf "$OUT"
mkdir -p "$OUT/include" "$OUT/lib/$ARCH/cmake" "$OUT/lib/$ARCH/pkgconfig" "$OUT/bin"

# Headers: gRPC, Abseil, protobuf, c-ares, re2, and Gloo's (declarations only; see
# models/parallel/comm/gloo_backend_factory.cc).
for h in grpc grpcpp grpc++ absl google re2 gloo; do
  cp -a "/usr/include/$h" "$OUT/include/"
done
cp -a /usr/include/ares*.h "$OUT/include/"
# CLI11 (header-only flags library), SQLite (the head's state database), nlohmann/json
# (header-only; safetensors headers).
cp -a /usr/include/CLI /usr/include/sqlite3.h /usr/include/sqlite3ext.h /usr/include/nlohmann \
  "$OUT/include/"
# SentencePiece (the umT5 tokenizer; its library carries its own protobuf-lite).
cp -a /usr/include/sentencepiece_processor.h /usr/include/sentencepiece_trainer.h "$OUT/include/"
# libwebp (animated WebP; FFmpeg comes from pack_ffmpeg.sh below).
cp -a /usr/include/webp "$OUT/include/"
# libpng (sampler previews).
cp -a /usr/include/png.h /usr/include/pngconf.h /usr/include/pnglibconf.h /usr/include/libpng16 \
  "$OUT/include/"

# cuDNN's C++ graph API (header-only, from the project venv's nvidia-cudnn-frontend wheel; fp8
# attention, models/core/fp8_attention.cc): the host's PyTorch venv has libcudnn but not these.
FRONTEND=$(ls -d ../../.venv/lib/python3*/site-packages/include 2>/dev/null | head -1)
[ -f "$FRONTEND/cudnn_frontend.h" ] || { echo "no cudnn_frontend.h in the venv (install_deps)" >&2; exit 1; }
cp -a "$FRONTEND"/cudnn_frontend* "$FRONTEND"/cudnn_backend_base.h "$OUT/include/"

# FlashInfer's Hopper attention kernel (models/core/flash_attention_sm90.cu): only the headers it
# includes (nvcc -M over the venv's copy from install_deps), packed: unpacked they would not fit
# the device's carry. deploy/gpu/build.sh unpacks them into share/flashinfer. The flags are the
# kernel's target's (models/CMakeLists.txt, cmake/RaylightDeps.cmake): change them together.
FLASHINFER=$(ls -d ../../.venv/lib/python3*/site-packages/raylight_flashinfer 2>/dev/null | head -1)
[ -d "$FLASHINFER/include" ] || { echo "no FlashInfer headers in the venv (install_deps)" >&2; exit 1; }
FLASHINFER=$(cd "$FLASHINFER" && pwd)
NVCC=${NVCC:-/usr/local/cuda/bin/nvcc}
mkdir -p "$OUT/share"
DEPS=$(mktemp)
"$NVCC" -std=c++17 --expt-relaxed-constexpr -gencode=arch=compute_90a,code=sm_90a \
  -DCUTE_SM90_EXTENDED_MMA_SHAPES_ENABLED -I"$FLASHINFER/cccl/libcudacxx/include" \
  -I"$FLASHINFER/cccl/cub" -I"$FLASHINFER/cccl/thrust" -isystem "$FLASHINFER/include" \
  -isystem "$FLASHINFER/cutlass/include" -isystem "$FLASHINFER/cutlass/tools/util/include" \
  -I../.. -M ../../models/core/flash_attention_sm90.cu -o "$DEPS"
tr ' \\' '\n\n' < "$DEPS" | grep "^$FLASHINFER/" | sed "s|^$FLASHINFER/||" | sort -u > "$DEPS.list"
tar czf "$OUT/share/flashinfer-headers.tar.gz" -C "$FLASHINFER" -T "$DEPS.list"
echo "pack_prefix: $(wc -l < "$DEPS.list") FlashInfer headers"
rm -f "$DEPS" "$DEPS.list"

# Shared libraries (with their soname links). OpenSSL, zlib, glibc and libstdc++ come from the
# host, which has compatible ones (OpenSSL 3, zlib 1).
for pattern in 'libgrpc*.so*' 'libgpr.so*' 'libupb.so*' 'libaddress_sorting.so*' 'libabsl_*.so*' \
               'libcares.so*' 'libre2.so*' 'libprotobuf.so*' 'libprotoc.so*' 'libsqlite3.so*' \
               'libpng16.so*' 'libpng.so' 'libsentencepiece.so*' 'libwebp.so*' 'libwebpmux.so*' \
               'libwebpdemux.so*' 'libsharpyuv.so*'; do
  find "/usr/lib/$ARCH" -maxdepth 1 -name "$pattern" -exec cp -a {} "$OUT/lib/$ARCH/" \;
done

# OpenSSL 3's headers (a cluster's certificates, runtime/rpc/certificates.cc): the host has the
# libraries (gRPC links them) but not always their headers. The link-time names point at the
# host's own libraries, which every Debian and Ubuntu with OpenSSL 3 keeps at this path.
cp -a /usr/include/openssl "$OUT/include/"
cp -a /usr/include/$ARCH/openssl/. "$OUT/include/openssl/"
ln -sf "/usr/lib/$ARCH/libssl.so.3" "$OUT/lib/$ARCH/libssl.so"
ln -sf "/usr/lib/$ARCH/libcrypto.so.3" "$OUT/lib/$ARCH/libcrypto.so"
# CMake package configs (relocatable as they are: they compute their prefix from their path).
cp -a "/usr/lib/$ARCH/cmake/grpc" "/usr/lib/$ARCH/cmake/absl" "$OUT/lib/$ARCH/cmake/"

# pkg-config files, made relocatable.
for pc in /usr/lib/$ARCH/pkgconfig/{grpc,grpc++,grpc_unsecure,grpc++_unsecure,gpr,protobuf,libcares,re2,upb}.pc \
          /usr/lib/$ARCH/pkgconfig/{libwebp,libwebpmux,libwebpdemux,libsharpyuv}.pc \
          /usr/lib/$ARCH/pkgconfig/absl_*.pc; do
  [ -f "$pc" ] || continue
  sed -e 's|^prefix=.*|prefix=${pcfiledir}/../../..|' \
      -e "s|/usr/lib/$ARCH|\${pcfiledir}/..|g" \
      -e 's|/usr/include|${pcfiledir}/../../../include|g' \
      -e "s|^libdir=\${exec_prefix}/lib\$|libdir=\${exec_prefix}/lib/$ARCH|" \
      -e "s|^libdir=\${prefix}/lib\$|libdir=\${prefix}/lib/$ARCH|" \
      "$pc" > "$OUT/lib/$ARCH/pkgconfig/$(basename "$pc")"
done

# protoc and all the grpc plugins.
cp -a /usr/bin/protoc* "$OUT/bin/" 2>/dev/null || true
cp -a /usr/bin/grpc_*_plugin "$OUT/bin/"
for p in cpp php python ruby; do
  [ -x "$OUT/bin/grpc_${p}_plugin" ] || { echo "missing grpc_${p}_plugin" >&2; exit 1; }
done

# Video files: a minimal static FFmpeg (libx264, MP4; pack_ffmpeg.sh).
./pack_ffmpeg.sh "$OUT"

du -sh "$OUT"
