/* bfloat16 matrix products on AMX tiles: C (+)= op(A) @ op(B), bf16 operands, float32 sums and output.

   Both operands are first repacked into tiles (zero-padded to 16 rows and 32 bf16 of K):
     A: [M/16][K/32] tiles of 16 rows x 32 values (a row of A is a tile row),
     B: [N/16][K/32] tiles of 16 K-pairs x 16 columns x 2 values (the pair layout TDPBF16PS reads).
   The product then runs over 2 x 2 blocks of output tiles (32 x 32 values): four accumulator
   tiles, two A and two B tiles, the eight tile registers. K is cut into blocks and M into chunks
   that keep the A tiles of a block in L2 (the GotoBLAS loop order); each thread takes a range of
   B's column tiles. Tiles that cross the edge of C go through a 16 x 16 scratch.

   Only reached on a CPU with AMX-BF16 whose kernel granted this process the tile data
   (fastnlp_amx_request), with operands already validated by the caller. */
#ifndef FASTNLP_AMX_GEMM_H
#define FASTNLP_AMX_GEMM_H

#include <stdint.h>
#include <string.h>

#include "fastnlp/dispatch.h"

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && (__GNUC__ >= 11)
#define FASTNLP_HAVE_AMX_BUILD 1
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#else
#define FASTNLP_HAVE_AMX_BUILD 0
#endif

#define FASTNLP_AMX_TILE_BYTES 1024
#define FASTNLP_AMX_L2_BUDGET (1 << 20) /* bytes of A tiles one chunk keeps in L2 */
/* K is cut into blocks of FASTNLP_AMX_K_BLOCK tiles (2,048 values) only beyond FASTNLP_AMX_K_WHOLE
   tiles (3,072): measured at 700 x 2,600 x 650, blocks of 512 values ran 1,095 GFLOP/s and the whole
   K 1,361 (fewer reloads of the accumulators); at 700 x 10,000 x 650, 512 ran 1,123 and 2,048 1,291. */
#define FASTNLP_AMX_K_BLOCK 64
#define FASTNLP_AMX_K_WHOLE 96

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} fastnlp_amx_config;

static inline int64_t fastnlp_amx_tiles(int64_t n, int64_t size) { return (n + size - 1) / size; }

/* How much of tile number `tile` (of `size`) lies inside a side of length n. */
static inline int64_t fastnlp_amx_inside(int64_t n, int64_t tile, int64_t size) {
    return n - tile * size < size ? n - tile * size : size;
}

#if FASTNLP_HAVE_AMX_BUILD
static void fastnlp_amx_fill_config(void);
#endif

/* 0 when this process may use AMX tiles (asks the kernel for the tile data on the first call),
   else: 1 not built for AMX, 2 the CPU lacks AMX-BF16 (or FASTNLP_MAX_ISA hides it), 3 the kernel
   refused the tile data. */
static int fastnlp_amx_request(void) {
#if FASTNLP_HAVE_AMX_BUILD
    static int state = -1;
    if (state >= 0) return state;
    if (!fastnlp_has_amx_bf16()) {
        state = 2;
        return state;
    }
    /* ARCH_REQ_XCOMP_PERM (0x1023) for XFEATURE_XTILEDATA (18): Linux 5.16 and later */
    state = syscall(SYS_arch_prctl, 0x1023, 18) == 0 ? 0 : 3;
    if (state == 0) fastnlp_amx_fill_config();
    return state;
#else
    return 1;
#endif
}

#if FASTNLP_HAVE_AMX_BUILD
/* Every CPU with AMX has AVX512-BW: full tiles are packed with it, edge tiles value by value. */
#define FASTNLP_AMX_PACK_TARGET __attribute__((target("avx512f,avx512bw")))

/* Two rows of 16 bf16 values into 16 pairs (row0[i], row1[i]): one 64-byte tile row. */
FASTNLP_AMX_PACK_TARGET static inline __m512i fastnlp_amx_pairs(const uint16_t *row0, const uint16_t *row1) {
    const __m512i order = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                           23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)row0)),
                                      _mm256_loadu_si256((const __m256i *)row1), 1);
    return _mm512_permutexvar_epi16(order, both);
}

/* out row p = column p of the 16 x 16 matrix of 32-bit values in r (r is overwritten). */
FASTNLP_AMX_PACK_TARGET static inline void fastnlp_amx_transpose16(__m512i r[16], uint32_t *out) {
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int g = 0; g < 4; g++) { /* rows 4g..4g+3: u[4g+j] holds column 4L+j of them in lane L */
        u[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g + 0], t[4 * g + 2]);
        u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g + 0], t[4 * g + 2]);
        u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
        u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
    }
    for (int j = 0; j < 4; j++) {
        __m512i x0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x44), x1 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xEE);
        __m512i y0 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x44), y1 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xEE);
        _mm512_storeu_si512(out + (0 + j) * 16, _mm512_shuffle_i32x4(x0, y0, 0x88));
        _mm512_storeu_si512(out + (4 + j) * 16, _mm512_shuffle_i32x4(x0, y0, 0xDD));
        _mm512_storeu_si512(out + (8 + j) * 16, _mm512_shuffle_i32x4(x1, y1, 0x88));
        _mm512_storeu_si512(out + (12 + j) * 16, _mm512_shuffle_i32x4(x1, y1, 0xDD));
    }
}

/* A (M x K; stored K x M when trans) into tiles Ap[mt][kt][16][32], row tiles [mt0, mt1). */
FASTNLP_AMX_PACK_TARGET static void fastnlp_amx_pack_a(const uint16_t *a, int64_t lda, int trans, int64_t M,
                                                       int64_t K, uint16_t *Ap, int64_t mt0, int64_t mt1) {
    int64_t KT = fastnlp_amx_tiles(K, 32);
    for (int64_t mt = mt0; mt < mt1; mt++) {
        for (int64_t kt = 0; kt < KT; kt++) {
            uint16_t *tile = Ap + (mt * KT + kt) * 512;
            int64_t rows = fastnlp_amx_inside(M, mt, 16), cols = fastnlp_amx_inside(K, kt, 32);
            if (!trans) {
                if (rows < 16 || cols < 32) memset(tile, 0, FASTNLP_AMX_TILE_BYTES);
                for (int64_t r = 0; r < rows; r++)
                    memcpy(tile + r * 32, a + (mt * 16 + r) * lda + kt * 32, (size_t)cols * 2);
            } else if (rows == 16 && cols == 32) { /* K-pairs of the stored rows, then a transpose */
                __m512i pairs[16];
                const uint16_t *src = a + kt * 32 * lda + mt * 16;
                for (int p = 0; p < 16; p++) pairs[p] = fastnlp_amx_pairs(src + 2 * p * lda, src + (2 * p + 1) * lda);
                fastnlp_amx_transpose16(pairs, (uint32_t *)tile);
            } else {
                memset(tile, 0, FASTNLP_AMX_TILE_BYTES);
                for (int64_t c = 0; c < cols; c++) {
                    const uint16_t *src = a + (kt * 32 + c) * lda + mt * 16;
                    for (int64_t r = 0; r < rows; r++) tile[r * 32 + c] = src[r];
                }
            }
        }
    }
}

/* Column tiles [nt0, nt1) of B (K x N; stored N x K when trans) into K-pair tiles:
   Bp[nt][kt][16 pairs][16 columns][2]. */
FASTNLP_AMX_PACK_TARGET static void fastnlp_amx_pack_b(const uint16_t *b, int64_t ldb, int trans, int64_t K,
                                                       int64_t N, uint16_t *Bp, int64_t nt0, int64_t nt1) {
    int64_t KT = fastnlp_amx_tiles(K, 32);
    for (int64_t nt = nt0; nt < nt1; nt++) {
        for (int64_t kt = 0; kt < KT; kt++) {
            uint16_t *tile = Bp + (nt * KT + kt) * 512;
            int64_t cols = fastnlp_amx_inside(N, nt, 16), depth = fastnlp_amx_inside(K, kt, 32);
            if (cols == 16 && depth == 32) {
                if (!trans) {
                    const uint16_t *src = b + kt * 32 * ldb + nt * 16;
                    for (int p = 0; p < 16; p++)
                        _mm512_storeu_si512(tile + p * 32, fastnlp_amx_pairs(src + 2 * p * ldb, src + (2 * p + 1) * ldb));
                } else { /* a K-pair is two adjacent values of a stored row: a 32-bit transpose */
                    __m512i rows[16];
                    const uint16_t *src = b + nt * 16 * ldb + kt * 32;
                    for (int c = 0; c < 16; c++) rows[c] = _mm512_loadu_si512(src + c * ldb);
                    fastnlp_amx_transpose16(rows, (uint32_t *)tile);
                }
                continue;
            }
            memset(tile, 0, FASTNLP_AMX_TILE_BYTES);
            for (int64_t k = 0; k < depth; k++)
                for (int64_t c = 0; c < cols; c++)
                    tile[(k >> 1) * 32 + c * 2 + (k & 1)] =
                        trans ? b[(nt * 16 + c) * ldb + kt * 32 + k] : b[(kt * 32 + k) * ldb + nt * 16 + c];
        }
    }
}
#endif

#if FASTNLP_HAVE_AMX_BUILD
#define FASTNLP_AMX_TARGET __attribute__((target("amx-tile,amx-bf16")))

/* Tile registers: 0-3 accumulators, 4-5 A, 6-7 B; every one 16 rows of 64 bytes. Filled once by
   fastnlp_amx_request, before any thread loads it. */
static fastnlp_amx_config fastnlp_amx_tile_config __attribute__((aligned(64)));

static void fastnlp_amx_fill_config(void) {
    memset(&fastnlp_amx_tile_config, 0, sizeof fastnlp_amx_tile_config);
    fastnlp_amx_tile_config.palette = 1;
    for (int i = 0; i < 8; i++) {
        fastnlp_amx_tile_config.rows[i] = 16;
        fastnlp_amx_tile_config.colsb[i] = 64;
    }
}

/* One output tile's place in C and how much of it lies inside (rows x cols). */
typedef struct {
    float *c;
    int64_t rows, cols;
} fastnlp_amx_place;

static inline void fastnlp_amx_stage_in(const fastnlp_amx_place *p, int64_t ldc, float *scratch) {
    memset(scratch, 0, 16 * 16 * sizeof(float));
    for (int64_t r = 0; r < p->rows; r++) memcpy(scratch + r * 16, p->c + r * ldc, (size_t)p->cols * sizeof(float));
}

static inline void fastnlp_amx_stage_out(const fastnlp_amx_place *p, int64_t ldc, const float *scratch) {
    for (int64_t r = 0; r < p->rows; r++) memcpy(p->c + r * ldc, scratch + r * 16, (size_t)p->cols * sizeof(float));
}

#define FASTNLP_AMX_LOAD_C(T, P, S)                                                  \
    do {                                                                             \
        if (!load) _tile_zero(T);                                                    \
        else if ((P).rows == 16 && (P).cols == 16) _tile_loadd(T, (P).c, ldc * 4);   \
        else { fastnlp_amx_stage_in(&(P), ldc, S); _tile_loadd(T, S, 64); }          \
    } while (0)
#define FASTNLP_AMX_STORE_C(T, P, S)                                                 \
    do {                                                                             \
        if ((P).rows == 16 && (P).cols == 16) _tile_stored(T, (P).c, ldc * 4);       \
        else { _tile_stored(T, S, 64); fastnlp_amx_stage_out(&(P), ldc, S); }        \
    } while (0)

/* A 2 x 2 block of output tiles (fewer where mt2 / nt2 is 0) over K tiles [kt0, kt1). */
FASTNLP_AMX_TARGET static inline __attribute__((always_inline)) void fastnlp_amx_block(
    const uint16_t *A0, const uint16_t *A1, const uint16_t *B0, const uint16_t *B1, int64_t kt0, int64_t kt1,
    const fastnlp_amx_place *p, int64_t ldc, int load, const int mt2, const int nt2, float *scratch) {
    FASTNLP_AMX_LOAD_C(0, p[0], scratch);
    if (nt2) FASTNLP_AMX_LOAD_C(1, p[1], scratch + 256);
    if (mt2) FASTNLP_AMX_LOAD_C(2, p[2], scratch + 512);
    if (mt2 && nt2) FASTNLP_AMX_LOAD_C(3, p[3], scratch + 768);
    for (int64_t kt = kt0; kt < kt1; kt++) {
        _tile_loadd(4, A0 + kt * 512, 64);
        _tile_loadd(6, B0 + kt * 512, 64);
        _tile_dpbf16ps(0, 4, 6);
        if (nt2) {
            _tile_loadd(7, B1 + kt * 512, 64);
            _tile_dpbf16ps(1, 4, 7);
        }
        if (mt2) {
            _tile_loadd(5, A1 + kt * 512, 64);
            _tile_dpbf16ps(2, 5, 6);
            if (nt2) _tile_dpbf16ps(3, 5, 7);
        }
    }
    FASTNLP_AMX_STORE_C(0, p[0], scratch);
    if (nt2) FASTNLP_AMX_STORE_C(1, p[1], scratch + 256);
    if (mt2) FASTNLP_AMX_STORE_C(2, p[2], scratch + 512);
    if (mt2 && nt2) FASTNLP_AMX_STORE_C(3, p[3], scratch + 768);
}

/* Output columns of tiles [nt0, nt1) of C (M x N, row stride ldc) from packed A and B. */
FASTNLP_AMX_TARGET static void fastnlp_amx_compute(const uint16_t *Ap, const uint16_t *Bp, float *C, int64_t ldc,
                                                   int64_t M, int64_t N, int64_t K, int64_t nt0, int64_t nt1,
                                                   int accumulate) {
    int64_t MT = fastnlp_amx_tiles(M, 16), KT = fastnlp_amx_tiles(K, 32);
    int64_t k_block = KT <= FASTNLP_AMX_K_WHOLE ? KT : FASTNLP_AMX_K_BLOCK;
    int64_t m_chunk = FASTNLP_AMX_L2_BUDGET / (k_block * FASTNLP_AMX_TILE_BYTES);
    m_chunk = m_chunk < 2 ? 2 : m_chunk & ~(int64_t)1;
    float scratch[4 * 256] __attribute__((aligned(64)));
    _tile_loadconfig(&fastnlp_amx_tile_config);
    for (int64_t kt0 = 0; kt0 < KT; kt0 += k_block) {
        int64_t kt1 = kt0 + k_block < KT ? kt0 + k_block : KT;
        int load = accumulate || kt0 > 0;
        for (int64_t mc = 0; mc < MT; mc += m_chunk) {
            int64_t mc_end = mc + m_chunk < MT ? mc + m_chunk : MT;
            for (int64_t nt = nt0; nt < nt1; nt += 2) {
                int nt2 = nt + 1 < nt1;
                const uint16_t *B0 = Bp + nt * KT * 512, *B1 = B0 + KT * 512;
                for (int64_t mt = mc; mt < mc_end; mt += 2) {
                    int mt2 = mt + 1 < mc_end;
                    const uint16_t *A0 = Ap + mt * KT * 512, *A1 = A0 + KT * 512;
                    fastnlp_amx_place p[4];
                    for (int i = 0; i < 4; i++) {
                        int64_t row = (mt + (i >> 1)) * 16, col = (nt + (i & 1)) * 16;
                        p[i].c = C + row * ldc + col;
                        p[i].rows = fastnlp_amx_inside(M, mt + (i >> 1), 16);
                        p[i].cols = fastnlp_amx_inside(N, nt + (i & 1), 16);
                    }
                    if (mt2 && nt2) fastnlp_amx_block(A0, A1, B0, B1, kt0, kt1, p, ldc, load, 1, 1, scratch);
                    else if (mt2) fastnlp_amx_block(A0, A1, B0, B1, kt0, kt1, p, ldc, load, 1, 0, scratch);
                    else if (nt2) fastnlp_amx_block(A0, A1, B0, B1, kt0, kt1, p, ldc, load, 0, 1, scratch);
                    else fastnlp_amx_block(A0, A1, B0, B1, kt0, kt1, p, ldc, load, 0, 0, scratch);
                }
            }
        }
    }
    _tile_release();
}
#else
static void fastnlp_amx_compute(const uint16_t *Ap, const uint16_t *Bp, float *C, int64_t ldc, int64_t M,
                                int64_t N, int64_t K, int64_t nt0, int64_t nt1, int accumulate) {
    (void)Ap; (void)Bp; (void)C; (void)ldc; (void)M; (void)N; (void)K; (void)nt0; (void)nt1; (void)accumulate;
}
#endif

#endif
