#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include "xla/ffi/api/ffi.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace ffi = xla::ffi;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

static dnnl::engine& engine() { static dnnl::engine e(dnnl::engine::kind::cpu, 0); return e; }

struct Fwd { dnnl::convolution_forward prim; dnnl::memory::desc src, wei, dst, wei_plain; bool reorder; };
static std::map<std::vector<int64_t>, std::shared_ptr<Fwd>> cache;
static std::mutex mu;

static std::shared_ptr<Fwd> get(const std::vector<int64_t>& key, bool any) {
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  int64_t N = key[0], H = key[1], W = key[2], C = key[3], KH = key[4], KW = key[5], O = key[6];
  int64_t OH = key[7], OW = key[8], sh = key[9], sw = key[10], ph = key[11], pw = key[12];
  dnnl::memory::desc src({N, C, H, W}, dt::f32, tag::nhwc);
  dnnl::memory::desc wei_plain({O, C, KH, KW}, dt::f32, tag::hwio);
  dnnl::memory::desc wei = any ? dnnl::memory::desc({O, C, KH, KW}, dt::f32, tag::any) : wei_plain;
  dnnl::memory::desc dst({N, O, OH, OW}, dt::f32, tag::nhwc);
  auto pd = dnnl::convolution_forward::primitive_desc(engine(), dnnl::prop_kind::forward_training,
      dnnl::algorithm::convolution_direct, src, wei, dst, {sh, sw}, {ph, pw}, {ph, pw});
  auto f = std::make_shared<Fwd>(Fwd{dnnl::convolution_forward(pd), pd.src_desc(), pd.weights_desc(), pd.dst_desc(), wei_plain,
                                     pd.weights_desc() != wei_plain});
  cache[key] = f;
  return f;
}

static ffi::Error ConvFwdImpl(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w, ffi::ResultBuffer<ffi::F32> y,
                              int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t any) {
  auto xd = x.dimensions(); auto wd = w.dimensions(); auto yd = y->dimensions();
  std::vector<int64_t> key{xd[0], xd[1], xd[2], xd[3], wd[0], wd[1], wd[3], yd[1], yd[2], sh, sw, ph, pw, any};
  auto f = get(key, any != 0);
  dnnl::stream s(engine());
  dnnl::memory srcm(f->src, engine(), x.typed_data());
  dnnl::memory dstm(f->dst, engine(), y->typed_data());
  dnnl::memory weim(f->wei_plain, engine(), w.typed_data());
  if (f->reorder) {
    dnnl::memory blocked(f->wei, engine());
    dnnl::reorder(weim, blocked).execute(s, weim, blocked);
    weim = blocked;
  }
  f->prim.execute(s, {{DNNL_ARG_SRC, srcm}, {DNNL_ARG_WEIGHTS, weim}, {DNNL_ARG_DST, dstm}});
  s.wait();
  return ffi::Error::Success();
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(ConvFwd, ConvFwdImpl,
    ffi::Ffi::Bind().Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::F32>>().Ret<ffi::Buffer<ffi::F32>>()
        .Attr<int64_t>("sh").Attr<int64_t>("sw").Attr<int64_t>("ph").Attr<int64_t>("pw").Attr<int64_t>("any"));

struct BwdW { dnnl::convolution_backward_weights prim; dnnl::memory::desc src, diff_dst, diff_wei, wei_plain; bool reorder; };
static std::map<std::vector<int64_t>, std::shared_ptr<BwdW>> bw_cache;

static std::shared_ptr<BwdW> get_bw(const std::vector<int64_t>& key) {
  std::lock_guard<std::mutex> lock(mu);
  auto it = bw_cache.find(key);
  if (it != bw_cache.end()) return it->second;
  int64_t N = key[0], H = key[1], W = key[2], C = key[3], KH = key[4], KW = key[5], O = key[6];
  int64_t OH = key[7], OW = key[8], sh = key[9], sw = key[10], ph = key[11], pw = key[12];
  dnnl::memory::desc src({N, C, H, W}, dt::f32, tag::nhwc);
  dnnl::memory::desc wei_plain({O, C, KH, KW}, dt::f32, tag::hwio);
  dnnl::memory::desc wei_any({O, C, KH, KW}, dt::f32, tag::any);
  dnnl::memory::desc dst({N, O, OH, OW}, dt::f32, tag::nhwc);
  auto fwd = dnnl::convolution_forward::primitive_desc(engine(), dnnl::prop_kind::forward_training,
      dnnl::algorithm::convolution_direct, src, wei_any, dst, {sh, sw}, {ph, pw}, {ph, pw});
  auto pd = dnnl::convolution_backward_weights::primitive_desc(engine(), dnnl::algorithm::convolution_direct,
      src, wei_any, dst, {sh, sw}, {ph, pw}, {ph, pw}, fwd);
  auto f = std::make_shared<BwdW>(BwdW{dnnl::convolution_backward_weights(pd), pd.src_desc(), pd.diff_dst_desc(),
                                       pd.diff_weights_desc(), wei_plain, pd.diff_weights_desc() != wei_plain});
  bw_cache[key] = f;
  return f;
}

static ffi::Error ConvBwdWImpl(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> dy, ffi::ResultBuffer<ffi::F32> dw,
                               int64_t sh, int64_t sw, int64_t ph, int64_t pw) {
  auto xd = x.dimensions(); auto yd = dy.dimensions(); auto wd = dw->dimensions();
  std::vector<int64_t> key{xd[0], xd[1], xd[2], xd[3], wd[0], wd[1], wd[3], yd[1], yd[2], sh, sw, ph, pw};
  auto f = get_bw(key);
  dnnl::stream s(engine());
  dnnl::memory srcm(f->src, engine(), x.typed_data());
  dnnl::memory dym(f->diff_dst, engine(), dy.typed_data());
  dnnl::memory out(f->wei_plain, engine(), dw->typed_data());
  if (f->reorder) {
    dnnl::memory blocked(f->diff_wei, engine());
    f->prim.execute(s, {{DNNL_ARG_SRC, srcm}, {DNNL_ARG_DIFF_DST, dym}, {DNNL_ARG_DIFF_WEIGHTS, blocked}});
    dnnl::reorder(blocked, out).execute(s, blocked, out);
  } else {
    f->prim.execute(s, {{DNNL_ARG_SRC, srcm}, {DNNL_ARG_DIFF_DST, dym}, {DNNL_ARG_DIFF_WEIGHTS, out}});
  }
  s.wait();
  return ffi::Error::Success();
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(ConvBwdW, ConvBwdWImpl,
    ffi::Ffi::Bind().Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::F32>>().Ret<ffi::Buffer<ffi::F32>>()
        .Attr<int64_t>("sh").Attr<int64_t>("sw").Attr<int64_t>("ph").Attr<int64_t>("pw"));
