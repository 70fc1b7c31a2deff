#!/usr/bin/env bash
# One GPU-machine session in one call (device time is short): install diffusers from the carried
# wheels (.whl/, made by `pip download`; the machine has no network) beside the host's PyTorch,
# build the GPU tests and benchmarks, then run one of the modes below. Calls on a machine still
# warm reuse the build and the benchmark checkpoint in /tmp.
# BUILD_TARGETS (space-separated) builds only those targets (a shorter build for one mode).
# Logs and JSON lines go to $OUT (or ./gpu-out). Tests that run ComfyUI's code read its tarball
# from .carry/ComfyUI-0.3.64.tar.gz (copy it from ../shared/third_party and carry it).
#
#   deploy/gpu/session.sh tests            the gpu-labelled tests (TESTS=regex: those only)
#   deploy/gpu/session.sh flux             issue #26: the Flux gpu tests (TESTS=regex, none),
#                                          then Flux.1-dev 1024x1024 against diffusers
#                                          (flux_gpu.sh; COMPILE=1: also with torch.compile;
#                                          FP8_ATTENTION=1: ours with fp8 attention; FP8=1:
#                                          with fp8 compute; ANCHOR=0: without diffusers)
#   deploy/gpu/session.sh qwen             issue #26: the Qwen-Image gpu tests (TESTS=regex,
#                                          none), then Qwen-Image 1328x1328 against diffusers
#                                          (qwen_image_gpu.sh; SIZE=WxH, COMPILE=1)
#   deploy/gpu/session.sh resume           issue #23: a 1.3B job whose worker is killed halfway
#                                          resumes from its last step (resume_gpu.sh)
#   deploy/gpu/session.sh teacache         issue #27: TeaCache and MagCache (CACHES=0: not), fp8
#                                          attention and fp8 compute on a 1.3B job
#                                          (step_cache_gpu.sh)
#   deploy/gpu/session.sh peers            issue #27: our 14B forward (wan_bench) against diffusers
#                                          eager and + torch.compile, SageAttention's kernels on
#                                          its attention shape, xDiT where it imports (its
#                                          wheels do not fit the carry), and
#                                          cache-dit's DBCache on a 1.3B 30-step job beside our
#                                          TeaCache / MagCache rows (wan_peer_anchors.py; the
#                                          peers' wheels carried in .whl; PEERS_14B=0: the
#                                          cache-dit ladder alone; PEERS=list: those 14B peers;
#                                          LADDER=0: without the ladder)
#   deploy/gpu/session.sh fluxjob          issues #26, #27: a real-size Flux.1-dev 1024x1024 job
#                                          through a local cluster, uncached and with TeaCache,
#                                          MagCache, EasyCache and fp8 compute (flux_job_gpu.sh)
#   deploy/gpu/session.sh qwenjob          issue #26: a real-size Qwen-Image 1328x1328 job (cfg 4)
#                                          through a local cluster, uncached and with MagCache,
#                                          fp8 compute and layer swap at 25%
#                                          (FAMILY=qwen_image family_job_gpu.sh)
#   deploy/gpu/session.sh chroma           issue #26: Chroma 1024x1024 against diffusers
#                                          (chroma_gpu.sh; COMPILE=1), then (JOB=0: not) a
#                                          real-size Chroma job through a local cluster, uncached,
#                                          fp8 compute and swap at 25% (FAMILY=chroma
#                                          family_job_gpu.sh)
#   deploy/gpu/session.sh flux2            issue #26: FLUX.2 [dev] 1024x1024 against diffusers, its
#                                          fp8-scaled file (flux2_gpu.sh; COMPILE=1, FP8=0), then
#                                          (JOB=0: not) a real-size FLUX.2 job through a local
#                                          cluster, uncached, fp8 compute and swap at 25%
#                                          (FAMILY=flux2 family_job_gpu.sh)
#   deploy/gpu/session.sh fp8              issue #27: the fp8, staged-upload and fused-kernel gpu
#                                          tests (TESTS=none: not), then the 14B load (staged
#                                          upload GB/s) and forward in bf16, with the fused
#                                          kernels (CHAINS=0: not against the chains), with fp8
#                                          compute, fp8 attention and both, against diffusers
#                                          (wan_bench --fp8 --fp8_attention --chains)
#   deploy/gpu/session.sh text             issue #24: umT5-XXL against transformers (umt5_gpu.sh;
#                                          ENCODER_BENCH=0: not), then a prompt job through a
#                                          local cluster (prompt_job_gpu.sh)
#   deploy/gpu/session.sh video            issue #24: the VAE gpu tests (VIDEO_TESTS=regex, none),
#                                          then a prompt-to-MP4 job
#                                          through a local cluster (frames where the prefix has no
#                                          FFmpeg; prompt_to_video_gpu.sh)
#   deploy/gpu/session.sh vae              issue #24: the VAE gpu tests (TESTS=none: not), then
#                                          the Wan VAE decode (2.1 at 480p and 720p, 2.2 at
#                                          1280x704x121) against diffusers (wan_vae_gpu.py)
#   deploy/gpu/session.sh gguf             issue #25: the GGUF gpu tests (TESTS=regex, none),
#                                          then 14B Q8_0 / Q4_K / Q8_0 swap 10% against bf16
#   deploy/gpu/session.sh jobs             a 14B job end to end on 2 GPUs (job_bench), its anchors
#   deploy/gpu/session.sh placement        14B weight placement: layer swap at 10/25/50% against
#                                          resident and a naive offload (1 GPU); FSDP with
#                                          prefetch and host shards on 2 GPUs against ulysses 2
#                                          (SWAP=0 / FSDP=0 leave either part out)
#   deploy/gpu/session.sh scaling          14B on every mesh of this machine's GPUs against one
#                                          (LATENT=21,90,160 RES=1280x720x81 for 720p)
#   deploy/gpu/session.sh overlap          issue #5: the parallel gpu tests (TESTS=none: none),
#                                          then (BENCH=0: not) 14B ulysses 2 (puts into peer
#                                          memory, interleaved micro-batches) against the other
#                                          exchange schedules (all-to-alls, ...), ring 2 and cfg 2
#                                          (MESHES=... to choose), one ulysses-2 step profiled
#                                          (a Chrome trace in $OUT), and with GEMM=1 cuBLAS
#                                          throughput by row count; the cards' clocks while the
#                                          steps run go to clock_phases.jsonl (SECOND_GPU=1: the
#                                          1-GPU step on the second card too)
#   deploy/gpu/session.sh parallel|bench|all   earlier sessions' runs (Wan forward, 2-GPU modes)
set -uo pipefail
cd "$(dirname "$0")/../.."
# Several modes in one call (`session.sh video fp8`): one build, then each mode in turn.
if [ $# -gt 1 ]; then
  status=0
  for mode in "$@"; do
    echo "== $mode"
    "$0" "$mode" || status=$?
    export RAYLIGHT_SESSION_BUILT=1
  done
  exit $status
fi
WHAT=${1:-all}
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

# The host's PyTorch lives in its own venv (python3 on PATH; a fresh machine every session):
# pip resolves diffusers against what that venv has (numpy, Pillow, transformers' pins) and
# installs only what is missing from the carried wheels.
if ! python3 -c 'import diffusers' 2>/dev/null; then
  python3 -m pip install -q --no-index --find-links .whl diffusers safetensors >"$OUT/pip.log" 2>&1 ||
    { echo "diffusers install failed"; tail -20 "$OUT/pip.log"; }
fi
export PYTHON=python3
python3 -c 'import diffusers, torch; print("diffusers", diffusers.__version__, "torch", torch.__version__)'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/gpu.txt" 2>&1

export TARGETS="${BUILD_TARGETS:-raylight-head raylight-node raylight-worker gpu_cluster_test comm_nccl_test comm_rank_suite
  wan_diffusers_gpu_test wan_gpu_test wan_bench raylight-make-checkpoint raylight-make-conditioning
  raylight-sample-local parallel_rank_main parallel_sampling_gpu_test jobs_gpu_test job_bench
  weight_placement_gpu_test copy_rows_gpu_test samplers_gpu_test raylightctl lora_test
  gguf_gpu_test lora_gpu_test raylight-encode-text umt5_test umt5_gpu_test wan_vae_rank_main
  raylight-vae wan_vae_gpu_test flux_bench flux_model_gpu_test qwen_image_model_gpu_test
  fp8_linear_gpu_test staged_upload_gpu_test dit_fused_gpu_test fp8_attention_gpu_test
  flash_attention_gpu_test}"
build_start=$(date +%s)
if [ -z "${RAYLIGHT_SESSION_BUILT:-}" ]; then
  deploy/gpu/build.sh --no-test build-gpu >"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
  echo "build ok ($(grep -c 'Building' "$OUT/build.log") compiles, $(($(date +%s) - build_start)) s)"
  grep -m3 -E "raylight: cuDNN|no fp8 attention|FlashInfer" "$OUT/build.log"
fi
GPUS=$(nvidia-smi -L | wc -l)
CKPT=/tmp/raylight-bench
mkdir -p "$CKPT"

# A random-weight checkpoint of a preset, written once per machine (later calls reuse it).
checkpoint() {
  local path="$CKPT/$1.safetensors"
  [ -f "$path" ] || build-gpu/bin/raylight-make-checkpoint --preset "$1" --dtype bf16 \
    --spelling diffusers --device cuda --out "$path" >>"$OUT/bench.log" 2>&1
  echo "$path"
}

# The parallel meshes a machine of $GPUS GPUs is benchmarked on (LABEL:MESH:RANKS[:PLACEMENT]).
# The disk (64 GB) holds few families' random checkpoints: before a family's run the others'
# /tmp/raylight-* directories go (a warm machine keeps /tmp between calls; a job directory holds a
# hard link of its forward's file, so both must go to free it).
keep_family_files() {  # the /tmp/raylight-<dir> names to keep
  local dir
  for dir in bench flux flux-job qwen-image qwen_image-job chroma chroma-job flux2 flux2-job; do
    [[ " $* " == *" $dir "* ]] || rm -rf "/tmp/raylight-$dir"
  done
}

# A family's forward against diffusers (tests/bench/FAMILY_gpu.sh), its log's last LINES lines,
# then (JOB=0: not) its real-size job through a local cluster (FAMILY=... family_job_gpu.sh).
family_runs() {  # FAMILY LINES
  local family=$1
  "tests/bench/${family}_gpu.sh" build-gpu "$OUT" >"$OUT/${family}_run.log" 2>&1
  echo "$family exit $?"
  tail -"$2" "$OUT/${family}_run.log"
  if [ "${JOB:-1}" = 1 ]; then
    FAMILY=$family tests/bench/family_job_gpu.sh build-gpu "$OUT" >"$OUT/${family}_job_run.log" 2>&1
    echo "$family job exit $?"
    tail -8 "$OUT/${family}_job_run.log"
  fi
}

meshes() {
  case $GPUS in
    2) echo "" ;;  # run_parallel_bench.sh's own: ulysses 2, ring 2, cfg 2
    4) echo "ulysses4:ulysses=4:4 ring4:ring=4:4 ulysses2_ring2:ring=2,ulysses=2:4" \
            "cfg2_ulysses2:cfg=2,ulysses=2:4 fsdp4_ulysses4:ulysses=4:4:fsdp" ;;
    8) echo "ulysses8:ulysses=8:8 ring8:ring=8:8 ulysses4_ring2:ring=2,ulysses=4:8" \
            "cfg2_ulysses4:cfg=2,ulysses=4:8 fsdp8_ulysses8:ulysses=8:8:fsdp" ;;
  esac
}

case $WHAT in
  tests)  # the gpu-labelled tests, or those matching $TESTS
    (cd build-gpu && timeout "${TEST_TIMEOUT:-540}" ctest -L gpu ${TESTS:+-R "$TESTS"} -V) >"$OUT/ctest-gpu.log" 2>&1
    echo "ctest -L gpu exit $?"
    grep -E "tests passed|Failed|\*\*\*|Passed|relative L2" "$OUT/ctest-gpu.log" | head -60 ;;
  flux)  # issue #26: the Flux gpu tests, then Flux.1-dev 1024x1024 against diffusers
    if [ "${TESTS:-}" != none ]; then
      (cd build-gpu && timeout 300 ctest -L gpu -R "${TESTS:-FluxGpu}" -V) >"$OUT/ctest-gpu.log" 2>&1
      echo "ctest exit $?"
      grep -E "tests passed|Failed|\*\*\*|Passed|relative L2" "$OUT/ctest-gpu.log" | head -20
    fi
    tests/bench/flux_gpu.sh build-gpu "$OUT" >"$OUT/flux_run.log" 2>&1
    echo "flux exit $?"
    tail -12 "$OUT/flux_run.log" ;;
  qwen)  # issue #26: the Qwen-Image gpu tests, then Qwen-Image 1328x1328 against diffusers
    if [ "${TESTS:-}" != none ]; then
      (cd build-gpu && timeout 300 ctest -L gpu -R "${TESTS:-QwenImageGpu}" -V) >"$OUT/ctest-gpu.log" 2>&1
      echo "ctest exit $?"
      grep -E "tests passed|Failed|\*\*\*|Passed|relative L2" "$OUT/ctest-gpu.log" | head -20
    fi
    keep_family_files qwen-image qwen_image-job
    tests/bench/qwen_image_gpu.sh build-gpu "$OUT" >"$OUT/qwen_run.log" 2>&1
    echo "qwen exit $?"
    tail -12 "$OUT/qwen_run.log" ;;
  resume)  # issue #23: the gpu tests of TESTS (none by default), then a 1.3B job whose worker is
           # killed halfway resumes from its last step (tests/bench/resume_gpu.sh)
    if [ -n "${TESTS:-}" ]; then
      (cd build-gpu && timeout 300 ctest -L gpu -R "$TESTS" -V) >"$OUT/ctest-gpu.log" 2>&1
      echo "ctest exit $?"
      grep -E "tests passed|Failed|\*\*\*|Passed" "$OUT/ctest-gpu.log" | head -20
    fi
    tests/bench/resume_gpu.sh build-gpu "$(checkpoint wan2.1-t2v-1.3b)" "$OUT" \
      >"$OUT/resume_run.log" 2>&1
    echo "resume exit $?"
    tail -12 "$OUT/resume_run.log" ;;
  teacache)  # issue #27: TeaCache, MagCache, fp8 attention and fp8 compute on a 1.3B job through
            # a local cluster (CACHES=0: not the caches)
    tests/bench/step_cache_gpu.sh build-gpu "$(checkpoint wan2.1-t2v-1.3b)" "$OUT" \
      >"$OUT/teacache_run.log" 2>&1
    echo "teacache exit $?"
    tail -12 "$OUT/teacache_run.log" ;;
  peers)  # issue #27: the peers on the same GPU and shapes
    python3 -m pip install -q --no-index --find-links .whl cache-dit sageattention \
      >>"$OUT/pip.log" 2>&1 || echo "cache-dit / sageattention install failed (pip.log)"
    # xDiT (xfuser) is not carried: its wheels and needs (PyAV's alone is 35 MB) do not fit the
    # 64 MiB a call carries beside the prefix (47 MB with FFmpeg) and diffusers' wheels; the
    # script says so where it tries to import it.
    : >"$OUT/wan_peers.jsonl"
    if [ "${PEERS_14B:-1}" = 1 ]; then  # PEERS_14B=0: the 1.3B cache-dit ladder alone
      ckpt=$(checkpoint wan2.1-t2v-14b)
      timeout 400 build-gpu/bin/wan_bench --checkpoint "$ckpt" --name wan14b_832x480x81 \
        --runs "${RUNS:-3}" >"$OUT/wan_peers.jsonl" 2>>"$OUT/bench.log"
      echo "wan_bench exit $?"
      ours=$(grep '"wan14b_832x480x81_step_ms_1gpu"' "$OUT/wan_peers.jsonl" |
             python3 -c 'import json,sys; print(json.load(sys.stdin)["value"])')
      timeout 500 python3 tests/bench/wan_peer_anchors.py --checkpoint "$ckpt" \
        --preset wan2.1-t2v-14b --name wan14b_832x480x81 --ours-ms "$ours" \
        --peers "${PEERS:-compile,sage,xdit}" --runs "${RUNS:-3}" >>"$OUT/wan_peers.jsonl" \
        2>"$OUT/peers_14b.log"
      echo "14B peers exit $?"
    fi
    if [ "${LADDER:-1}" = 1 ]; then
      timeout 300 python3 tests/bench/wan_peer_anchors.py \
        --checkpoint "$(checkpoint wan2.1-t2v-1.3b)" --preset wan2.1-t2v-1.3b \
        --name wan1_3b_832x480x81 --peers cachedit --steps 30 \
        >>"$OUT/wan_peers.jsonl" 2>"$OUT/peers_1_3b.log"
      echo "1.3B cache-dit exit $?"
    fi
    grep -h "did not run" "$OUT"/peers_*.log
    cat "$OUT/wan_peers.jsonl" ;;
  fluxjob)  # issues #26, #27: a real-size Flux.1-dev job with each speed switch
    keep_family_files flux flux-job bench chroma chroma-job
    tests/bench/flux_job_gpu.sh build-gpu "$OUT" >"$OUT/flux_job_run.log" 2>&1
    echo "fluxjob exit $?"
    tail -10 "$OUT/flux_job_run.log" ;;
  qwenjob)  # issue #26: a real-size Qwen-Image job with each placement and speed switch
    keep_family_files qwen-image qwen_image-job
    FAMILY=qwen_image tests/bench/family_job_gpu.sh build-gpu "$OUT" \
      >"$OUT/qwen_image_job_run.log" 2>&1
    echo "qwenjob exit $?"
    tail -10 "$OUT/qwen_image_job_run.log" ;;
  chroma)  # issue #26: Chroma against diffusers, then a real-size Chroma job
    keep_family_files chroma chroma-job bench flux flux-job
    family_runs chroma 12 ;;
  flux2)  # issue #26: FLUX.2 against diffusers, then a real-size FLUX.2 job
    keep_family_files flux2 flux2-job
    family_runs flux2 14 ;;
  fp8)  # issue #27: fp8 compute's and fp8 attention's gpu tests, then the 14B forward bf16 /
        # fp8 compute / fp8 attention / both / diffusers (CHAINS=0: without the unfused chains)
    if [ "${TESTS:-}" != none ]; then
      (cd build-gpu && timeout 300 ctest -L gpu -R "${TESTS:-Fp8|StagedUpload|Fused}" -V) \
        >"$OUT/ctest-gpu.log" 2>&1
      echo "ctest exit $?"
      grep -E "tests passed|Failed|\*\*\*|Passed|relative L2|staged upload|SKIP" \
        "$OUT/ctest-gpu.log" | head -30
    fi
    ckpt=$(checkpoint wan2.1-t2v-14b)
    chains=--chains
    [ "${CHAINS:-1}" = 1 ] || chains=
    timeout 400 build-gpu/bin/wan_bench --checkpoint "$ckpt" --name wan14b_832x480x81 --fp8 \
      --fp8_attention $chains \
      --runs "${RUNS:-3}" >>"$OUT/wan_fp8.jsonl" 2>>"$OUT/bench.log"
    echo "wan_bench exit $?"
    # The first forward of a process without the one-block warm-up (COLD=0: not).
    if [ "${COLD:-1}" = 1 ]; then
      timeout 120 build-gpu/bin/wan_bench --checkpoint "$ckpt" --name wan14b_832x480x81_cold \
        --nowarm_up --nodiffusers --runs 2 >>"$OUT/wan_fp8.jsonl" 2>>"$OUT/bench.log"
      echo "cold wan_bench exit $?"
    fi
    cat "$OUT/wan_fp8.jsonl" ;;
  text)  # issue #24: umT5-XXL (bf16) against transformers on one prompt padded to 512 tokens
    if [ "${ENCODER_BENCH:-1}" = 1 ]; then
      tests/bench/umt5_gpu.sh build-gpu "$OUT" >"$OUT/umt5.log" 2>&1
      echo "umt5 exit $?"
      tail -8 "$OUT/umt5.log"
    fi
    # Then a prompt job through a local cluster (tests/bench/prompt_job_gpu.sh).
    [ -f /tmp/raylight-umt5/umt5-xxl.safetensors ] ||
      python3 tests/bench/umt5_anchor.py make --out /tmp/raylight-umt5
    tests/bench/prompt_job_gpu.sh build-gpu "$(checkpoint wan2.1-t2v-1.3b)" \
      /tmp/raylight-umt5/umt5-xxl.safetensors "$OUT" >"$OUT/prompt_job.log" 2>&1
    echo "prompt job exit $?"
    tail -8 "$OUT/prompt_job.log" ;;
  video)  # issue #24: the VAE gpu tests (VIDEO_TESTS=regex, none), then a prompt-to-MP4 job
          # (prompt_to_video_gpu.sh)
    if [ "${VIDEO_TESTS:-}" != none ]; then
      (cd build-gpu && timeout 300 ctest -L gpu -R "${VIDEO_TESTS:-WanVaeGpu}" -V) \
        >"$OUT/ctest-video.log" 2>&1
      echo "ctest exit $?"
      grep -E "tests passed|Failed|\*\*\*|Passed|relative L2" "$OUT/ctest-video.log" | head -20
    fi
    [ -f /tmp/raylight-umt5/umt5-xxl.safetensors ] ||
      python3 tests/bench/umt5_anchor.py make --out /tmp/raylight-umt5
    tests/bench/prompt_to_video_gpu.sh build-gpu "$(checkpoint wan2.1-t2v-1.3b)" \
      /tmp/raylight-umt5/umt5-xxl.safetensors "$OUT" >"$OUT/prompt_to_video.log" 2>&1
    echo "prompt to video exit $?"
    tail -8 "$OUT/prompt_to_video.log" ;;
  vae)  # issue #24: the VAE gpu tests (TESTS=none: not), then the Wan VAE decode against
        # diffusers (SHAPES=21:832x480x81,... RUNS=3)
    if [ "${TESTS:-}" != none ]; then
      (cd build-gpu && timeout 300 ctest -L gpu -R "${TESTS:-WanVaeGpu|ChannelNormGpu}" -V) \
        >"$OUT/ctest-gpu.log" 2>&1
      echo "ctest exit $?"
      grep -E "tests passed|Failed|\*\*\*|Passed|relative L2" "$OUT/ctest-gpu.log" | head -20
    fi
    timeout 540 python3 tests/bench/wan_vae_gpu.py --rank-binary build-gpu/bin/wan_vae_rank_main \
      --out "$OUT/wan_vae.jsonl" --runs "${RUNS:-3}" \
      ${SHAPES:+--shapes "$SHAPES"} >"$OUT/wan_vae.log" 2>&1
    echo "vae bench exit $?"
    tail -12 "$OUT/wan_vae.log" ;;
  gguf)  # issue #25: the GGUF gpu tests, then 14B Q8_0 / Q4_K / Q8_0 swap 10% against bf16
    if [ "${TESTS:-}" != none ]; then
      (cd build-gpu && timeout "${TEST_TIMEOUT:-300}" ctest -L gpu -R "${TESTS:-Gguf}" -V) \
        >"$OUT/ctest-gpu.log" 2>&1
      echo "ctest exit $?"
      grep -E "tests passed|Failed|\*\*\*|Passed|over bf16" "$OUT/ctest-gpu.log" | head -30
    fi
    [ "${BENCH:-1}" = 1 ] || exit 0
    ckpt=$(checkpoint wan2.1-t2v-14b)
    RUNS=${RUNS:-3} timeout 500 tests/bench/gguf_gpu.sh build-gpu "$ckpt" "$OUT" 2>>"$OUT/bench.log"
    echo "gguf bench exit $?" ;;
  jobs)  # a 14B sampling job end to end through the head on 2 GPUs, and its anchors
    ckpt=$(checkpoint wan2.1-t2v-14b)
    timeout 300 build-gpu/bin/job_bench --gpu --checkpoint="$ckpt" --preset=wan2.1-t2v-14b \
      --name=wan14b_832x480x81 --width=832 --height=480 --frames=81 --steps=8 --mesh=ulysses=2 \
      >>"$OUT/job_bench.jsonl" 2>>"$OUT/bench.log"
    echo "job_bench exit $?"
    # The same step outside the cluster, and FSDP against replicated weights (issue #6).
    if [ "${ANCHORS:-1}" = 1 ]; then
      RUNS=${RUNS:-2} timeout 240 tests/bench/run_parallel_bench.sh build-gpu "$ckpt" \
        wan14b_832x480x81 ulysses2:ulysses=2:2 fsdp2_ulysses2:ulysses=2:2:fsdp \
        >>"$OUT/parallel_bench.jsonl" 2>>"$OUT/bench.log"
      echo "parallel 2-GPU exit $?"
    fi
    cat "$OUT/job_bench.jsonl" "$OUT/parallel_bench.jsonl" 2>/dev/null
    if [ -n "${TESTS_AFTER:-}" ]; then  # then every gpu test, in the time left
      (cd build-gpu && timeout "${TEST_TIMEOUT:-300}" ctest -L gpu -V) >"$OUT/ctest-gpu.log" 2>&1
      echo "ctest -L gpu exit $?"
      grep -E "tests passed|Failed|\*\*\*|Passed" "$OUT/ctest-gpu.log" | head -60
    fi ;;
  placement)  # issue #6: layer swap on one GPU, FSDP variants on two
    ckpt=$(checkpoint wan2.1-t2v-14b)
    if [ "${SWAP:-1}" = 1 ]; then
      RUNS=${RUNS:-2} timeout 330 tests/bench/run_parallel_bench.sh build-gpu "$ckpt" \
        wan14b_832x480x81 swap50::1:swap:--swap_budget=0.5 swap25::1:swap:--swap_budget=0.25 \
        swap10::1:swap:--swap_budget=0.1 naive_swap10::1:swap:--swap_budget=0.1,--swap_sync \
        >>"$OUT/placement_bench.jsonl" 2>>"$OUT/bench.log"
      echo "swap exit $?"
    fi
    if [ "$GPUS" -ge 2 ] && [ "${FSDP:-1}" = 1 ]; then
      RUNS=${RUNS:-2} timeout 240 tests/bench/run_parallel_bench.sh build-gpu "$ckpt" \
        wan14b_832x480x81 ulysses2:ulysses=2:2 fsdp2_ulysses2:ulysses=2:2:fsdp \
        fsdp_host2_ulysses2:ulysses=2:2:fsdp-host \
        >>"$OUT/placement_bench.jsonl" 2>>"$OUT/bench.log"
      echo "fsdp exit $?"
    fi
    grep swap_resident_blocks "$OUT/bench.log"
    cat "$OUT/placement_bench.jsonl" ;;
  scaling)  # issue #8: 14B at $LATENT on every mesh of this machine against 1 GPU
    ckpt=$(checkpoint wan2.1-t2v-14b)
    # shellcheck disable=SC2046
    RUNS=${RUNS:-2} LATENT=${LATENT:-21,60,104} timeout 560 tests/bench/run_parallel_bench.sh \
      build-gpu "$ckpt" "wan14b_${RES:-832x480x81}" $(meshes) \
      >>"$OUT/scaling_bench.jsonl" 2>>"$OUT/bench.log"
    echo "scaling exit $?"
    cat "$OUT/scaling_bench.jsonl" ;;
  overlap)  # issue #5: Ulysses' exchanges overlapped with compute, against the plain schedule
    if [ "${TESTS:-}" != none ]; then
      (cd build-gpu && timeout "${TEST_TIMEOUT:-200}" ctest -L gpu -R "${TESTS:-ParallelSampling}" -V) \
        >"$OUT/ctest-gpu.log" 2>&1
      echo "ctest exit $?"; grep -E "tests passed|Failed|\*\*\*" "$OUT/ctest-gpu.log" | head -30
    fi
    ckpt=$(checkpoint wan2.1-t2v-14b)
    [ "${BENCH:-1}" = 1 ] || [ "${PROFILE:-1}" = 1 ] || exit 0
    # Default: cond + uncond as one batch in two interleaved micro-batches (copy-engine
    # exchanges) against the same without interleaving, the two-forward step of earlier sessions,
    # the plain schedule, NCCL kernels, ring 2 and cfg 2; and one GPU with batching (the 1-GPU
    # reference runs cond and uncond as two forwards, the faster there).
    # shellcheck disable=SC2206
    meshes=(${MESHES:-ulysses2:ulysses=2:2 \
      ulysses2_all_to_all:ulysses=2:2:resident:--peer_exchanges=false \
      ulysses2_no_interleave:ulysses=2:2:resident:--interleave=false \
      ulysses2_unbatched:ulysses=2:2:resident:--batch_cfg=false \
      ulysses2_plain:ulysses=2:2:resident:--overlap_exchanges=false,--copy_engine=false \
      ulysses2_kernels:ulysses=2:2:resident:--copy_engine=false \
      ring2:ring=2:2 cfg2:cfg=2:2 1gpu_batched::1:resident:--batch_cfg=true})
    if [ "${BENCH:-1}" = 1 ]; then
      # Every card's SM clock, power and temperature while the steps run (every 100 ms):
      # tests/bench/clock_phases.py compares the one-GPU and two-GPU phases.
      nvidia-smi --query-gpu=timestamp,index,clocks.sm,power.draw,temperature.gpu,utilization.gpu \
        --format=csv,noheader -lms 100 >"$OUT/clocks.csv" 2>/dev/null &
      sampler=$!
      RUNS=${RUNS:-3} timeout "${BENCH_TIMEOUT:-480}" tests/bench/run_parallel_bench.sh build-gpu \
        "$ckpt" wan14b_832x480x81 "${meshes[@]}" >>"$OUT/overlap_bench.jsonl" 2>>"$OUT/bench.log"
      echo "overlap exit $?"
      kill "$sampler" 2>/dev/null
      python3 tests/bench/clock_phases.py "$OUT/clocks.csv" >"$OUT/clock_phases.jsonl"
    fi
    if [ "${PROFILE:-1}" = 1 ]; then
      # PROFILES: LABEL:MESH:RANKS[:FLAGS] steps to trace (rank 0; both with BOTH_RANKS=1).
      for spec in ${PROFILES:-ulysses2:ulysses=2:2}; do
        IFS=: read -r label mesh ranks flags <<<"$spec"
        SINGLE=0 RUNS=1 timeout 100 tests/bench/run_parallel_bench.sh build-gpu "$ckpt" \
          wan14b_832x480x81 \
          "profile_$label:$mesh:$ranks:resident:--profile_trace=$OUT/trace_$label${flags:+,$flags}" \
          >>"$OUT/profile_bench.jsonl" 2>>"$OUT/bench.log"
        echo "profile $label exit $?"
      done
      [ "${BOTH_RANKS:-0}" = 1 ] || rm -f "$OUT"/trace_*.rank1.json
      gzip -f "$OUT"/trace_*.json 2>/dev/null
    fi
    # cuBLAS per-token throughput of the 14B linear layers at the per-rank token counts.
    if [ "${GEMM:-0}" = 1 ]; then
      timeout 60 python3 tests/bench/gemm_rows.py >"$OUT/gemm_rows.jsonl" 2>>"$OUT/bench.log"
    fi
    cat "$OUT/overlap_bench.jsonl" ;;
  parallel|bench|all)  # earlier sessions' runs: gpu tests, Wan forward, parallel on 2 GPUs
    if [ "$WHAT" != bench ]; then
      filter=()
      [ "$WHAT" = parallel ] && filter=(-R ParallelSampling)
      (cd build-gpu && timeout 480 ctest -L gpu "${filter[@]}" -V) >"$OUT/ctest-gpu.log" 2>&1
      echo "ctest exit $?"; grep -E "tests passed|Failed|\*\*\*|relative L2" "$OUT/ctest-gpu.log" | head -30
    fi
    for spec in "wan2.1-t2v-1.3b wan1_3b_832x480x81" "wan2.1-t2v-14b wan14b_832x480x81"; do
      set -- $spec
      ckpt=$(checkpoint "$1")
      if [ "$WHAT" != parallel ]; then
        timeout 300 build-gpu/bin/wan_bench --checkpoint "$ckpt" --name "$2" \
          >>"$OUT/wan_bench.jsonl" 2>>"$OUT/bench.log"
        echo "$2 exit $?"
      fi
      timeout 400 tests/bench/run_parallel_bench.sh build-gpu "$ckpt" "$2" \
        >>"$OUT/parallel_bench.jsonl" 2>>"$OUT/bench.log"
      echo "$2 parallel exit $?"
      rm -f "$ckpt"
    done
    cat "$OUT"/wan_bench.jsonl "$OUT/parallel_bench.jsonl" 2>/dev/null ;;
  *) echo "unknown mode $WHAT (tests|jobs|placement|scaling|overlap|parallel|bench|all)"; exit 2 ;;
esac
