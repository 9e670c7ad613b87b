// What jaxnn's native kernels share: one oneDNN CPU engine, and a cache of primitives built once per shape.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"

namespace jaxnn {

inline dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// Every primitive takes its scratchpad from its caller (jaxnn::scratchpad): oneDNN's own, shared between all
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

}  // namespace jaxnn
