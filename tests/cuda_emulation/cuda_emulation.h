/* The CUDA built-ins the kernels under kernels/ use, mapped onto CPU threads, so g++ compiles a
 * .cu file (the exact text NVRTC gets: kernels/_cuda.py source_text) and runs its kernels.
 *
 * A launch (fastnlp_emulated_launch) runs the grid's blocks one after another; the threads of a
 * block are real std::threads, so __syncthreads is a barrier among them, __shared__ variables are
 * static (one copy, used by one block at a time) and atomics really race. Float operations are
 * IEEE float/double with FMA contraction off (the driver compiles with -ffp-contract=off), so
 * the _rn intrinsics are plain operations. Defines __CUDACC_RTC__ after the system headers, so
 * the shared headers (rng.h, rounding.h) take the branch NVRTC takes.
 *
 * Not emulated (no kernel uses them; a kernel that starts to fails to compile here): warp
 * shuffles and votes, cooperative groups, textures, dynamic shared memory, streams. */
#ifndef FASTNLP_CUDA_EMULATION_H
#define FASTNLP_CUDA_EMULATION_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <cmath>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#define __CUDACC_RTC__ 1
#define __device__
#ifdef FASTNLP_EMULATION_SCAN /* build.py lists the kernels from the preprocessed text */
#define __global__ __fastnlp_kernel__
#else
#define __global__
#endif
#define __host__
#define __noinline__ __attribute__((noinline))
#define __forceinline__ inline __attribute__((always_inline))
#define __shared__ static
#define __constant__ static
#define __restrict__ __restrict
#define __launch_bounds__(...)

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
typedef dim3 uint3;

/* Every emulated thread has its own built-ins (blocks run one after another, but keeping all
 * four per thread costs nothing and stays right if blocks ever run side by side). */
static thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;
static const int warpSize = 32;

/* __syncthreads: a generation barrier among the live threads of the block. A thread that
 * returns leaves the barrier's count, so a kernel whose threads exit early cannot hang the
 * test (on a device that is undefined behaviour unless every thread exits). */
struct FastnlpBlockBarrier {
    std::mutex m;
    std::condition_variable cv;
    unsigned waiting = 0, live = 0, generation = 0;
    void reset(unsigned n) { waiting = 0; live = n; generation = 0; }
    void wait() {
        std::unique_lock<std::mutex> lock(m);
        unsigned g = generation;
        if (++waiting >= live) {
            waiting = 0;
            generation++;
            cv.notify_all();
        } else {
            cv.wait(lock, [&] { return g != generation; });
        }
    }
    void leave() {
        std::lock_guard<std::mutex> lock(m);
        live--;
        if (waiting > 0 && waiting >= live) {
            waiting = 0;
            generation++;
            cv.notify_all();
        }
    }
};
static FastnlpBlockBarrier fastnlp_barrier_;
static inline void __syncthreads() { fastnlp_barrier_.wait(); }
static inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

/* ----- atomics: the old value back, as CUDA's ----------------------------------------------- */
template <typename T> static inline T fastnlp_atomic_fetch_add(T* address, T value) {
    return __atomic_fetch_add(address, value, __ATOMIC_SEQ_CST);
}
static inline int atomicAdd(int* a, int v) { return fastnlp_atomic_fetch_add(a, v); }
static inline unsigned atomicAdd(unsigned* a, unsigned v) { return fastnlp_atomic_fetch_add(a, v); }
static inline unsigned long long atomicAdd(unsigned long long* a, unsigned long long v) {
    return fastnlp_atomic_fetch_add(a, v);
}
/* float / double: a compare-and-swap loop on the bits (what CUDA's manual gives for sm < 60) */
template <typename F, typename U> static inline F fastnlp_atomic_add_float(F* address, F value) {
    U* bits = reinterpret_cast<U*>(address);
    U old = __atomic_load_n(bits, __ATOMIC_SEQ_CST), updated;
    F f;
    do {
        memcpy(&f, &old, sizeof f);
        F sum = f + value;
        memcpy(&updated, &sum, sizeof updated);
    } while (!__atomic_compare_exchange_n(bits, &old, updated, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
    return f;
}
static inline float atomicAdd(float* a, float v) { return fastnlp_atomic_add_float<float, uint32_t>(a, v); }
static inline double atomicAdd(double* a, double v) { return fastnlp_atomic_add_float<double, uint64_t>(a, v); }
template <typename T> static inline T fastnlp_atomic_cas(T* a, T compare, T value) {
    __atomic_compare_exchange_n(a, &compare, value, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return compare;  // the old value either way
}
static inline int atomicCAS(int* a, int c, int v) { return fastnlp_atomic_cas(a, c, v); }
static inline unsigned atomicCAS(unsigned* a, unsigned c, unsigned v) { return fastnlp_atomic_cas(a, c, v); }
static inline unsigned long long atomicCAS(unsigned long long* a, unsigned long long c, unsigned long long v) {
    return fastnlp_atomic_cas(a, c, v);
}
template <typename T> static inline T atomicExch(T* a, T v) { return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST); }
template <typename T> static inline T atomicMax(T* a, T v) {
    T old = __atomic_load_n(a, __ATOMIC_SEQ_CST);
    while (old < v && !__atomic_compare_exchange_n(a, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {}
    return old;
}
template <typename T> static inline T atomicMin(T* a, T v) {
    T old = __atomic_load_n(a, __ATOMIC_SEQ_CST);
    while (old > v && !__atomic_compare_exchange_n(a, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {}
    return old;
}

/* ----- arithmetic intrinsics: IEEE round to nearest (no contraction: -ffp-contract=off) ----- */
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline double __dadd_rn(double a, double b) { return a + b; }
static inline double __dsub_rn(double a, double b) { return a - b; }
static inline double __dmul_rn(double a, double b) { return a * b; }
static inline double __ddiv_rn(double a, double b) { return a / b; }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
/* integer -> double conversions: exact below 2^53, else to nearest even (the x86 default) */
static inline double __ull2double_rn(unsigned long long x) { return (double)x; }
static inline double __ll2double_rn(long long x) { return (double)x; }
static inline float __int2float_rn(int x) { return (float)x; }
static inline double __int2double_rn(int x) { return (double)x; }

/* ----- reinterpretations ------------------------------------------------------------------- */
static inline double __longlong_as_double(long long x) { double d; memcpy(&d, &x, sizeof d); return d; }
static inline long long __double_as_longlong(double d) { long long x; memcpy(&x, &d, sizeof x); return x; }
static inline float __int_as_float(int x) { float f; memcpy(&f, &x, sizeof f); return f; }
static inline int __float_as_int(float f) { int x; memcpy(&x, &f, sizeof x); return x; }
static inline float __uint_as_float(unsigned x) { float f; memcpy(&f, &x, sizeof f); return f; }
static inline unsigned __float_as_uint(float f) { unsigned x; memcpy(&x, &f, sizeof x); return x; }

/* Device math: CUDA's overloads of <cmath> (expf, tanh, log1p, ...) are the C library's here;
 * isnan / isinf / min / max on float and double as CUDA declares them. */
using std::isinf;
using std::isnan;
using std::isfinite;
template <typename T> static inline T min(T a, T b) { return a < b ? a : b; }
template <typename T> static inline T max(T a, T b) { return a > b ? a : b; }

/* ----- the launch: blocks in order, a block's threads on a pool of std::threads -----------------
 * kernel_thread runs the kernel once for the current built-ins (a trampoline generated by
 * tests/cuda_emulation/build.py reading the kernel's arguments from `args`). The pool keeps one
 * thread per thread of the largest block launched so far (started once: starting 256 threads per
 * block cost more than the kernels); worker t runs thread t of each block. Returns 0, or -1 when
 * the pool's threads could not be started. One launch at a time (a mutex), as on one stream. */
typedef void (*fastnlp_kernel_thread)(void** args);

struct FastnlpPool {
    std::mutex m, launch;
    std::condition_variable start, done;
    std::vector<std::thread> workers;
    unsigned long long generation = 0;
    unsigned remaining = 0, active = 0;
    fastnlp_kernel_thread kernel = nullptr;
    void** args = nullptr;
    dim3 grid, block, block_index;

    void work(unsigned t) {
        unsigned long long seen = 0;
        for (;;) {
            std::unique_lock<std::mutex> lock(m);
            start.wait(lock, [&] { return generation != seen; });
            seen = generation;
            if (t >= active) continue;
            const dim3 tid(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
            const dim3 bid = block_index, b = block, g = grid;
            fastnlp_kernel_thread k = kernel;
            void** a = args;
            lock.unlock();
            threadIdx = tid;
            blockIdx = bid;
            blockDim = b;
            gridDim = g;
            k(a);
            fastnlp_barrier_.leave();
            lock.lock();
            if (--remaining == 0) done.notify_all();
        }
    }

    int run(fastnlp_kernel_thread k, void** a, dim3 g, dim3 b) {
        std::lock_guard<std::mutex> one_launch(launch);
        const unsigned n = b.x * b.y * b.z;
        try {
            while (workers.size() < n) {
                unsigned t = (unsigned)workers.size();
                workers.emplace_back([this, t] { work(t); });
                workers.back().detach();  // lives as long as the library (the process)
            }
        } catch (const std::exception&) {
            return -1;
        }
        for (unsigned bz = 0; bz < g.z; bz++)
            for (unsigned by = 0; by < g.y; by++)
                for (unsigned bx = 0; bx < g.x; bx++) {
                    fastnlp_barrier_.reset(n);
                    std::unique_lock<std::mutex> lock(m);
                    kernel = k;
                    args = a;
                    grid = g;
                    block = b;
                    block_index = dim3(bx, by, bz);
                    active = n;
                    remaining = n;
                    generation++;
                    start.notify_all();
                    done.wait(lock, [&] { return remaining == 0; });
                }
        return 0;
    }
};

static inline int fastnlp_emulated_launch(fastnlp_kernel_thread kernel_thread, void** args, dim3 grid, dim3 block) {
    static FastnlpPool* pool = new FastnlpPool;  // never destroyed: its detached threads use it
    return pool->run(kernel_thread, args, grid, block);
}

/* The trampolines: arguments as CUDA's kernelParams (one pointer per argument, to its value). */
template <typename... A, size_t... I>
static inline void fastnlp_call_with(void (*kernel)(A...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<A*>(args[I])...);
}
template <typename... A> struct FastnlpSignature {
    static constexpr int arity = sizeof...(A);
    static void sizes(long long* out) {
        long long values[] = {(long long)sizeof(A)..., 0};
        for (int i = 0; i < arity; i++) out[i] = values[i];
    }
    static void kinds(char* out) {  // 'p' pointer, 'f' floating, 'i' integer
        char values[] = {(std::is_pointer<A>::value ? 'p' : std::is_floating_point<A>::value ? 'f' : 'i')..., 0};
        for (int i = 0; i < arity; i++) out[i] = values[i];
    }
};
template <typename... A> static inline FastnlpSignature<A...> fastnlp_signature(void (*)(A...)) { return {}; }

#define FASTNLP_EMULATED_KERNEL(NAME)                                                                  \
    static void fastnlp_thread_##NAME(void** args) {                                                 \
        fastnlp_call_with(NAME, args, std::make_index_sequence<decltype(fastnlp_signature(NAME))::arity>{}); \
    }                                                                                                  \
    extern "C" int fastnlp_launch_##NAME(void** args, unsigned gx, unsigned gy, unsigned gz, unsigned bx, \
                                         unsigned by, unsigned bz) {                                  \
        return fastnlp_emulated_launch(fastnlp_thread_##NAME, args, dim3(gx, gy, gz), dim3(bx, by, bz)); \
    }                                                                                                  \
    extern "C" int fastnlp_arity_##NAME(long long* sizes, char* kinds) {                              \
        typedef decltype(fastnlp_signature(NAME)) S;                                                  \
        if (sizes) S::sizes(sizes);                                                                    \
        if (kinds) S::kinds(kinds);                                                                    \
        return S::arity;                                                                               \
    }

#endif /* FASTNLP_CUDA_EMULATION_H */
