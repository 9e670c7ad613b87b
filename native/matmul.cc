// jaxnn's native matrix product: C = op(A) @ op(B) in float32 through oneDNN's sgemm, as a jax.ffi handler.
// jaxnn.nn.Linear's input and weight gradients (dy @ W^T, x^T @ dy) call it when the native kernels are on: the
// weight gradient of a batch of 64 rows through VGG's 4096-wide classifier takes oneDNN 1.8-2.9x less time than
// XLA's dot, and XLA's dots run beside the step's other kernels on the same two cores (benchmarks/RESULTS.md).
//
// Shapes: a (M, K), or (K, M) with transpose_a; b (K, N), or (N, K) with transpose_b -> c (M, N), all row-major.

#include <cstdint>

#include "oneapi/dnnl/dnnl.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using F32 = ffi::Buffer<ffi::F32>;

ffi::Error Matmul(F32 a, F32 b, ffi::Result<F32> c, int64_t transpose_a, int64_t transpose_b) {
  auto da = a.dimensions(), db = b.dimensions(), dc = c->dimensions();
  if (da.size() != 2 || db.size() != 2 || dc.size() != 2) {
    return ffi::Error::InvalidArgument("JaxnnMatmul: a, b and c must be matrices");
  }
  int64_t m = transpose_a ? da[1] : da[0], k = transpose_a ? da[0] : da[1];
  int64_t kb = transpose_b ? db[1] : db[0], n = transpose_b ? db[0] : db[1];
  if (k != kb || dc[0] != m || dc[1] != n) {
    return ffi::Error::InvalidArgument("JaxnnMatmul: the shapes of a, b and c do not match");
  }
  dnnl_status_t status = dnnl_sgemm(transpose_a ? 'T' : 'N', transpose_b ? 'T' : 'N', m, n, k, 1.0f,
                                    a.typed_data(), da[1], b.typed_data(), db[1], 0.0f, c->typed_data(), n);
  if (status != dnnl_success) return ffi::Error::Internal("JaxnnMatmul: oneDNN's sgemm failed");
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxnnMatmul, Matmul,
                              ffi::Ffi::Bind()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Ret<F32>()
                                  .Attr<int64_t>("transpose_a")
                                  .Attr<int64_t>("transpose_b"));
