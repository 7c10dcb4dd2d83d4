/* Row loops of the embedding ops, compiled once per instruction set (FASTNLP_CLONES,
 * fastnlp/dispatch.h): the loader picks the AVX-512, AVX2 or baseline clone for the CPU at hand,
 * so a portable wheel still runs at the memory floor (a baseline SSE2 build ran 1.6x slower
 * at D = 650). Callers guarantee ids in range and rows not overlapping dW (see __init__.py);
 * each row is added element by element in order, so results equal the NumPy reference bit for bit. */
#include <stddef.h>
#include <stdint.h>

#include "fastnlp/dispatch.h"

#define FASTNLP_ROW_OPS(T, SUFFIX)                                                              \
    FASTNLP_CLONES static void scatter_add_rows_##SUFFIX(T* dW, const int64_t* idx,             \
                                                         const T* rows, ptrdiff_t n_ids,       \
                                                         ptrdiff_t width) {                    \
        for (ptrdiff_t i = 0; i < n_ids; ++i) {                                                 \
            T* __restrict target = dW + idx[i] * width;                                         \
            const T* __restrict source = rows + i * width;                                      \
            for (ptrdiff_t j = 0; j < width; ++j) target[j] += source[j];                       \
        }                                                                                       \
    }                                                                                           \
    FASTNLP_CLONES static void gather_rows_##SUFFIX(const T* W, const int64_t* idx, T* out,      \
                                                    ptrdiff_t n_ids, ptrdiff_t width) {         \
        for (ptrdiff_t i = 0; i < n_ids; ++i) {                                                 \
            const T* __restrict source = W + idx[i] * width;                                    \
            T* __restrict target = out + i * width;                                             \
            for (ptrdiff_t j = 0; j < width; ++j) target[j] = source[j];                        \
        }                                                                                       \
    }

FASTNLP_ROW_OPS(float, f32)
FASTNLP_ROW_OPS(double, f64)
