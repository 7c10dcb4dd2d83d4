/* Row loops of the embedding ops, compiled once per instruction set (FASTNLP_CLONES,
 * fastnlp/dispatch.h): the loader picks the AVX-512, AVX2 or baseline clone for the CPU at hand,
 * so a portable wheel still runs at the memory floor (a baseline SSE2 build ran 1.6x slower
 * at D = 650). Callers guarantee ids in range and rows not overlapping dW (see __init__.py);
 * each row is added element by element in order, so results equal the NumPy reference bit for bit. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fastnlp/dispatch.h"
#include "fastnlp/half.h"

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

/* float16 / bfloat16 storage (uint16_t bit patterns, fastnlp/half.h). The gather copies bits.
 * The scatter-add follows the contract for these formats: each touched row of dW is converted
 * to float32, the rows with its id are added in float32 in order of i, and the sum is rounded
 * once to the storage format. Without sorting: link_duplicates chains each position i to the
 * next position with the same id (an open-addressing table of ids, O(n)); an id seen once (the
 * common case at V = 10000) is one fused pass over its row, dW[r] = round(dW[r] + rows[i]); a
 * repeated id is summed in a float32 row `acc` and rounded by the last row's pass.
 * Returns 0, or -1 when the scratch memory cannot be allocated (dW untouched then). */
static void gather_rows_u16(const uint16_t* W, const int64_t* idx, uint16_t* out, ptrdiff_t n_ids,
                            ptrdiff_t width) {
    for (ptrdiff_t i = 0; i < n_ids; ++i)
        memcpy(out + i * width, W + idx[i] * width, (size_t)width * sizeof(uint16_t));
}

/* next[i]: the next position after i holding idx[i], or -1; repeat[i]: 1 when an earlier
 * position holds idx[i]. `table` has `capacity` (a power of two >= 2 n) slots of (id, last i). */
static void link_duplicates(const int64_t* idx, ptrdiff_t n, int64_t* next, unsigned char* repeat,
                            int64_t* table, ptrdiff_t capacity) {
    int bits = 0;
    while (((ptrdiff_t)1 << bits) < capacity) ++bits;
    for (ptrdiff_t s = 0; s < capacity; ++s) table[2 * s] = -1;
    for (ptrdiff_t i = 0; i < n; ++i) {
        uint64_t slot = bits ? ((uint64_t)idx[i] * 0x9E3779B97F4A7C15ull) >> (64 - bits) : 0;
        while (table[2 * slot] != -1 && table[2 * slot] != idx[i]) slot = (slot + 1) & (uint64_t)(capacity - 1);
        next[i] = -1;
        if (table[2 * slot] == -1) {
            table[2 * slot] = idx[i];
            repeat[i] = 0;
        } else {
            next[table[2 * slot + 1]] = i;
            repeat[i] = 1;
        }
        table[2 * slot + 1] = i;
    }
}

#define FASTNLP_HALF_SCATTER(FMT)                                                                \
    static int scatter_add_rows_##FMT(uint16_t* dW, const int64_t* idx, const uint16_t* rows,  \
                                      ptrdiff_t n_ids, ptrdiff_t width) {                      \
        ptrdiff_t capacity = 16;                                                                \
        while (capacity < 2 * n_ids) capacity *= 2;                                             \
        int64_t* next = (int64_t*)malloc(sizeof(int64_t) * (size_t)(n_ids + 2 * capacity));    \
        unsigned char* repeat = (unsigned char*)malloc((size_t)n_ids);                          \
        float* acc = (float*)malloc(sizeof(float) * (size_t)width);                             \
        if (!next || !repeat || !acc) {                                                         \
            free(next); free(repeat); free(acc);                                                \
            return -1;                                                                          \
        }                                                                                       \
        link_duplicates(idx, n_ids, next, repeat, next + n_ids, capacity);                      \
        for (ptrdiff_t i = 0; i < n_ids; ++i) {                                                 \
            if (repeat[i]) continue; /* summed with the id's first position */                  \
            uint16_t* target = dW + idx[i] * width;                                             \
            if (next[i] < 0) {                                                                  \
                fastnlp_add_##FMT(target, NULL, rows + i * width, width);                       \
                continue;                                                                       \
            }                                                                                   \
            fastnlp_widen_##FMT(target, acc, width);                                            \
            ptrdiff_t k = i;                                                                    \
            for (; next[k] >= 0; k = next[k]) fastnlp_accumulate_##FMT(acc, rows + k * width, width); \
            fastnlp_add_##FMT(target, acc, rows + k * width, width);                            \
        }                                                                                       \
        free(next); free(repeat); free(acc);                                                    \
        return 0;                                                                               \
    }

FASTNLP_HALF_SCATTER(f16)
FASTNLP_HALF_SCATTER(bf16)
