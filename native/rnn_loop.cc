// jaxnn's native recurrent time loop: the steps of one layer in one direction of torch.nn.RNN (tanh, relu), LSTM
// or GRU, forward and backward, as jax.ffi handlers in float32. jaxnn.nn.rnn's hand-written VJP
// (_time_loop) calls them in place of its two lax.scans when the native kernels are on: the input projection
// before the loop stays one XLA matrix product; the weights' gradients after it are matmul.cc's products.
//
// Each sequence of the batch is its own recurrence, so the batch is split between the OpenMP threads once and
// every thread runs its rows through all the steps: no synchronisation per step. A step is one oneDNN sgemm
// (h @ W_hh^T) and the cell's arithmetic, written as jaxnn.nn.recurrent writes it.
//
// Shapes (G gates, H hidden; S the cell's saved width: 4H for LSTM (i, f, g, o) and GRU (r, z, n, W_hn h + b_hn),
// 0 for RNN; C = H for LSTM's c, 0 otherwise), all in the stacks' original time order:
//   forward:  gi (T, B, G*H) = x W_ih^T, w_hh_t (H, G*H), b_ih and b_hh (G*H), h0 (B, H), c0 (B, C)
//             -> hs (T, B, H), cs (T, B, C), saved (T, B, S)
//   backward: d_hs (T, B, H), d_h_last and d_c_last (B, H), (B, C): the final carry's cotangents, saved, hs, cs,
//             h0, c0, w_hh (G*H, H)
//             -> d_gi (T, B, G*H), d_gh (T, B, G*H) (GRU only: else (0,)), d_h0 (B, H), d_c0 (B, C)
// Attributes: cell (0 RNN tanh, 1 RNN relu, 2 LSTM, 3 GRU), reverse (1: the loop runs from the last step).

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "oneapi/dnnl/dnnl.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kRelu = 1, kLstm = 2, kGru = 3;

// exp, tanh and the logistic in float32 without libm calls, so that the compiler vectorises the cell's loops (a
// scalar libm call per value made the LSTM's forward 4x slower than its matrix products), after Cephes' expf and
// tanhf: tanh within 1.5 ulp and the logistic within 2.5 of float64's values (tests/test_native.py sweeps them),
// NaN in, NaN out.
inline float exp_(float x) {
  x = x < -87.33654f ? -87.33654f : x > 88.37626f ? 88.37626f : x;  // exp's float range; a NaN passes
  float n = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f - n * -2.12194440e-4f;  // x - n ln2 in two parts (Cody and Waite)
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float y = p * r * r + r + 1.0f;
  n = n == n ? n : 0.0f;  // a NaN's y is NaN already; converting a NaN to an integer is undefined
  return y * __builtin_bit_cast(float, (static_cast<int32_t>(n) + 127) << 23);  // times 2^n (n = 128: inf)
}

inline float tanh_(float x) {
  float z = x * x;  // |x| < 0.625: an odd polynomial; beyond: 1 - 2 / (exp(2|x|) + 1), with x's sign
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  float small = x + x * z * p;
  float large = std::copysign(1.0f - 2.0f / (exp_(2.0f * std::fabs(x)) + 1.0f), x);
  return std::fabs(x) < 0.625f ? small : large;
}

inline float sigmoid(float x) { return 1.0f / (1.0f + exp_(-x)); }

struct Loop {
  int64_t cell, t, b, h, reverse;

  int64_t gates() const { return cell == kLstm ? 4 : cell == kGru ? 3 : 1; }
  int64_t width() const { return gates() * h; }
  // The time index of the s-th step the loop takes, and of the step before it (-1: the initial state).
  int64_t at(int64_t s) const { return reverse ? t - 1 - s : s; }
  int64_t before(int64_t s) const { return s == 0 ? -1 : at(s - 1); }
};

// C (rows, n) = A (rows, k) @ B (k, n), all row-major and dense.
void matmul(const float* a, const float* b, float* c, int64_t rows, int64_t k, int64_t n) {
  dnnl_sgemm('N', 'N', rows, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
}

// Rows [r0, r1) of the batch, split evenly between the threads; `body(r0, r1)` runs each share.
template <typename Body>
void split_batch(int64_t batch, Body body) {
  int64_t threads = std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), batch));
#pragma omp parallel for num_threads(threads) schedule(static, 1)
  for (int64_t k = 0; k < threads; ++k) body(batch * k / threads, batch * (k + 1) / threads);
}

void forward_rows(const Loop& l, int64_t r0, int64_t r1, const float* gi_raw, const float* w_hh_t, const float* b_ih,
                  const float* b_hh, const float* h0, const float* c0, float* hs, float* cs, float* saved) {
  const int64_t rows = r1 - r0, H = l.h, W = l.width(), B = l.b;
  const bool relu = l.cell == kRelu;
  std::vector<float> gh(rows * W), gi(W);
  for (int64_t s = 0; s < l.t; ++s) {
    const int64_t t = l.at(s), p = l.before(s);
    const float* h_prev = p < 0 ? h0 + r0 * H : hs + (p * B + r0) * H;
    const float* c_prev = p < 0 ? c0 + r0 * H : cs + (p * B + r0) * H;
    matmul(h_prev, w_hh_t, gh.data(), rows, H, W);
    for (int64_t r = 0; r < rows; ++r) {
      float* g_h = gh.data() + r * W;
      const float* x_w = gi_raw + (t * B + r0 + r) * W;
      float* g_i = gi.data();
      float* h = hs + (t * B + r0 + r) * H;
      for (int64_t j = 0; j < W; ++j) g_i[j] = x_w[j] + b_ih[j], g_h[j] += b_hh[j];
      if (l.cell == kLstm) {
        float* c = cs + (t * B + r0 + r) * H;
        float* sv = saved + (t * B + r0 + r) * 4 * H;
        const float* cp = c_prev + r * H;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          float i = sigmoid(g_i[j] + g_h[j]), f = sigmoid(g_i[H + j] + g_h[H + j]);
          float g = tanh_(g_i[2 * H + j] + g_h[2 * H + j]), o = sigmoid(g_i[3 * H + j] + g_h[3 * H + j]);
          c[j] = f * cp[j] + i * g;
          h[j] = o * tanh_(c[j]);
          sv[j] = i, sv[H + j] = f, sv[2 * H + j] = g, sv[3 * H + j] = o;
        }
      } else if (l.cell == kGru) {
        float* sv = saved + (t * B + r0 + r) * 4 * H;
        const float* hp = h_prev + r * H;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          float rg = sigmoid(g_i[j] + g_h[j]), z = sigmoid(g_i[H + j] + g_h[H + j]);
          float n = tanh_(g_i[2 * H + j] + rg * g_h[2 * H + j]);
          h[j] = (1.0f - z) * n + z * hp[j];
          sv[j] = rg, sv[H + j] = z, sv[2 * H + j] = n, sv[3 * H + j] = g_h[2 * H + j];
        }
      } else {
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          float a = g_i[j] + g_h[j];
          h[j] = relu ? (a < 0.0f ? 0.0f : a) : tanh_(a);  // relu keeps a NaN, as jax.nn.relu does
        }
      }
    }
  }
}

void backward_rows(const Loop& l, int64_t r0, int64_t r1, const float* d_hs, const float* d_h_last,
                   const float* d_c_last, const float* saved, const float* hs, const float* cs, const float* h0,
                   const float* c0, const float* w_hh, float* d_gi, float* d_gh, float* d_h0, float* d_c0) {
  const int64_t rows = r1 - r0, H = l.h, W = l.width(), B = l.b;
  // The carry's cotangent starts from the final carry's; the other steps' c is no output, so it gets none.
  std::vector<float> d_h(d_h_last + r0 * H, d_h_last + r1 * H), d_c, through(rows * H);
  if (l.cell == kLstm) d_c.assign(d_c_last + r0 * H, d_c_last + r1 * H);
  for (int64_t s = l.t - 1; s >= 0; --s) {
    const int64_t t = l.at(s), p = l.before(s);
    const float* h_prev = p < 0 ? h0 + r0 * H : hs + (p * B + r0) * H;
    const float* c_prev = p < 0 ? c0 + r0 * H : cs + (p * B + r0) * H;
    // the rows of this step's hidden-projection cotangent: d_gh for GRU, d_gi (the same) otherwise
    float* dgh = (l.cell == kGru ? d_gh : d_gi) + (t * B + r0) * W;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t row = t * B + r0 + r;
      float* dgi = d_gi + row * W;
      float* dh = d_h.data() + r * H;
      const float* dh_out = d_hs + row * H;
      if (l.cell == kLstm) {
        const float* sv = saved + row * 4 * H;
        const float* c = cs + row * H;
        const float* cp = c_prev + r * H;
        float* dc = d_c.data() + r * H;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          float i = sv[j], f = sv[H + j], g = sv[2 * H + j], o = sv[3 * H + j];
          float th = dh[j] + dh_out[j], tc = dc[j];
          float tanh_c = tanh_(c[j]);
          float dcj = tc + th * o * (1.0f - tanh_c * tanh_c);
          dgi[j] = dcj * g * i * (1.0f - i);
          dgi[H + j] = dcj * cp[j] * f * (1.0f - f);
          dgi[2 * H + j] = dcj * i * (1.0f - g * g);
          dgi[3 * H + j] = th * tanh_c * o * (1.0f - o);
          dc[j] = dcj * f;
          through[r * H + j] = 0.0f;
        }
      } else if (l.cell == kGru) {
        const float* sv = saved + row * 4 * H;
        const float* hp = h_prev + r * H;
        float* dghr = dgh + r * W;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          float rg = sv[j], z = sv[H + j], n = sv[2 * H + j], hn = sv[3 * H + j];
          float th = dh[j] + dh_out[j];
          float d_pre_n = th * (1.0f - z) * (1.0f - n * n);
          float d_pre_z = th * (hp[j] - n) * z * (1.0f - z);
          float d_pre_r = d_pre_n * hn * rg * (1.0f - rg);
          dgi[j] = d_pre_r, dgi[H + j] = d_pre_z, dgi[2 * H + j] = d_pre_n;
          dghr[j] = d_pre_r, dghr[H + j] = d_pre_z, dghr[2 * H + j] = d_pre_n * rg;
          through[r * H + j] = th * z;
        }
      } else {
        const float* h = hs + row * H;
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          float th = dh[j] + dh_out[j];
          dgi[j] = l.cell == kRelu ? (h[j] > 0.0f ? th : 0.0f) : th * (1.0f - h[j] * h[j]);
          through[r * H + j] = 0.0f;
        }
      }
    }
    // the cotangent of the step before: what passed around the hidden projection, plus d_gh @ W_hh
    matmul(dgh, w_hh, d_h.data(), rows, W, H);
    for (int64_t k = 0; k < rows * H; ++k) d_h[k] = through[k] + d_h[k];
  }
  std::memcpy(d_h0 + r0 * H, d_h.data(), rows * H * sizeof(float));
  if (l.cell == kLstm) std::memcpy(d_c0 + r0 * H, d_c.data(), rows * H * sizeof(float));
}

using F32 = ffi::Buffer<ffi::F32>;
using F32Out = ffi::ResultBuffer<ffi::F32>;

ffi::Error Forward(F32 gi, F32 w_hh_t, F32 b_ih, F32 b_hh, F32 h0, F32 c0, F32Out hs, F32Out cs, F32Out saved,
                   int64_t cell, int64_t reverse) {
  auto d = gi.dimensions();
  Loop l{cell, d[0], d[1], h0.dimensions()[1], reverse};
  if (w_hh_t.dimensions()[1] != l.width() || b_ih.element_count() != l.width() || b_hh.element_count() != l.width())
    return ffi::Error(ffi::ErrorCode::kInvalidArgument, "jaxnn native RNN loop: weights do not fit the cell");
  split_batch(l.b, [&](int64_t r0, int64_t r1) {
    forward_rows(l, r0, r1, gi.typed_data(), w_hh_t.typed_data(), b_ih.typed_data(), b_hh.typed_data(),
                 h0.typed_data(), c0.typed_data(), hs->typed_data(), cs->typed_data(), saved->typed_data());
  });
  return ffi::Error::Success();
}

ffi::Error Backward(F32 d_hs, F32 d_h_last, F32 d_c_last, F32 saved, F32 hs, F32 cs, F32 h0, F32 c0, F32 w_hh,
                    F32Out d_gi, F32Out d_gh, F32Out d_h0, F32Out d_c0, int64_t cell, int64_t reverse) {
  auto d = hs.dimensions();
  Loop l{cell, d[0], d[1], d[2], reverse};
  split_batch(l.b, [&](int64_t r0, int64_t r1) {
    backward_rows(l, r0, r1, d_hs.typed_data(), d_h_last.typed_data(), d_c_last.typed_data(), saved.typed_data(),
                  hs.typed_data(), cs.typed_data(), h0.typed_data(), c0.typed_data(), w_hh.typed_data(),
                  d_gi->typed_data(), d_gh->typed_data(), d_h0->typed_data(), d_c0->typed_data());
  });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxnnRnnLoopForward, Forward,
                              ffi::Ffi::Bind()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Ret<F32>()
                                  .Ret<F32>()
                                  .Ret<F32>()
                                  .Attr<int64_t>("cell")
                                  .Attr<int64_t>("reverse"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxnnRnnLoopBackward, Backward,
                              ffi::Ffi::Bind()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Ret<F32>()
                                  .Ret<F32>()
                                  .Ret<F32>()
                                  .Ret<F32>()
                                  .Attr<int64_t>("cell")
                                  .Attr<int64_t>("reverse"));
