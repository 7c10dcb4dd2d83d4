/* The one random-number primitive of every op family: counter-based splitmix64.
 *
 * Draw number `counter` of the stream `seed` is splitmix64's output at that position,
 * mix64(seed + (counter + 1) * golden), in wrapping 64-bit arithmetic. The CPU loops (C via
 * Cython), the CUDA kernels (this file is pasted into the .cu sources by kernels/_cuda.py
 * before NVRTC compiles them), kernels/_numba_common.py and the NumPy references
 * (kernels/sgns/reference.py, kernels/word2vec/reference.py) all compute these bits; the
 * generated tests compare them. Changing a constant changes every trained model. */
#ifndef FASTNLP_RNG_H
#define FASTNLP_RNG_H

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
/* NVRTC has no <stdint.h> in older toolkits; unsigned long long is 64 bits on every CUDA target. */
typedef unsigned long long fastnlp_u64;
#define FASTNLP_RNG_INLINE __host__ __device__ __forceinline__
#else
#include <stdint.h>
typedef uint64_t fastnlp_u64;
#define FASTNLP_RNG_INLINE static inline
#endif

#define FASTNLP_SPLITMIX_GOLDEN 0x9E3779B97F4A7C15ULL

/* Draw `counter` of the stream `seed`. */
FASTNLP_RNG_INLINE fastnlp_u64 fastnlp_splitmix64(fastnlp_u64 seed, fastnlp_u64 counter) {
    fastnlp_u64 z = seed + (counter + 1ULL) * FASTNLP_SPLITMIX_GOLDEN;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

#endif /* FASTNLP_RNG_H */
