// jaxnn's native CPU convolutions: oneDNN's forward, input-gradient and weight-gradient convolution as jax.ffi
// handlers, on NHWC activations and HWIO (grouped: H, W, I, G, O/G) weights in float32. jaxnn.native registers them
// and jaxnn.ops.conv2d calls them when the native path is on (jaxnn.runtime); the XLA path stays the reference.
//
// Attributes of every handler: strides (sh, sw), paddings (top, bottom, left, right), dilations (dh, dw: 1 is
// none) and groups. Each primitive is built once per shape and attributes, then kept.

#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;
using dims = dnnl::memory::dims;

namespace {

inline dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// Every primitive takes its scratchpad from its caller (scratchpad()): oneDNN's own, shared between all
// primitives of a library built without DNNL_ENABLE_CONCURRENT_EXEC, is not safe when XLA runs two kernels at once.
inline dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// A fresh scratchpad for one execution of a primitive of this descriptor.
template <typename Desc>
dnnl::memory scratchpad(const Desc& pd) {
  return {pd.scratchpad_desc(), engine()};
}

// A value built once per key (a kernel's kind, shapes and attributes) and kept for the life of the process.
template <typename Value>
class Cache {
 public:
  template <typename Build>
  Value get(const std::vector<int64_t>& key, Build build) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = values_.find(key);
    if (it == values_.end()) it = values_.emplace(key, build()).first;
    return it->second;
  }

 private:
  std::mutex mutex_;
  std::map<std::vector<int64_t>, Value> values_;
};

// Copy `from` into `to`, converting the layout.
inline void reorder(dnnl::memory from, dnnl::memory to, dnnl::stream& s) {
  dnnl::reorder::primitive_desc pd(from, to, user_scratchpad());
  dnnl::primitive copy = dnnl::reorder(pd);
  copy.execute(s, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}, {DNNL_ARG_SCRATCHPAD, scratchpad(pd)}});
}

// `plain` as the layout `wanted`: the memory itself when they agree, else a reordered copy.
inline dnnl::memory as_layout(dnnl::memory plain, const dnnl::memory::desc& wanted, dnnl::stream& s) {
  if (plain.get_desc() == wanted) return plain;
  dnnl::memory copy(wanted, engine());
  reorder(plain, copy, s);
  return copy;
}

// One convolution's geometry: NHWC input, HWIO weights, NHWC output, and the attributes.
struct Geometry {
  int64_t n, h, w, c, kh, kw, o, oh, ow, sh, sw, pt, pb, pl, pr, dh, dw, groups;

  std::vector<int64_t> key(int64_t kind) const {
    return {kind, n, h, w, c, kh, kw, o, oh, ow, sh, sw, pt, pb, pl, pr, dh, dw, groups};
  }
  dnnl::memory::desc src() const { return {{n, c, h, w}, dt::f32, tag::nhwc}; }
  dnnl::memory::desc dst() const { return {{n, o, oh, ow}, dt::f32, tag::nhwc}; }
  dnnl::memory::desc weights(bool any) const {
    if (groups == 1) return {{o, c / groups, kh, kw}, dt::f32, any ? tag::any : tag::hwio};
    return {{groups, o / groups, c / groups, kh, kw}, dt::f32, any ? tag::any : tag::hwigo};
  }
  dims strides() const { return {sh, sw}; }
  dims dilations() const { return {dh - 1, dw - 1}; }  // oneDNN counts the holes: 0 is no dilation
  dims pad_l() const { return {pt, pl}; }
  dims pad_r() const { return {pb, pr}; }

  dnnl::convolution_forward::primitive_desc forward() const {
    return {engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, src(), weights(true),
            dst(), strides(), dilations(), pad_l(), pad_r(), user_scratchpad()};
  }
};

struct Primitive {
  dnnl::primitive prim;
  dnnl::memory::desc weights;  // the layout the primitive wants (reordered from and to HWIO when it differs)
  dnnl::memory::desc scratchpad;

  template <typename Desc>
  Primitive(dnnl::primitive prim, const Desc& pd, const dnnl::memory::desc& weights)
      : prim(prim), weights(weights), scratchpad(pd.scratchpad_desc()) {}
  dnnl::memory scratch() const { return {scratchpad, engine()}; }
};

Cache<Primitive> cache;

Geometry geometry(ffi::Span<const int64_t> x, ffi::Span<const int64_t> w, ffi::Span<const int64_t> y, int64_t sh,
                  int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr, int64_t dh, int64_t dw,
                  int64_t groups) {
  return {x[0], x[1], x[2], x[3], w[0], w[1], w[3], y[1], y[2], sh, sw, pt, pb, pl, pr, dh, dw, groups};
}

dnnl::memory weights_in(const Primitive& p, const Geometry& g, void* data, dnnl::stream& s) {
  return as_layout(dnnl::memory(g.weights(false), engine(), data), p.weights, s);
}

ffi::Error Forward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w, ffi::ResultBuffer<ffi::F32> y, int64_t sh,
                   int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr, int64_t dh, int64_t dw,
                   int64_t groups) {
  Geometry g = geometry(x.dimensions(), w.dimensions(), y->dimensions(), sh, sw, pt, pb, pl, pr, dh, dw, groups);
  Primitive p = cache.get(g.key(0), [&] {
    auto pd = g.forward();
    return Primitive(dnnl::convolution_forward(pd), pd, pd.weights_desc());
  });
  dnnl::stream s(engine());
  dnnl::memory src(g.src(), engine(), x.typed_data()), dst(g.dst(), engine(), y->typed_data());
  p.prim.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights_in(p, g, w.typed_data(), s)},
                     {DNNL_ARG_DST, dst}, {DNNL_ARG_SCRATCHPAD, p.scratch()}});
  s.wait();
  return ffi::Error::Success();
}

ffi::Error BackwardData(ffi::Buffer<ffi::F32> dy, ffi::Buffer<ffi::F32> w, ffi::ResultBuffer<ffi::F32> dx,
                        int64_t sh, int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr, int64_t dh,
                        int64_t dw, int64_t groups) {
  Geometry g = geometry(dx->dimensions(), w.dimensions(), dy.dimensions(), sh, sw, pt, pb, pl, pr, dh, dw, groups);
  Primitive p = cache.get(g.key(1), [&] {
    auto pd = dnnl::convolution_backward_data::primitive_desc(engine(), dnnl::algorithm::convolution_direct,
                                                              g.src(), g.weights(true), g.dst(), g.strides(),
                                                              g.dilations(), g.pad_l(), g.pad_r(), g.forward(),
                                                              user_scratchpad());
    return Primitive(dnnl::convolution_backward_data(pd), pd, pd.weights_desc());
  });
  dnnl::stream s(engine());
  dnnl::memory diff_dst(g.dst(), engine(), dy.typed_data()), diff_src(g.src(), engine(), dx->typed_data());
  p.prim.execute(s, {{DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_WEIGHTS, weights_in(p, g, w.typed_data(), s)},
                     {DNNL_ARG_DIFF_SRC, diff_src}, {DNNL_ARG_SCRATCHPAD, p.scratch()}});
  s.wait();
  return ffi::Error::Success();
}

ffi::Error BackwardWeights(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> dy, ffi::ResultBuffer<ffi::F32> dw_out,
                           int64_t sh, int64_t sw, int64_t pt, int64_t pb, int64_t pl, int64_t pr, int64_t dh,
                           int64_t dw, int64_t groups) {
  Geometry g = geometry(x.dimensions(), dw_out->dimensions(), dy.dimensions(), sh, sw, pt, pb, pl, pr, dh, dw, groups);
  Primitive p = cache.get(g.key(2), [&] {
    auto pd = dnnl::convolution_backward_weights::primitive_desc(engine(), dnnl::algorithm::convolution_direct,
                                                                 g.src(), g.weights(true), g.dst(), g.strides(),
                                                                 g.dilations(), g.pad_l(), g.pad_r(), g.forward(),
                                                              user_scratchpad());
    return Primitive(dnnl::convolution_backward_weights(pd), pd, pd.diff_weights_desc());
  });
  dnnl::stream s(engine());
  dnnl::memory src(g.src(), engine(), x.typed_data()), diff_dst(g.dst(), engine(), dy.typed_data());
  dnnl::memory plain(g.weights(false), engine(), dw_out->typed_data());
  bool blocked = p.weights != g.weights(false);
  dnnl::memory out = blocked ? dnnl::memory(p.weights, engine()) : plain;
  p.prim.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_WEIGHTS, out},
                     {DNNL_ARG_SCRATCHPAD, p.scratch()}});
  if (blocked) reorder(out, plain, s);
  s.wait();
  return ffi::Error::Success();
}

template <typename Binding>
auto with_attributes(Binding&& binding) {
  return std::move(binding)
      .template Attr<int64_t>("sh")
      .template Attr<int64_t>("sw")
      .template Attr<int64_t>("pt")
      .template Attr<int64_t>("pb")
      .template Attr<int64_t>("pl")
      .template Attr<int64_t>("pr")
      .template Attr<int64_t>("dh")
      .template Attr<int64_t>("dw")
      .template Attr<int64_t>("groups");
}

}  // namespace

#define BUFFER ffi::Buffer<ffi::F32>
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxnnConvForward, Forward,
                              with_attributes(ffi::Ffi::Bind().Arg<BUFFER>().Arg<BUFFER>().Ret<BUFFER>()));
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxnnConvBackwardData, BackwardData,
                              with_attributes(ffi::Ffi::Bind().Arg<BUFFER>().Arg<BUFFER>().Ret<BUFFER>()));
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxnnConvBackwardWeights, BackwardWeights,
                              with_attributes(ffi::Ffi::Bind().Arg<BUFFER>().Arg<BUFFER>().Ret<BUFFER>()));
