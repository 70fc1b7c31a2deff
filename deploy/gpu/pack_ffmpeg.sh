#!/usr/bin/env bash
# Video files for GPU hosts that have no FFmpeg and no packages (issue #24: MP4 out on the lent
# GPU machine). Debian 12's shared FFmpeg pulls in every codec's library (165 MB with their
# dependencies, past what a call may carry beside the rest of the prefix); models/media needs the
# libx264 encoder, the MP4 muxer and swscale. So this builds Debian's own FFmpeg source
# (`apt-get source ffmpeg`: the orig tarball with Debian's patches) with only those, as static
# PIC archives (3.3 MB, and Debian's static libx264.a, 2.7 MB), into PREFIX with relocatable
# pkg-config files (pack_prefix.sh, which runs this, adds libwebp's shared libraries for animated
# WebP). deploy/gpu/build.sh turns video files on when PREFIX has both.
#
#   [DECODERS=1] deploy/gpu/pack_ffmpeg.sh [PREFIX]   (default deploy/gpu/prefix; root, Debian 12)
#
# DECODERS=1 adds the H.264 decoder and parser and the MP4 demuxer that tests/models/
# video_files_test.cc reads its files back with: configured with PKG_CONFIG_PATH=PREFIX/lib/
# x86_64-linux-gnu/pkgconfig, a Debian build of video_files_test passes on these archives.
set -euo pipefail
OUT=$(realpath -m "${1:-$(dirname "$0")/prefix}")
ARCH=x86_64-linux-gnu
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# Debian's source packages, the static x264 and the assembler FFmpeg's x86 code needs.
if ! grep -rqs "deb-src" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
    >/etc/apt/sources.list.d/debian-src.sources
  apt-get update -qq
fi
apt-get install -y -qq libx264-dev nasm dpkg-dev >/dev/null
(cd "$WORK" && apt-get source -qq ffmpeg >/dev/null 2>&1)
SRC=$(find "$WORK" -maxdepth 1 -type d -name 'ffmpeg-*' | head -1)
(cd "$SRC" &&
  ./configure --prefix="$WORK/ffmpeg" --disable-everything --disable-programs --disable-doc \
    --disable-network --disable-autodetect --disable-debug --disable-avdevice --disable-avfilter \
    --disable-postproc --enable-pic --enable-static --disable-shared --enable-gpl \
    --disable-swresample --enable-libx264 --enable-encoder=libx264 --enable-muxer=mp4 \
    --enable-swscale ${DECODERS:+--enable-decoder=h264 --enable-parser=h264 --enable-demuxer=mov \
    --enable-protocol=file} >"$WORK/configure.log" &&
  make -j "$(nproc)" >"$WORK/make.log" && make install >/dev/null) ||
  { tail -20 "$WORK/configure.log" "$WORK/make.log" 2>/dev/null; exit 1; }

mkdir -p "$OUT/include" "$OUT/lib/$ARCH/pkgconfig"
cp -a "$WORK/ffmpeg/include/." "$OUT/include/"
cp -a "$WORK"/ffmpeg/lib/*.a /usr/lib/$ARCH/libx264.a "$OUT/lib/$ARCH/"
# FFmpeg's static-only .pc files already list what each archive needs (-lx264 -pthread -lm
# -latomic); only their paths move.
for pc in "$WORK"/ffmpeg/lib/pkgconfig/*.pc; do
  sed -e 's|^prefix=.*|prefix=${pcfiledir}/../../..|' \
      -e "s|^libdir=.*|libdir=\${prefix}/lib/$ARCH|" \
      -e 's|^includedir=.*|includedir=${prefix}/include|' \
      "$pc" >"$OUT/lib/$ARCH/pkgconfig/$(basename "$pc")"
done

echo "FFmpeg $(basename "$SRC") (static, libx264) in $OUT: $(du -sh "$OUT" | cut -f1) in all"
