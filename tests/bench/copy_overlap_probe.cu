// Which kinds of copy run beside a kernel that fills every SM, and which wait for it to end.
// Ulysses' exchanges run on a side stream while the compute stream runs GEMMs and attention that
// occupy the whole GPU; a copy the driver executes on the SMs (a copy kernel) cannot start until
// those end, so it serialises with compute however the streams are arranged. This probe times
// each kind of copy alone and issued while a long SM-filling kernel runs on another stream.
//
//   nvcc -O2 -std=c++17 -arch=sm_90 tests/bench/copy_overlap_probe.cu -lcuda -o /tmp/probe
//   /tmp/probe            (needs two GPUs with peer access for the peer rows)
//
// Output: one JSON line per copy kind: alone_us, and with the busy kernel: the copy's end
// measured from the busy kernel's start and whether it finished before the kernel did.
#include <cuda.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

#define CHECK(call)                                                     \
  do {                                                                  \
    cudaError_t status_ = (call);                                       \
    if (status_ != cudaSuccess) {                                       \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #call, \
                   cudaGetErrorString(status_));                        \
      std::exit(1);                                                     \
    }                                                                   \
  } while (0)

// Every CTA spins for `cycles` clock ticks: launched with as many CTAs as fit at once, it holds
// every SM for the whole time, like a persistent GEMM or attention kernel.
__global__ void Busy(long long cycles, int* sink) {
  long long start = clock64();
  while (clock64() - start < cycles) {
  }
  if (threadIdx.x == 0 && cycles < 0) *sink = 1;
}

struct Probe {
  cudaStream_t compute, side;
  int sms = 0, per_sm = 0;
  int* sink = nullptr;
  long long busy_cycles = 0;

  // Milliseconds the copy took alone, and (with the busy kernel running) when the copy ended
  // relative to the kernel's start and when the kernel ended.
  void Run(const std::string& name, const std::function<cudaError_t(cudaStream_t)>& copy) {
    cudaEvent_t a, b, k0, k1, c1;
    for (cudaEvent_t* e : {&a, &b, &k0, &k1, &c1}) CHECK(cudaEventCreate(e));
    // Alone (warm up once first).
    CHECK(copy(side));
    CHECK(cudaStreamSynchronize(side));
    CHECK(cudaEventRecord(a, side));
    cudaError_t status = copy(side);
    CHECK(cudaEventRecord(b, side));
    CHECK(cudaStreamSynchronize(side));
    if (status != cudaSuccess) {
      std::printf("{\"copy\": \"%s\", \"error\": \"%s\"}\n", name.c_str(),
                  cudaGetErrorString(status));
      cudaGetLastError();
      return;
    }
    float alone = 0;
    CHECK(cudaEventElapsedTime(&alone, a, b));
    // Beside the busy kernel: the side stream starts after the kernel has started.
    CHECK(cudaEventRecord(k0, compute));
    Busy<<<sms * per_sm, 256, 0, compute>>>(busy_cycles, sink);
    CHECK(cudaEventRecord(k1, compute));
    CHECK(cudaStreamWaitEvent(side, k0));
    CHECK(copy(side));
    CHECK(cudaEventRecord(c1, side));
    CHECK(cudaDeviceSynchronize());
    float kernel = 0, copy_end = 0;
    CHECK(cudaEventElapsedTime(&kernel, k0, k1));
    CHECK(cudaEventElapsedTime(&copy_end, k0, c1));
    std::printf(
        "{\"copy\": \"%s\", \"alone_us\": %.1f, \"busy_kernel_us\": %.1f, "
        "\"copy_end_us\": %.1f, \"overlapped\": %s}\n",
        name.c_str(), alone * 1e3, kernel * 1e3, copy_end * 1e3,
        copy_end < kernel - 100e-3 ? "true" : "false");
    std::fflush(stdout);
    for (cudaEvent_t e : {a, b, k0, k1, c1}) cudaEventDestroy(e);
  }
};

int main() {
  int devices = 0;
  CHECK(cudaGetDeviceCount(&devices));
  CHECK(cudaSetDevice(0));
  int low = 0, high = 0;
  CHECK(cudaDeviceGetStreamPriorityRange(&low, &high));
  Probe probe;
  CHECK(cudaStreamCreateWithPriority(&probe.compute, cudaStreamNonBlocking, low));
  CHECK(cudaStreamCreateWithPriority(&probe.side, cudaStreamNonBlocking, high));
  CHECK(cudaDeviceGetAttribute(&probe.sms, cudaDevAttrMultiProcessorCount, 0));
  CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&probe.per_sm, Busy, 256, 0));
  CHECK(cudaMalloc(&probe.sink, sizeof(int)));
  int clock_khz = 0;
  CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0));
  probe.busy_cycles = static_cast<long long>(clock_khz) * 20;  // ~20 ms
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  std::printf("{\"driver\": %d, \"runtime\": %d, \"sms\": %d, \"busy_ctas_per_sm\": %d}\n", driver,
              runtime, probe.sms, probe.per_sm);

  // One Ulysses exchange's sizes at 14B 832x480x81 with two ranks: a [16380, 40, 128] bf16 tensor
  // (168 MB) packed, half of it (84 MB) to the peer.
  const size_t rows = 16380, row_bytes = 40 * 128 * 2, half = row_bytes / 2;
  const size_t bytes = rows * row_bytes;
  char *src = nullptr, *dst = nullptr;
  CHECK(cudaMalloc(&src, bytes));
  CHECK(cudaMalloc(&dst, bytes));
  CHECK(cudaMemset(src, 1, bytes));

  probe.Run("memcpy_dtod", [&](cudaStream_t s) {
    return cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s);
  });
  probe.Run("memcpy2d_dtod_half_rows", [&](cudaStream_t s) {
    return cudaMemcpy2DAsync(dst, half, src, row_bytes, half, rows, cudaMemcpyDeviceToDevice, s);
  });
  for (unsigned flags : {0u, static_cast<unsigned>(cudaMemcpyFlagPreferOverlapWithCompute)}) {
    probe.Run(std::string("batch_dtod_flags") + std::to_string(flags), [&](cudaStream_t s) {
      void* dsts[1] = {dst};
      const void* srcs[1] = {src};
      size_t sizes[1] = {bytes};
      cudaMemcpyAttributes attrs = {};
      attrs.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
      attrs.flags = flags;
      size_t index = 0;
      return cudaMemcpyBatchAsync(dsts, srcs, sizes, 1, &attrs, &index, 1, s);
    });
    probe.Run(std::string("batch3d_half_rows_flags") + std::to_string(flags), [&](cudaStream_t s) {
      cudaMemcpy3DBatchOp op = {};
      op.src.type = cudaMemcpyOperandTypePointer;
      op.src.op.ptr.ptr = src;
      op.src.op.ptr.rowLength = row_bytes;
      op.dst.type = cudaMemcpyOperandTypePointer;
      op.dst.op.ptr.ptr = dst;
      op.dst.op.ptr.rowLength = half;
      op.extent = {half, rows, 1};
      op.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
      op.flags = flags;
      return cudaMemcpy3DBatchAsync(1, &op, 0, s);
    });
  }

  if (devices >= 2) {
    int can = 0;
    CHECK(cudaDeviceCanAccessPeer(&can, 0, 1));
    if (can) {
      CHECK(cudaDeviceEnablePeerAccess(1, 0));
      char* remote = nullptr;
      CHECK(cudaSetDevice(1));
      CHECK(cudaMalloc(&remote, bytes));
      CHECK(cudaDeviceEnablePeerAccess(0, 0));
      CHECK(cudaSetDevice(0));
      probe.Run("memcpy_to_peer_half", [&](cudaStream_t s) {
        return cudaMemcpyAsync(remote, src, bytes / 2, cudaMemcpyDeviceToDevice, s);
      });
      probe.Run("memcpy2d_to_peer_half_rows", [&](cudaStream_t s) {
        return cudaMemcpy2DAsync(remote, row_bytes, src, row_bytes, half, rows,
                                 cudaMemcpyDeviceToDevice, s);
      });
      probe.Run("memcpy_to_peer_4_bytes", [&](cudaStream_t s) {
        return cudaMemcpyAsync(remote, src, 4, cudaMemcpyDeviceToDevice, s);
      });
      probe.Run("write_value_to_peer", [&](cudaStream_t s) {
        return cuStreamWriteValue32(s, reinterpret_cast<CUdeviceptr>(remote), 7, 0) == CUDA_SUCCESS
                   ? cudaSuccess
                   : cudaErrorInvalidValue;
      });
      probe.Run("wait_value_local_met", [&](cudaStream_t s) {
        // The flag already holds the value: measures the memop's own cost and whether it waits
        // for the busy kernel.
        cuStreamWriteValue32(s, reinterpret_cast<CUdeviceptr>(dst), 5, 0);
        return cuStreamWaitValue32(s, reinterpret_cast<CUdeviceptr>(dst), 5,
                                   CU_STREAM_WAIT_VALUE_GEQ) == CUDA_SUCCESS
                   ? cudaSuccess
                   : cudaErrorInvalidValue;
      });
    }
  }
  return 0;
}
