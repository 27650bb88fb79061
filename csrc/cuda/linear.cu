// cuda/linear.cu — fully connected layer on the convolution's GEMM tiles (gemm_tiles.cuh):
//   forward      y[m][n]  = sum_k x[m][k]  * w[n][k] + b[n]
//   grad input   dx[m][k] = sum_n dy[m][n] * w[n][k]
//   grad weight  dw[n][k] = sum_m dy[m][n] * x[m][k]   (split over m with atomics when m is long)
// Each side declares which of its axes is contiguous so the tile loads coalesce; the bias
// gradient is a column sum.
#include "cuda/block_reduce.cuh"
#include "cuda/cuda_check.cuh"
#include "cuda/dtype_dispatch.cuh"
#include "cuda/gemm_tiles.cuh"
#include "medkern/linear.h"

namespace medkern::cuda {
namespace {

// A matrix operand read as op(row, k) = data[row * row_stride + k * k_stride].
template <class T, bool KFastest> struct MatrixSide {
  static constexpr bool kKFastest = KFastest;
  using Acc = acc_t<T>;
  const T* data;
  int64_t row_stride, k_stride;
  struct Ctx { const T* base; };
  struct KPart { int64_t off; };
  __device__ Ctx ctx(int64_t row, int) const { return {data + row * row_stride}; }
  __device__ KPart k_part(int64_t k) const { return {k * k_stride}; }
  __device__ Acc load(const Ctx& c, const KPart& kp) const { return to_acc<Acc>(c.base[kp.off]); }
};

template <class T, bool AKFastest, bool BKFastest> struct MatmulProblem {
  using Elem = T;
  using Acc = acc_t<T>;
  using ASide = MatrixSide<T, AKFastest>;
  using BSide = MatrixSide<T, BKFastest>;
  int64_t M, N, K;
  int groups = 1;
  ASide a;
  BSide b;
  T* c; int64_t c_row, c_col; const T* bias; int64_t bias_stride;
  struct OutRow { T* ptr; };
  __device__ OutRow out_row(int64_t m, int) const { return {c + m * c_row}; }
  __device__ void store(const OutRow& row, int64_t n, int, Acc v, bool accumulate) const {
    T* out = row.ptr + n * c_col;
    if (accumulate) {
      atomic_add(out, v);
      return;
    }
    if (bias) v += to_acc<Acc>(bias[n * bias_stride]);
    *out = from_acc<T>(v);
  }
};

// Column sums of dy (M, N): 32 columns per block, 8 row lanes each, combined in shared memory.
template <class T>
__global__ void linear_backward_bias_kernel(const T* __restrict__ dy, int64_t M, int64_t N, int64_t s_row,
                                            int64_t s_col, T* __restrict__ db, int64_t db_stride) {
  using Acc = acc_t<T>;
  __shared__ Acc partial[8][33];
  const int col_lane = threadIdx.x % 32, row_lane = threadIdx.x / 32;
  const int64_t n = int64_t(blockIdx.x) * 32 + col_lane;
  Acc acc = Acc(0);
  if (n < N)
    for (int64_t m = row_lane; m < M; m += 8) acc += to_acc<Acc>(dy[m * s_row + n * s_col]);
  partial[row_lane][col_lane] = acc;
  __syncthreads();
  if (row_lane == 0 && n < N) {
    Acc total = Acc(0);
    for (int r = 0; r < 8; ++r) total += partial[r][col_lane];
    db[n * db_stride] = from_acc<T>(total);
  }
}

}  // namespace

void linear_forward(const TensorView& input, const TensorView& weight, const TensorView* bias,
                    const TensorView& output, bool allow_tf32, Stream stream) {
  if (output.numel() == 0) return;
  DeviceGuard guard(output);
  const cudaStream_t s = as_cuda_stream(stream);
  dispatch_floating(input.dtype, "input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    MatmulProblem<T, true, true> prob{};
    prob.M = input.shape[0]; prob.N = weight.shape[0]; prob.K = input.shape[1];
    prob.a = {input.ptr<const T>(), input.strides[0], input.strides[1]};
    prob.b = {weight.ptr<const T>(), weight.strides[0], weight.strides[1]};
    prob.c = output.ptr<T>(); prob.c_row = output.strides[0]; prob.c_col = output.strides[1];
    prob.bias = bias ? bias->ptr<const T>() : nullptr;
    prob.bias_stride = bias ? bias->strides[0] : 0;
    launch_gemm(prob, math_mode_for<T>(allow_tf32), 1, s, "linear_forward (GEMM)");
  });
}

void linear_backward_input(const TensorView& grad_output, const TensorView& weight, const TensorView& grad_input,
                           bool allow_tf32, Stream stream) {
  if (grad_input.numel() == 0) return;
  DeviceGuard guard(grad_input);
  const cudaStream_t s = as_cuda_stream(stream);
  dispatch_floating(grad_output.dtype, "grad_output", [&](auto tag) {
    using T = typename decltype(tag)::type;
    // A(m, j) = dy[m][j] (contiguous along j); B(j, k) = w[j][k], read per column k (contiguous along k)
    MatmulProblem<T, true, false> prob{};
    prob.M = grad_output.shape[0]; prob.N = weight.shape[1]; prob.K = weight.shape[0];
    prob.a = {grad_output.ptr<const T>(), grad_output.strides[0], grad_output.strides[1]};
    prob.b = {weight.ptr<const T>(), weight.strides[1], weight.strides[0]};
    prob.c = grad_input.ptr<T>(); prob.c_row = grad_input.strides[0]; prob.c_col = grad_input.strides[1];
    launch_gemm(prob, math_mode_for<T>(allow_tf32), 1, s, "linear_backward_input (GEMM)");
  });
}

void linear_backward_weight(const TensorView& grad_output, const TensorView& input, const TensorView& grad_weight,
                            bool allow_tf32, Stream stream) {
  if (grad_weight.numel() == 0) return;
  DeviceGuard guard(grad_weight);
  const cudaStream_t s = as_cuda_stream(stream);
  dispatch_floating(grad_output.dtype, "grad_output", [&](auto tag) {
    using T = typename decltype(tag)::type;
    // A(n, m) = dy[m][n] and B(m, k) = x[m][k]: both read along rows of the batch, so rows-fastest
    MatmulProblem<T, false, false> prob{};
    prob.M = grad_output.shape[1]; prob.N = input.shape[1]; prob.K = grad_output.shape[0];
    prob.a = {grad_output.ptr<const T>(), grad_output.strides[1], grad_output.strides[0]};
    prob.b = {input.ptr<const T>(), input.strides[1], input.strides[0]};
    prob.c = grad_weight.ptr<T>(); prob.c_row = grad_weight.strides[0]; prob.c_col = grad_weight.strides[1];
    int splits = 1;
    const bool wide = std::is_same_v<T, float> || std::is_same_v<T, double>;
    if (wide && grad_weight.is_contiguous() && prob.K > 0)
      splits = choose_splits(((prob.M + 63) / 64) * ((prob.N + 63) / 64), prob.K, 256);
    if (splits > 1 && grad_weight.is_contiguous())
      MEDKERN_CUDA_CHECK(cudaMemsetAsync(grad_weight.data, 0, grad_weight.numel() * sizeof(T), s));
    launch_gemm(prob, math_mode_for<T>(allow_tf32), splits, s, "linear_backward_weight (GEMM)");
  });
}

void linear_backward_bias(const TensorView& grad_output, const TensorView& grad_bias, Stream stream) {
  if (grad_bias.numel() == 0) return;
  DeviceGuard guard(grad_bias);
  const cudaStream_t s = as_cuda_stream(stream);
  dispatch_floating(grad_output.dtype, "grad_output", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const int64_t N = grad_output.shape[1];
    linear_backward_bias_kernel<T><<<static_cast<unsigned>((N + 31) / 32), 256, 0, s>>>(
        grad_output.ptr<const T>(), grad_output.shape[0], N, grad_output.strides[0], grad_output.strides[1],
        grad_bias.ptr<T>(), grad_bias.strides[0]);
    MEDKERN_CUDA_CHECK_LAUNCH("linear_backward_bias_kernel");
  });
}

}  // namespace medkern::cuda
