// medkern/parallel.h — the CPU threading used by every op: OpenMP over a flat range, in
// contiguous chunks (each thread streams through its own part of memory).
#pragma once
#include <algorithm>
#include <cstdint>
#include <exception>
#include <omp.h>

namespace medkern::cpu {

inline int num_threads() { return omp_get_max_threads(); }
inline void set_num_threads(int n) { omp_set_num_threads(n < 1 ? 1 : n); }

// Calls f(begin, end) on disjoint chunks of [begin, end); runs inline when the range is small
// (grain = the least work worth a thread). Exceptions from workers are re-thrown here.
template <class F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, const F& f) {
  const int64_t n = end - begin;
  if (n <= 0) return;
  const int64_t max_chunks = grain > 0 ? std::max<int64_t>(1, n / grain) : n;
  const int threads = static_cast<int>(std::min<int64_t>(num_threads(), max_chunks));
  if (threads <= 1 || omp_in_parallel()) { f(begin, end); return; }
  std::exception_ptr error = nullptr;
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    const int nt = omp_get_num_threads();
    const int64_t chunk = (n + nt - 1) / nt;
    const int64_t b = begin + t * chunk, e = std::min(end, b + chunk);
    if (b < e) {
      try { f(b, e); } catch (...) {
#pragma omp critical(medkern_parallel_error)
        if (!error) error = std::current_exception();
      }
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace medkern::cpu
