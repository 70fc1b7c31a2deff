# Third-party dependencies. Everything comes from Debian packages (dev machines, CI) or from the
# carried prefix made by deploy/gpu/pack_prefix.sh (GPU hosts), except libtorch, which is the
# pip-installed PyTorch found through CMAKE_PREFIX_PATH (torch.utils.cmake_prefix_path).
find_package(Threads REQUIRED)
find_package(Python3 COMPONENTS Interpreter REQUIRED)
find_package(absl CONFIG REQUIRED)

# ---- libtorch -------------------------------------------------------------------------------
# Name the GPU architectures, or Caffe2's config probes for installed GPUs with try_run (which
# fails on machines without one). Hopper (H100/H200) by default; override for other cards.
if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  set(TORCH_CUDA_ARCH_LIST "9.0")
endif()
find_package(Torch CONFIG REQUIRED)
get_filename_component(RAYLIGHT_TORCH_ROOT "${Torch_DIR}/../../.." ABSOLUTE)   # .../torch
get_filename_component(RAYLIGHT_SITE_PACKAGES "${RAYLIGHT_TORCH_ROOT}/.." ABSOLUTE)
message(STATUS "raylight: libtorch ${Torch_VERSION} at ${RAYLIGHT_TORCH_ROOT}")

# Torch's own CMake flags (TORCH_CXX_FLAGS) carry the C++ ABI define; keep them on torch targets
# only, so that torch-free layers are not compiled with torch-specific definitions.
add_library(raylight_torch INTERFACE)
target_link_libraries(raylight_torch INTERFACE ${TORCH_LIBRARIES})
separate_arguments(_raylight_torch_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
target_compile_options(raylight_torch INTERFACE ${_raylight_torch_flags})

# ---- Gloo (headers only) ---------------------------------------------------------------------
# libtorch_cpu already contains Gloo's code, but the wheel ships no Gloo headers, and
# ProcessGroupGloo.hpp includes them. We compile the one translation unit that constructs a
# ProcessGroupGloo against Debian's libgloo-dev headers and never link Debian's libgloo: two copies
# of Gloo's symbols in one process would be undefined behaviour. See
# models/parallel/comm/gloo_backend_factory.cc.
find_path(RAYLIGHT_GLOO_INCLUDE_DIR gloo/context.h REQUIRED
          HINTS ${RAYLIGHT_PREFIX}/include /usr/include)
message(STATUS "raylight: Gloo headers (declarations only) from ${RAYLIGHT_GLOO_INCLUDE_DIR}")

# ---- libpng (previews, frames: models/core/png.cc) --------------------------------------------
find_package(PNG REQUIRED)
find_package(ZLIB REQUIRED)  # CRC-32 of journal records

# ---- SentencePiece ---------------------------------------------------------------------------
# The umT5 / T5 tokenizer (models/text/sentencepiece_shim.cc is the one file that includes it).
find_path(RAYLIGHT_SENTENCEPIECE_INCLUDE_DIR sentencepiece_processor.h REQUIRED
          HINTS ${RAYLIGHT_PREFIX}/include /usr/include)
find_library(RAYLIGHT_SENTENCEPIECE_LIBRARY NAMES sentencepiece REQUIRED
             HINTS ${RAYLIGHT_PREFIX}/lib/x86_64-linux-gnu)
message(STATUS "raylight: SentencePiece ${RAYLIGHT_SENTENCEPIECE_LIBRARY}")

# ---- Video files ----------------------------------------------------------------------------
# MP4 through FFmpeg's libraries, animated WebP through libwebp (models/media), from Debian.
if(RAYLIGHT_WITH_MEDIA)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(RAYLIGHT_LIBAV REQUIRED IMPORTED_TARGET libavcodec libavformat libswscale
                    libavutil)
  pkg_check_modules(RAYLIGHT_LIBWEBP REQUIRED IMPORTED_TARGET libwebp libwebpmux libwebpdemux)
endif()

# ---- CUDA + NCCL -----------------------------------------------------------------------------
set(RAYLIGHT_HAVE_CUDA OFF)
if(RAYLIGHT_WITH_CUDA)
  if(NOT TARGET CUDA::cudart)
    find_package(CUDAToolkit)
  endif()
  # Link the same libnccl that libtorch_cuda loads (pip's nvidia-nccl), so one process holds one
  # NCCL; fall back to the toolkit's.
  find_path(RAYLIGHT_NCCL_INCLUDE_DIR nccl.h
            HINTS ${RAYLIGHT_SITE_PACKAGES}/nvidia/nccl/include ${CUDAToolkit_INCLUDE_DIRS})
  find_library(RAYLIGHT_NCCL_LIBRARY NAMES libnccl.so.2 nccl NAMES_PER_DIR
               HINTS ${RAYLIGHT_SITE_PACKAGES}/nvidia/nccl/lib ${CUDAToolkit_LIBRARY_DIR})
  if(TARGET CUDA::cudart AND RAYLIGHT_NCCL_INCLUDE_DIR AND RAYLIGHT_NCCL_LIBRARY)
    set(RAYLIGHT_HAVE_CUDA ON)
    add_library(raylight_nccl INTERFACE)
    target_include_directories(raylight_nccl SYSTEM INTERFACE ${RAYLIGHT_NCCL_INCLUDE_DIR})
    target_link_libraries(raylight_nccl INTERFACE ${RAYLIGHT_NCCL_LIBRARY} CUDA::cudart)
    message(STATUS "raylight: NCCL ${RAYLIGHT_NCCL_LIBRARY}")
  else()
    message(WARNING "raylight: CUDA or NCCL not found; building without the NCCL backend")
  endif()
endif()

# ---- cuDNN's graph API (fp8 attention, models/core/fp8_attention.cc) ---------------------------
# The headers of the libcudnn that libtorch_cuda loads (pip's nvidia-cudnn) and cuDNN's
# header-only C++ frontend (pip's nvidia-cudnn-frontend in the venv, or the carried prefix). A
# build without them runs attention in bf16 only (fp8 attention says it was not built).
set(RAYLIGHT_HAVE_CUDNN_FRONTEND OFF)
if(RAYLIGHT_HAVE_CUDA)
  find_path(RAYLIGHT_CUDNN_INCLUDE_DIR cudnn.h NO_DEFAULT_PATH
            HINTS ${RAYLIGHT_SITE_PACKAGES}/nvidia/cudnn/include ${CUDAToolkit_INCLUDE_DIRS})
  find_library(RAYLIGHT_CUDNN_LIBRARY NAMES libcudnn.so.9 NO_DEFAULT_PATH
               HINTS ${RAYLIGHT_SITE_PACKAGES}/nvidia/cudnn/lib ${CUDAToolkit_LIBRARY_DIR})
  find_path(RAYLIGHT_CUDNN_FRONTEND_INCLUDE_DIR cudnn_frontend.h NO_DEFAULT_PATH
            HINTS ${RAYLIGHT_SITE_PACKAGES}/include ${RAYLIGHT_PREFIX}/include)
  if(RAYLIGHT_CUDNN_INCLUDE_DIR AND RAYLIGHT_CUDNN_LIBRARY AND RAYLIGHT_CUDNN_FRONTEND_INCLUDE_DIR)
    set(RAYLIGHT_HAVE_CUDNN_FRONTEND ON)
    add_library(raylight_cudnn_frontend INTERFACE)
    target_include_directories(raylight_cudnn_frontend SYSTEM INTERFACE
                               ${RAYLIGHT_CUDNN_FRONTEND_INCLUDE_DIR} ${RAYLIGHT_CUDNN_INCLUDE_DIR})
    target_link_libraries(raylight_cudnn_frontend INTERFACE ${RAYLIGHT_CUDNN_LIBRARY})
    message(STATUS "raylight: cuDNN frontend ${RAYLIGHT_CUDNN_FRONTEND_INCLUDE_DIR}, ${RAYLIGHT_CUDNN_LIBRARY}")
  else()
    message(WARNING "raylight: cuDNN or its frontend headers not found; no fp8 attention")
  endif()
endif()

# ---- FlashInfer's Hopper attention kernel (models/core/flash_attention_sm90.cu) ---------------
# Header-only CUDA templates: FlashInfer's own headers with the CUTLASS and CCCL it was written
# against, taken from the flashinfer-python wheel by tools/install_deps.sh (into the venv) or
# carried in the GPU prefix (pack_prefix.sh). Built for sm_90a; a build without them runs bf16
# attention on cuDNN's kernel, as before.
set(RAYLIGHT_HAVE_FLASH_ATTENTION_SM90 OFF)
if(RAYLIGHT_HAVE_CUDA)
  find_path(RAYLIGHT_FLASHINFER_DIR include/flashinfer/attention/hopper/prefill_sm90.cuh
            NO_DEFAULT_PATH
            HINTS ${RAYLIGHT_SITE_PACKAGES}/raylight_flashinfer ${RAYLIGHT_PREFIX}/share/flashinfer)
  if(RAYLIGHT_FLASHINFER_DIR AND CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 12.4)
    set(RAYLIGHT_HAVE_FLASH_ATTENTION_SM90 ON)
    add_library(raylight_flashinfer INTERFACE)
    # Its CCCL before the toolkit's (FlashInfer needs the newer one), as FlashInfer's own build
    # orders them; the rest as system headers (their warnings are not ours).
    target_include_directories(raylight_flashinfer INTERFACE
                               ${RAYLIGHT_FLASHINFER_DIR}/cccl/libcudacxx/include
                               ${RAYLIGHT_FLASHINFER_DIR}/cccl/cub
                               ${RAYLIGHT_FLASHINFER_DIR}/cccl/thrust)
    target_include_directories(raylight_flashinfer SYSTEM INTERFACE
                               ${RAYLIGHT_FLASHINFER_DIR}/include
                               ${RAYLIGHT_FLASHINFER_DIR}/cutlass/include
                               ${RAYLIGHT_FLASHINFER_DIR}/cutlass/tools/util/include)
    message(STATUS "raylight: FlashInfer headers ${RAYLIGHT_FLASHINFER_DIR}")
  else()
    message(WARNING "raylight: FlashInfer's headers not found; bf16 attention on cuDNN only")
  endif()
endif()

# A carried prefix (deploy/gpu/pack_prefix.sh) is not on the loader's path: link with DT_RPATH,
# which (unlike DT_RUNPATH) also resolves the prefix libraries' own dependencies.
if(RAYLIGHT_PREFIX)
  add_link_options(-Wl,--disable-new-dtags)
endif()

# ---- gRPC / protobuf -------------------------------------------------------------------------
if(RAYLIGHT_WITH_GRPC)
  find_package(Protobuf REQUIRED)
  find_package(gRPC CONFIG REQUIRED)
  find_program(RAYLIGHT_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED
               HINTS ${RAYLIGHT_PREFIX}/bin)
endif()

# ---- daemons: Boost.Asio (timers, signals, child supervision), CLI11 (flags), SQLite (state) ---
find_package(Boost 1.74 REQUIRED)
if(NOT TARGET Boost::headers)
  add_library(Boost::headers INTERFACE IMPORTED)
  target_include_directories(Boost::headers INTERFACE ${Boost_INCLUDE_DIRS})
endif()
# CLI11 is header-only; its Debian CMake config is not relocatable, so find the header.
find_path(RAYLIGHT_CLI11_INCLUDE_DIR CLI/CLI.hpp HINTS ${RAYLIGHT_PREFIX}/include REQUIRED)
add_library(CLI11::CLI11 INTERFACE IMPORTED)
target_include_directories(CLI11::CLI11 INTERFACE ${RAYLIGHT_CLI11_INCLUDE_DIR})
find_package(SQLite3 REQUIRED)
# OpenSSL's libcrypto makes a cluster's CA and certificates (runtime/rpc/certificates.cc); gRPC
# itself links Debian's OpenSSL 3 already.
find_package(OpenSSL 3 REQUIRED)

# ---- models: nlohmann/json (header-only) parses safetensors headers ----------------------------
find_path(RAYLIGHT_JSON_INCLUDE_DIR nlohmann/json.hpp HINTS ${RAYLIGHT_PREFIX}/include REQUIRED)
add_library(raylight_json INTERFACE IMPORTED)
target_include_directories(raylight_json INTERFACE ${RAYLIGHT_JSON_INCLUDE_DIR})

# ---- tests -----------------------------------------------------------------------------------
if(RAYLIGHT_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()
